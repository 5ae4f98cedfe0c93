package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/workflows"
)

// newHealthEnv is newEnv with endpoint health configured as a worker does:
// automatic disabling after disableAfter, and an operator webhook (a real
// receiver, verifying with the operator secret) for subscription.disabled
// events.
func newHealthEnv(t *testing.T, disableAfter time.Duration) (*env, *receiver) {
	t.Helper()
	op := newReceiver(t)
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	op.verifyWith(secret)
	e := newEnvWithoutWorker(t, server.GetDefaultClient())
	e.tune = func(a *activities.Activities) {
		a.DisableAfter = disableAfter
		a.Operator = &activities.OperatorWebhook{URL: op.srv.URL + "/operator", Secret: secret}
	}
	e.worker = e.startWorker()
	return e, op
}

// operatorEvents decodes what the operator webhook received, failing the
// test unless each request is a verified operational event whose
// webhook-id is its ID.
func operatorEvents(t *testing.T, op *receiver) []activities.OperatorEvent {
	t.Helper()
	var out []activities.OperatorEvent
	for i, r := range op.requests() {
		if r.Verified != nil {
			t.Errorf("operator request %d: signature does not verify with the operator secret (official library): %v", i, r.Verified)
		}
		var e activities.OperatorEvent
		if err := json.Unmarshal(r.Body, &e); err != nil {
			t.Fatalf("operator request %d: %v\n%s", i, err, r.Body)
		}
		if id := r.Header.Get("webhook-id"); id != e.ID || id == "" {
			t.Errorf("operator request %d: webhook-id %q, event ID %q; want the same, not empty", i, id, e.ID)
		}
		out = append(out, e)
	}
	return out
}

// deliveryResult waits for a delivery workflow and returns its result, from
// the completion or from the failure's details.
func (e *env) deliveryResult(workflowID string) workflows.DeliveryResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.DeliveryResult
	err := e.client.GetWorkflow(ctx, workflowID, "").Get(ctx, &res)
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
	case errors.As(err, &appErr) && appErr.HasDetails():
		if derr := appErr.Details(&res); derr != nil {
			e.t.Fatalf("delivery %s: failure details: %v", workflowID, derr)
		}
	default:
		e.t.Fatalf("delivery %s: %v", workflowID, err)
	}
	return res
}

// A 410 disables the subscription at once and tells the operator, once;
// a delivery to it that was waiting to retry ends skipped, visibly; later
// events are not delivered to it at all.
func TestHealth_GoneDisablesNotifiesOnceAndPendingDeliveriesEndSkipped(t *testing.T) {
	e, op := newHealthEnv(t, activities.DefaultDisableAfter)
	account := "acct-" + t.Name()
	// Event A's first attempt gets 503 and waits a minute to retry; event
	// B's gets 410.
	rc := newReceiver(t, http.StatusServiceUnavailable, http.StatusGone)
	slow := &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Minute)}}
	sub, secret := e.subscribe(account, rc.srv.URL+"/hooks?token=path-secret", nil, slow)
	rc.verifyWith(secret)
	ctx := context.Background()

	a, err := e.publisher.Publish(ctx, userCreated(account, "u_a"))
	if err != nil {
		t.Fatal(err)
	}
	deliveryA := workflows.DeliveryWorkflowID(a.Event.ID, sub.ID)
	e.waitSearchable(deliveryA, fmt.Sprintf("%s = 'retrying'", workflows.AttrDeliveryStatus.GetName()))

	b, sum, err := e.publishAndWait(userCreated(account, "u_b"))
	if err != nil || sum.Failed != 1 {
		t.Fatalf("event B: %+v, %v; want one failed delivery", sum, err)
	}
	deliveryB := workflows.DeliveryWorkflowID(b.Event.ID, sub.ID)
	if res := e.deliveryResult(deliveryB); res.Status != delivery.StatusFailed || res.Last.Class != delivery.ClassGone {
		t.Errorf("delivery B = %+v, want failed with %s", res, delivery.ClassGone)
	}

	got, err := e.store.Get(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Enabled || got.Health.DisabledReason != activities.ReasonGone || got.Health.DisabledAt.IsZero() {
		t.Fatalf("subscription after 410: enabled %t, health %+v; want disabled for %q", got.Enabled, got.Health, activities.ReasonGone)
	}
	notices := operatorEvents(t, op)
	if len(notices) != 1 {
		t.Fatalf("operator webhook got %d events, want 1: %+v", len(notices), notices)
	}
	n := notices[0]
	if n.Type != activities.EventSubscriptionDisabled || n.AccountID != account || n.Data.SubscriptionID != sub.ID ||
		n.Data.Reason != activities.ReasonGone || n.Data.Endpoint != rc.srv.URL || n.Timestamp.IsZero() {
		t.Errorf("operator event = %+v, want %s of %s (endpoint %s) for %q", n, activities.EventSubscriptionDisabled, sub.ID, rc.srv.URL, activities.ReasonGone)
	}
	if raw := string(op.requests()[0].Body); strings.Contains(raw, "path-secret") || strings.Contains(raw, "/hooks") {
		t.Errorf("operator event shows the endpoint's path or query: %s", raw)
	}

	// Delivery A, waiting to retry, is told to retry now: it finds the
	// subscription disabled and ends skipped, saying why.
	if err := e.client.SignalWorkflow(ctx, deliveryA, "", workflows.SignalRetryNow, nil); err != nil {
		t.Fatal(err)
	}
	resA := e.deliveryResult(deliveryA)
	if resA.Status != delivery.StatusSkipped || resA.Attempts != 2 || !resA.Last.Skipped ||
		!strings.Contains(resA.Last.Error, "subscription is disabled ("+activities.ReasonGone+")") {
		t.Errorf("delivery A = %+v, want skipped on attempt 2 saying the subscription is disabled (%s)", resA, activities.ReasonGone)
	}
	e.waitSearchable(deliveryA, fmt.Sprintf("%s = 'skipped' AND %s = 2", workflows.AttrDeliveryStatus.GetName(), workflows.AttrAttempts.GetName()))
	if err := e.client.GetWorkflow(ctx, workflows.EventWorkflowID(a.Event.ID), "").Get(ctx, &sum); err != nil || sum.Skipped != 1 {
		t.Errorf("event A: %+v, %v; want one skipped delivery", sum, err)
	}
	if st := e.status(deliveryA); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("delivery A execution status %v, want Completed (skipped is not a failure)", st)
	}

	// A later event is not delivered to the disabled subscription at all.
	if _, sum, err := e.publishAndWait(userCreated(account, "u_c")); err != nil || sum.Subscriptions != 0 {
		t.Errorf("event C: %+v, %v; want no delivery", sum, err)
	}
	if n := len(rc.requests()); n != 2 {
		t.Errorf("receiver got %d requests, want 2 (A's first attempt, B's)", n)
	}
	if n := len(op.requests()); n != 1 {
		t.Errorf("operator webhook got %d requests in all, want exactly 1", n)
	}
	e.record("delivery-gone-notified", deliveryB)
	e.record("delivery-skipped-disabled", deliveryA)
}

// A delivery that uses up its schedule disables its subscription when the
// endpoint has been failing, with no success, for DisableAfter; a success
// inside that window keeps it enabled.
func TestHealth_ExhaustedScheduleDisablesOnlyALongFailingEndpoint(t *testing.T) {
	tests := []struct {
		name         string
		disableAfter time.Duration
		// failingFor seeds the failure clock this long before the test;
		// 0 seeds nothing.
		failingFor time.Duration
		// succeedFirst delivers one event successfully before the failing one.
		succeedFirst bool
		wantDisabled bool
		record       string
	}{
		{name: "tiny DisableAfter and no success", disableAfter: time.Millisecond, wantDisabled: true, record: "delivery-exhausted-disabled"},
		{name: "failing for longer than DisableAfter", disableAfter: time.Hour, failingFor: 2 * time.Hour, wantDisabled: true},
		{name: "a success inside the window", disableAfter: time.Hour, failingFor: 2 * time.Hour, succeedFirst: true, record: "delivery-exhausted-kept"},
		{name: "automatic disabling off", disableAfter: 0, failingFor: 30 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, op := newHealthEnv(t, tt.disableAfter)
			account := "acct-" + strings.ReplaceAll(t.Name(), "/", "-")
			script := []int{500, 500, 500}
			if tt.succeedFirst {
				script = append([]int{200}, script...)
			}
			rc := newReceiver(t, script...)
			sub, secret := e.subscribe(account, rc.srv.URL, nil, fast)
			rc.verifyWith(secret)
			ctx := context.Background()
			seeded := time.Now().Add(-tt.failingFor).UTC().Truncate(time.Microsecond)
			if tt.failingFor > 0 {
				if err := e.store.RecordAttempt(ctx, sub.ID, false, seeded); err != nil {
					t.Fatal(err)
				}
			}
			if tt.succeedFirst {
				if _, sum, err := e.publishAndWait(userCreated(account, "u_ok")); err != nil || sum.Delivered != 1 {
					t.Fatalf("first event: %+v, %v; want delivered", sum, err)
				}
				if h := e.storeHealth(sub.ID); h.Failing() || h.LastSuccessAt.IsZero() {
					t.Fatalf("after a success: health %+v, want a last success and no failure clock", h)
				}
			}

			r, sum, err := e.publishAndWait(userCreated(account, "u_fail"))
			if err != nil || sum.Failed != 1 {
				t.Fatalf("failing event: %+v, %v; want one failed delivery", sum, err)
			}
			id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
			if res := e.deliveryResult(id); res.Status != delivery.StatusFailed || res.Attempts != 3 {
				t.Errorf("delivery = %+v, want failed after its 3 attempts", res)
			}
			got, err := e.store.Get(ctx, sub.ID)
			if err != nil {
				t.Fatal(err)
			}
			notices := operatorEvents(t, op)
			if !tt.wantDisabled {
				if !got.Enabled || got.Health.DisabledReason != "" || len(notices) != 0 {
					t.Errorf("enabled %t, health %+v, %d operator events; want still enabled, nothing sent", got.Enabled, got.Health, len(notices))
				}
				if tt.record != "" {
					e.record(tt.record, id)
				}
				return
			}
			if got.Enabled || !strings.Contains(got.Health.DisabledReason, "used up its retry schedule") {
				t.Errorf("enabled %t, health %+v; want disabled because the schedule was used up", got.Enabled, got.Health)
			}
			if len(notices) != 1 {
				t.Fatalf("operator webhook got %d events, want 1", len(notices))
			}
			n := notices[0]
			if n.Type != activities.EventSubscriptionDisabled || n.Data.SubscriptionID != sub.ID || n.AccountID != account ||
				n.Data.Reason != got.Health.DisabledReason || n.Data.LastSuccessAt != nil ||
				n.Data.FailingSince == nil || !n.Data.FailingSince.Equal(got.Health.FailingSince) {
				t.Errorf("operator event = %+v (data %+v), want the subscription's disable with failing_since %v and no last success",
					n, n.Data, got.Health.FailingSince)
			}
			if tt.failingFor > 0 && !got.Health.FailingSince.Equal(seeded) {
				t.Errorf("failing_since = %v, want the seeded %v (later failures do not move it)", got.Health.FailingSince, seeded)
			}
			if tt.record != "" {
				e.record(tt.record, id)
			}

			// Enabling it again restarts the clock: the next exhausted
			// delivery measures from its own failures.
			if err := e.store.SetEnabled(ctx, sub.ID, true); err != nil {
				t.Fatal(err)
			}
			if h := e.storeHealth(sub.ID); h.Failing() || h.DisabledReason != "" {
				t.Errorf("after enabling: health %+v, want the failure clock and the disable cleared", h)
			}
		})
	}
}

// storeHealth returns a subscription's health from the store.
func (e *env) storeHealth(id string) subscription.Health {
	e.t.Helper()
	s, err := e.store.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Health
}
