package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/workflows"
)

func TestFanOut_DeliversSignedEventToMatchingSubscriptionsOnly(t *testing.T) {
	e := newEnv(t)
	account := "acct-" + t.Name()
	all, created, both := newReceiver(t), newReceiver(t), newReceiver(t)
	deletedOnly, otherAccount, disabled := newReceiver(t), newReceiver(t), newReceiver(t)

	var secrets []signature.Secret
	for _, s := range []struct {
		r       *receiver
		account string
		types   []string
	}{
		{all, account, nil},
		{created, account, []string{"user.created"}},
		{both, account, []string{"user.deleted", "user.created"}},
		{deletedOnly, account, []string{"user.deleted"}},
		{otherAccount, "someone-else", nil},
		{disabled, account, nil},
	} {
		sub, secret := e.subscribe(s.account, s.r.srv.URL+"/hooks?token=path-secret", s.types, fast)
		s.r.verifyWith(secret)
		secrets = append(secrets, secret)
		if s.r == disabled {
			if err := e.store.SetEnabled(context.Background(), sub.ID, false); err != nil {
				t.Fatal(err)
			}
		}
	}

	r, sum, err := e.publishAndWait(userCreated(account, "u_1"))
	if err != nil {
		t.Fatalf("event workflow: %v", err)
	}
	if want := (workflows.Summary{Subscriptions: 3, Delivered: 3}); sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
	wantBody, _ := r.Event.Marshal()
	for name, rc := range map[string]*receiver{"all": all, "created": created, "both": both} {
		got := rc.requests()
		if len(got) != 1 {
			t.Errorf("%s receiver got %d requests, want 1", name, len(got))
			continue
		}
		if got[0].Verified != nil {
			t.Errorf("%s receiver: official Standard Webhooks library rejected the signature: %v", name, got[0].Verified)
		}
		if !bytes.Equal(got[0].Body, wantBody) {
			t.Errorf("%s receiver body:\n%s\nwant\n%s", name, got[0].Body, wantBody)
		}
		if id := got[0].Header.Get("webhook-id"); id != r.Event.ID {
			t.Errorf("%s receiver webhook-id = %q, want the event ID %q", name, id, r.Event.ID)
		}
	}
	for name, rc := range map[string]*receiver{"deleted-only": deletedOnly, "other account": otherAccount, "disabled": disabled} {
		if n := len(rc.requests()); n != 0 {
			t.Errorf("%s receiver got %d requests, want none", name, n)
		}
	}

	// Secrets and URL paths never enter history, of the event or of a delivery.
	ids := []string{r.WorkflowID}
	list := e.listWorkflows(fmt.Sprintf("%s = %q", workflows.AttrEventID.GetName(), r.Event.ID), 4)
	for _, x := range list {
		ids = append(ids, x.GetExecution().GetWorkflowId())
	}
	for _, id := range ids {
		raw := fmt.Sprint(e.history(id))
		for _, s := range secrets {
			key := strings.TrimPrefix(s.Reveal(), signature.SecretPrefix)
			raw64, _ := base64.StdEncoding.DecodeString(key)
			if strings.Contains(raw, key) || bytes.Contains([]byte(raw), raw64) {
				t.Errorf("history of %s contains a subscription secret", id)
			}
		}
		if strings.Contains(raw, "path-secret") {
			t.Errorf("history of %s contains the URL's query", id)
		}
	}
}

// TestHistoryShape_FirstAttemptDelivery pins the history of the common
// case, a delivery accepted on its first attempt: Deliver is a local
// activity, whose outcome is one marker in the workflow task that started
// the delivery, so the whole run is one workflow task. Back on a regular
// activity it would be three activity events and a second workflow task.
// The event workflow matches subscriptions as a local activity too.
func TestHistoryShape_FirstAttemptDelivery(t *testing.T) {
	e := newEnv(t)
	account := "acct-" + t.Name()
	rc := newReceiver(t)
	var subs []string
	for range 3 {
		sub, _ := e.subscribe(account, rc.srv.URL, nil, fast)
		subs = append(subs, sub.ID)
	}
	r, sum, err := e.publishAndWait(userCreated(account, "u_1"))
	if err != nil {
		t.Fatalf("event workflow: %v", err)
	}
	if want := (workflows.Summary{Subscriptions: 3, Delivered: 3}); sum != want {
		t.Fatalf("summary = %+v, want %+v", sum, want)
	}
	if n := len(rc.requests()); n != 3 {
		t.Fatalf("receiver got %d requests, want 3", n)
	}

	dc := converter.GetDefaultDataConverter()
	// count counts a history's events of a type.
	count := func(h []*historypb.HistoryEvent, typ enumspb.EventType) int {
		n := 0
		for _, ev := range h {
			if ev.GetEventType() == typ {
				n++
			}
		}
		return n
	}
	for _, subID := range subs {
		id := workflows.DeliveryWorkflowID(r.Event.ID, subID)
		h := e.history(id)
		var types []string
		for _, ev := range h {
			types = append(types, strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_"))
		}
		t.Logf("%s: %d events: %s", id, len(h), strings.Join(types, ", "))
		markers, err := localActivityMarkers(h, dc, "Deliver")
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		if len(markers) != 1 {
			t.Errorf("history of %s holds %d Deliver markers, want 1", id, len(markers))
		}
		if n := count(h, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED); n != 0 {
			t.Errorf("history of %s schedules %d activities, want none", id, n)
		}
		if n := count(h, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED); n != 1 {
			t.Errorf("history of %s holds %d completed workflow tasks, want 1", id, n)
		}
		if len(h) > 9 {
			t.Errorf("history of %s holds %d events, want at most 9", id, len(h))
		}
	}

	h := e.history(r.WorkflowID)
	if markers, err := localActivityMarkers(h, dc, "MatchSubscriptions"); err != nil || len(markers) == 0 {
		t.Errorf("history of %s holds %d MatchSubscriptions markers (%v), want at least 1", r.WorkflowID, len(markers), err)
	}
	if n := count(h, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED); n != 0 {
		t.Errorf("history of %s schedules %d activities, want none", r.WorkflowID, n)
	}
}

func TestDelivery_RetriesUntilSuccessAndRecordsEveryAttempt(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 500, 500, 200)
	sub, secret := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)
	rc.verifyWith(secret)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	for i, g := range got {
		if g.Verified != nil {
			t.Errorf("request %d: signature rejected: %v", i+1, g.Verified)
		}
		if !bytes.Equal(g.Body, got[0].Body) {
			t.Errorf("request %d body differs from the first: every attempt must sign the same bytes", i+1)
		}
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	atts := e.attempts(id)
	if len(atts) != 3 {
		t.Fatalf("history of %s holds %d attempts, want 3: %+v", id, len(atts), atts)
	}
	for i, want := range []struct {
		code  int
		class delivery.ErrorClass
	}{{500, delivery.ClassServerError}, {500, delivery.ClassServerError}, {200, ""}} {
		if atts[i].Number != i+1 || atts[i].StatusCode != want.code || atts[i].Class != want.class {
			t.Errorf("attempt %d in history = %+v, want status %d class %q", i+1, atts[i], want.code, want.class)
		}
	}
	if !strings.Contains(atts[0].ResponseExcerpt, `"answer":500`) {
		t.Errorf("attempt 1 response excerpt = %q, want the receiver's body", atts[0].ResponseExcerpt)
	}
	if s := e.status(id); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("delivery workflow status %s, want completed", s)
	}
	e.waitSearchable(id, fmt.Sprintf("%s = 'delivered' AND %s = 3", workflows.AttrDeliveryStatus.GetName(), workflows.AttrAttempts.GetName()))
	e.record("delivery-retried-then-delivered", id)
	e.record("userevent-single", r.WorkflowID)
}

func TestDelivery_ClientErrorIsFinal(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, http.StatusBadRequest)
	sub, secret := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)
	rc.verifyWith(secret)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Failed != 1 {
		t.Fatalf("event workflow: %+v, %v; want one failed", sum, err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want exactly 1 (no retry after 400)", n)
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	err = e.client.GetWorkflow(context.Background(), id, "").Get(context.Background(), nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeDeliveryFailed {
		t.Fatalf("delivery workflow error = %v, want %s", err, workflows.ErrTypeDeliveryFailed)
	}
	var res workflows.DeliveryResult
	if err := appErr.Details(&res); err != nil || res.Status != delivery.StatusFailed || res.Last.StatusCode != 400 {
		t.Errorf("failure details = %+v (%v), want status failed with HTTP 400", res, err)
	}
	e.waitSearchable(id, fmt.Sprintf("%s = %q AND %s = 'failed'", workflows.AttrSubscriptionID.GetName(), sub.ID, workflows.AttrDeliveryStatus.GetName()))
	e.record("delivery-client-error", id)
}

func TestDelivery_RetryAfterIsHonoured(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, http.StatusTooManyRequests, 200)
	rc.header.Set("Retry-After", "3")
	sub, secret := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast) // fast: 1 s between attempts
	rc.verifyWith(secret)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(got))
	}
	if gap := got[1].At.Sub(got[0].At); gap < 3*time.Second {
		t.Errorf("second attempt came %s after the 429, want at least the 3 s of Retry-After", gap)
	}
	e.record("delivery-retry-after", workflows.DeliveryWorkflowID(r.Event.ID, sub.ID))
}

func TestDelivery_GoneDisablesSubscription(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, http.StatusGone)
	sub, secret := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)
	rc.verifyWith(secret)

	first, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Failed != 1 {
		t.Fatalf("event workflow: %+v, %v; want one failed", sum, err)
	}
	got, err := e.store.Get(context.Background(), sub.ID)
	if err != nil || got.Enabled {
		t.Fatalf("subscription after 410: enabled=%v, %v; want disabled", got.Enabled, err)
	}
	_, sum, err = e.publishAndWait(userCreated("acct-"+t.Name(), "u_2"))
	if err != nil || sum.Subscriptions != 0 {
		t.Errorf("next event after 410: %+v, %v; want no delivery", sum, err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
	e.record("delivery-gone", workflows.DeliveryWorkflowID(first.Event.ID, sub.ID))
}

func TestPublish_SameEventIDTwiceDeliversOnce(t *testing.T) {
	e := newEnv(t)
	r1, r2 := newReceiver(t, 500, 200), newReceiver(t)
	for _, rc := range []*receiver{r1, r2} {
		_, secret := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)
		rc.verifyWith(secret)
	}
	ev := userCreated("acct-"+t.Name(), "u_1")
	ev.ID = "evt-dup-" + fmt.Sprint(time.Now().UnixNano())
	ctx := context.Background()

	first, err := e.publisher.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	// While the first run is retrying r1…
	r1.waitRequests(1, time.Minute)
	again, err := e.publisher.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.RunID != first.RunID {
		t.Errorf("second publish while running = %+v, want a duplicate of run %s", again, first.RunID)
	}
	if err := e.client.GetWorkflow(ctx, first.WorkflowID, first.RunID).Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// …and after it completed.
	late, err := e.publisher.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !late.Duplicate || late.RunID != first.RunID {
		t.Errorf("publish after completion = %+v, want a duplicate of run %s", late, first.RunID)
	}
	if n := len(r1.requests()); n != 2 {
		t.Errorf("retrying receiver got %d requests, want 2 (one failed attempt, one delivery)", n)
	}
	if n := len(r2.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want exactly 1", n)
	}
}

func TestDelivery_CompletesAfterWorkerIsReplacedMidRetry(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 503, 200)
	slow := &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(3 * time.Second)}, MaxRetryAfter: delivery.Duration(time.Minute)}
	sub, secret := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, slow)
	rc.verifyWith(secret)

	ctx := context.Background()
	r, err := e.publisher.Publish(ctx, userCreated("acct-"+t.Name(), "u_1"))
	if err != nil {
		t.Fatal(err)
	}
	rc.waitRequests(1, time.Minute)
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	waitFor(t, 30*time.Second, "the delivery to wait for its retry", func() bool {
		return len(e.attempts(id)) == 1
	})
	e.worker.Stop() // the only worker goes away while the retry timer runs
	e.worker = e.startWorker()

	var sum workflows.Summary
	if err := e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &sum); err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	if atts := e.attempts(id); len(atts) != 2 || atts[1].StatusCode != 200 {
		t.Errorf("attempts in history = %+v, want a 503 then a 200", atts)
	}
	e.record("delivery-worker-replaced", id)
}

func TestCancelEvent_CancelsItsDeliveries(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 500, 500, 500)
	hour := &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Hour)}, MaxRetryAfter: delivery.Duration(time.Hour)}
	sub, secret := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, hour)
	rc.verifyWith(secret)

	ctx := context.Background()
	r, err := e.publisher.Publish(ctx, userCreated("acct-"+t.Name(), "u_1"))
	if err != nil {
		t.Fatal(err)
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	waitFor(t, 30*time.Second, "the first attempt to be recorded", func() bool { return len(e.attempts(id)) == 1 })
	if err := e.client.CancelWorkflow(ctx, r.WorkflowID, ""); err != nil {
		t.Fatal(err)
	}
	err = e.client.GetWorkflow(ctx, r.WorkflowID, "").Get(ctx, nil)
	if !temporal.IsCanceledError(err) {
		t.Errorf("event workflow ended with %v, want canceled", err)
	}
	waitFor(t, 30*time.Second, "the delivery to be canceled", func() bool {
		return e.status(id) == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
	})
	e.waitSearchable(id, fmt.Sprintf("%s = 'canceled'", workflows.AttrDeliveryStatus.GetName()))
	e.record("delivery-canceled", id)
	e.record("userevent-canceled", r.WorkflowID)
}

func TestFanOut_LargeFanOutRunsInBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 2,500 deliveries")
	}
	e := newEnv(t)
	const n = 2500
	rc := newReceiver(t)
	account := "acct-" + t.Name()
	for i := 0; i < n; i++ {
		e.subscribe(account, rc.srv.URL+"/?n="+itoa(i), nil, fast)
	}
	start := time.Now()
	// About 80 s on an idle 2-core machine; the deadline leaves room for a
	// busy one.
	_, sum, err := e.publishAndWaitWithin(userCreated(account, "u_1"), 10*time.Minute)
	if err != nil {
		t.Fatalf("event workflow: %v", err)
	}
	t.Logf("%d deliveries in %s", n, time.Since(start).Round(time.Millisecond))
	if want := (workflows.Summary{Subscriptions: n, Delivered: n, Batches: 3}); sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
	seen := map[string]int{}
	for _, g := range rc.requests() {
		seen[string(g.Header.Get("webhook-signature"))]++
	}
	if len(seen) != n {
		t.Errorf("receiver saw %d distinct signed deliveries, want %d", len(seen), n)
	}
}

// listWorkflows runs a visibility query until it returns at least min
// executions (visibility is eventually consistent).
func (e *env) listWorkflows(query string, min int) []*workflowpb.WorkflowExecutionInfo {
	e.t.Helper()
	var out []*workflowpb.WorkflowExecutionInfo
	waitFor(e.t, 30*time.Second, "visibility query "+query, func() bool {
		resp, err := e.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			e.t.Fatalf("list %q: %v", query, err)
		}
		out = resp.GetExecutions()
		return len(out) >= min
	})
	return out
}

// waitSearchable waits until the workflow is found by the query.
func (e *env) waitSearchable(workflowID, query string) {
	e.t.Helper()
	e.listWorkflows(fmt.Sprintf("WorkflowId = %q AND %s", workflowID, query), 1)
}
