package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// now is the activities' clock in these tests.
var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return now }

func TestDisableFailingSubscription_DisablesOnlyAnEndpointFailingLongEnough(t *testing.T) {
	const disableAfter = 5 * 24 * time.Hour
	tests := []struct {
		name         string
		disableAfter time.Duration
		// outcomes recorded before the call, as offsets from now.
		outcomes []outcomeAt
		want     bool
	}{
		{"failing for longer than DisableAfter", disableAfter,
			[]outcomeAt{{true, -8 * 24 * time.Hour}, {false, -6 * 24 * time.Hour}, {false, -time.Hour}}, true},
		{"failing for exactly DisableAfter", disableAfter, []outcomeAt{{false, -disableAfter}}, true},
		{"failing, but not for long enough", disableAfter, []outcomeAt{{false, -disableAfter + time.Minute}}, false},
		{"a success meanwhile", disableAfter,
			[]outcomeAt{{false, -6 * 24 * time.Hour}, {true, -2 * 24 * time.Hour}}, false},
		{"never failed", disableAfter, []outcomeAt{{true, -6 * 24 * time.Hour}}, false},
		{"automatic disabling off (DisableAfter 0)", 0, []outcomeAt{{false, -30 * 24 * time.Hour}}, false},
		{"automatic disabling off (DisableAfter negative)", -time.Hour, []outcomeAt{{false, -30 * 24 * time.Hour}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.subscribe(t, "/down?token=path-secret", true)
			for _, o := range tt.outcomes {
				if err := f.store.RecordAttempt(t.Context(), id, o.ok, now.Add(o.at)); err != nil {
					t.Fatal(err)
				}
			}
			before, err := f.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			acts := &activities.Activities{Store: f.store, Now: fixedClock, DisableAfter: tt.disableAfter}

			res, err := acts.DisableFailingSubscription(t.Context(), activities.DisableFailingInput{SubscriptionID: id})
			if err != nil {
				t.Fatalf("DisableFailingSubscription: %v", err)
			}

			after, err := f.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want {
				if res.Disabled || res.Notice != nil {
					t.Errorf("result = %+v, want nothing disabled and no notice", res)
				}
				if !after.Enabled || after.Health != before.Health || !after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Errorf("stored subscription changed: enabled %t, health %+v (was %+v)", after.Enabled, after.Health, before.Health)
				}
				return
			}
			if !res.Disabled || res.Notice == nil {
				t.Fatalf("result = %+v, want disabled with a notice", res)
			}
			if after.Enabled || !after.Health.DisabledAt.Equal(now) || !strings.Contains(after.Health.DisabledReason, "5 days") {
				t.Errorf("stored: enabled %t, health %+v; want disabled at %v with a reason naming 5 days", after.Enabled, after.Health, now)
			}
			n := res.Notice
			wantData := activities.SubscriptionDisabledData{
				SubscriptionID: id,
				Endpoint:       f.srv.URL, // scheme and host only: no path, no token
				Reason:         after.Health.DisabledReason,
			}
			gotData := n.Data
			gotData.LastSuccessAt, gotData.FailingSince = nil, nil
			if n.Type != activities.EventSubscriptionDisabled || n.ID == "" || n.AccountID != "acme" || !n.Timestamp.Equal(now) || gotData != wantData {
				t.Errorf("notice = %+v, data %+v; want type %s, an ID, account acme, timestamp %v, data %+v",
					n, n.Data, activities.EventSubscriptionDisabled, now, wantData)
			}
			if n.Data.FailingSince == nil || !n.Data.FailingSince.Equal(after.Health.FailingSince) {
				t.Errorf("notice failing_since = %v, want %v", n.Data.FailingSince, after.Health.FailingSince)
			}
			if ls := after.Health.LastSuccessAt; ls.IsZero() != (n.Data.LastSuccessAt == nil) || (n.Data.LastSuccessAt != nil && !n.Data.LastSuccessAt.Equal(ls)) {
				t.Errorf("notice last_success_at = %v, want %v (null when none)", n.Data.LastSuccessAt, ls)
			}

			// Idempotent: a second call finds it disabled and reports nothing.
			again, err := acts.DisableFailingSubscription(t.Context(), activities.DisableFailingInput{SubscriptionID: id})
			if err != nil || again.Disabled || again.Notice != nil {
				t.Errorf("second call = %+v, %v; want nothing disabled", again, err)
			}
		})
	}
}

type outcomeAt struct {
	ok bool
	at time.Duration
}

func TestDisableFailingSubscription_DeletedSubscriptionIsNoError(t *testing.T) {
	f := newFixture(t)
	acts := &activities.Activities{Store: f.store, Now: fixedClock, DisableAfter: time.Hour}
	res, err := acts.DisableFailingSubscription(t.Context(), activities.DisableFailingInput{SubscriptionID: "01a2088a-0000-7000-8000-0000000000ff"})
	if err != nil || res.Disabled {
		t.Errorf("DisableFailingSubscription of a missing subscription = %+v, %v; want nothing, nil", res, err)
	}
}

func TestDisableSubscription_DisablesOnceWithTheReasonAndANotice(t *testing.T) {
	f := newFixture(t)
	id := f.subscribe(t, "/gone", true)
	acts := &activities.Activities{Store: f.store, Now: fixedClock}

	res, err := acts.DisableSubscription(t.Context(), activities.DisableInput{SubscriptionID: id, Reason: activities.ReasonGone})
	if err != nil || !res.Disabled || res.Notice == nil {
		t.Fatalf("DisableSubscription = %+v, %v; want disabled with a notice", res, err)
	}
	if n := res.Notice; n.Data.Reason != activities.ReasonGone || n.Data.SubscriptionID != id || n.Data.FailingSince != nil || n.Data.LastSuccessAt != nil {
		t.Errorf("notice data = %+v, want reason %q, no failing_since, no last_success_at", n.Data, activities.ReasonGone)
	}
	sub, err := f.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Enabled || sub.Health.DisabledReason != activities.ReasonGone || !sub.Health.DisabledAt.Equal(now) {
		t.Errorf("stored: enabled %t, health %+v; want disabled for %q at %v", sub.Enabled, sub.Health, activities.ReasonGone, now)
	}
	again, err := acts.DisableSubscription(t.Context(), activities.DisableInput{SubscriptionID: id, Reason: activities.ReasonGone})
	if err != nil || again.Disabled || again.Notice != nil {
		t.Errorf("second DisableSubscription = %+v, %v; want nothing (already disabled)", again, err)
	}
}

// operatorReceiver is an operator endpoint that answers status and keeps
// what it received.
type operatorReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	got    []*http.Request
	bodies [][]byte
}

func newOperatorReceiver(t *testing.T, status int) *operatorReceiver {
	o := &operatorReceiver{status: status}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		o.mu.Lock()
		o.got, o.bodies = append(o.got, r), append(o.bodies, body)
		o.mu.Unlock()
		w.WriteHeader(o.status)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func TestNotifySubscriptionDisabled_SendsASignedEventAndClassifiesTheAnswer(t *testing.T) {
	notice := activities.OperatorEvent{
		ID:        "01a2088a-0000-7000-8000-00000000000a",
		Type:      activities.EventSubscriptionDisabled,
		Timestamp: now,
		AccountID: "acme",
		Data: activities.SubscriptionDisabledData{SubscriptionID: "01a2088a-0000-7000-8000-000000000001",
			Endpoint: "https://crm.example", Reason: activities.ReasonGone},
	}
	tests := []struct {
		name   string
		status int
		// blocked uses a policy that refuses the loopback receiver.
		blocked       bool
		wantErr       bool
		wantRetryable bool
		wantClass     delivery.ErrorClass
		wantRequests  int
	}{
		{name: "2xx", status: http.StatusNoContent, wantRequests: 1},
		{name: "5xx is retryable", status: http.StatusServiceUnavailable, wantErr: true, wantRetryable: true, wantClass: delivery.ClassServerError, wantRequests: 1},
		{name: "429 is retryable", status: http.StatusTooManyRequests, wantErr: true, wantRetryable: true, wantClass: delivery.ClassRetryableStatus, wantRequests: 1},
		{name: "4xx is final", status: http.StatusForbidden, wantErr: true, wantClass: delivery.ClassClientError, wantRequests: 1},
		{name: "blocked URL is final and sends nothing", status: http.StatusNoContent, blocked: true, wantErr: true, wantClass: delivery.ClassBlockedAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newOperatorReceiver(t, tt.status)
			secret, err := signature.GenerateSecret()
			if err != nil {
				t.Fatal(err)
			}
			policy := egress.Policy{AllowHTTP: true, AllowCIDRs: loopback}
			if tt.blocked {
				policy = egress.Policy{AllowHTTP: true}
			}
			acts := &activities.Activities{
				Sender:   activities.NewSender(policy, 5*time.Second),
				Operator: &activities.OperatorWebhook{URL: rcv.srv.URL + "/operator?token=op-path-secret", Secret: secret},
			}

			err = acts.NotifySubscriptionDisabled(t.Context(), activities.NotifyInput{Event: notice})

			if !tt.wantErr && err != nil {
				t.Fatalf("NotifySubscriptionDisabled: %v", err)
			}
			if tt.wantErr {
				var appErr *temporal.ApplicationError
				if !errors.As(err, &appErr) {
					t.Fatalf("err = %v, want an application error", err)
				}
				if appErr.Type() != string(tt.wantClass) || appErr.NonRetryable() == tt.wantRetryable {
					t.Errorf("err type %q, non-retryable %t; want %q, non-retryable %t", appErr.Type(), appErr.NonRetryable(), tt.wantClass, !tt.wantRetryable)
				}
				if strings.Contains(err.Error(), "op-path-secret") {
					t.Errorf("error %q repeats the operator URL's query", err)
				}
			}
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if len(rcv.got) != tt.wantRequests {
				t.Fatalf("operator endpoint got %d requests, want %d", len(rcv.got), tt.wantRequests)
			}
			if tt.wantRequests == 0 {
				return
			}
			r, body := rcv.got[0], rcv.bodies[0]
			if err := (signature.Verifier{Secrets: []signature.Secret{secret}}).Verify(r.Header, body); err != nil {
				t.Errorf("signature does not verify with the operator secret: %v", err)
			}
			other, _ := signature.GenerateSecret()
			if err := (signature.Verifier{Secrets: []signature.Secret{other}}).Verify(r.Header, body); err == nil {
				t.Error("signature verifies with another secret too")
			}
			if got := r.Header.Get(signature.HeaderID); got != notice.ID {
				t.Errorf("webhook-id = %q, want the event ID %q", got, notice.ID)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			data, _ := got["data"].(map[string]any)
			if got["type"] != activities.EventSubscriptionDisabled || got["id"] != notice.ID || got["account_id"] != "acme" ||
				got["timestamp"] != "2026-11-28T12:00:00Z" || data["reason"] != activities.ReasonGone ||
				data["subscription_id"] != notice.Data.SubscriptionID || data["endpoint"] != "https://crm.example" {
				t.Errorf("body = %s", body)
			}
			for _, k := range []string{"last_success_at", "failing_since"} {
				if v, ok := data[k]; !ok || v != nil {
					t.Errorf("data.%s = %v (present %t), want null", k, v, ok)
				}
			}
		})
	}
}

func TestNotifySubscriptionDisabled_WithoutAnOperatorWebhookOnlyLogs(t *testing.T) {
	acts := &activities.Activities{} // no Sender either: nothing may be sent
	if err := acts.NotifySubscriptionDisabled(t.Context(), activities.NotifyInput{Event: activities.OperatorEvent{ID: "x"}}); err != nil {
		t.Errorf("NotifySubscriptionDisabled without an operator webhook: %v, want nil", err)
	}
}

func TestParseOperatorWebhook(t *testing.T) {
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	const (
		publicURL = "https://ops.example.com/hooks?token=url-secret-token"
		badSecret = "whsec_not*base64*at*all"
	)
	strict := egress.Policy{}
	tests := []struct {
		name        string
		url, secret string
		policy      egress.Policy
		wantNil     bool
		wantErr     string
	}{
		{name: "neither: no operator webhook", wantNil: true},
		{name: "both", url: publicURL, secret: secret.Reveal(), policy: strict},
		{name: "loopback allowed by the policy", url: "http://127.0.0.1:9000/operator", secret: secret.Reveal(),
			policy: egress.Policy{AllowHTTP: true, AllowCIDRs: loopback}},
		{name: "URL without a secret", url: publicURL, policy: strict, wantErr: "secret is required"},
		{name: "secret without a URL", secret: secret.Reveal(), policy: strict, wantErr: "no URL"},
		{name: "invalid secret", url: publicURL, secret: badSecret, policy: strict, wantErr: "operator webhook secret"},
		{name: "http refused", url: "http://ops.example.com/hooks?token=url-secret-token", secret: secret.Reveal(), policy: strict, wantErr: "http"},
		{name: "loopback refused", url: "https://127.0.0.1/hooks?token=url-secret-token", secret: secret.Reveal(), policy: strict, wantErr: "operator webhook URL"},
		{name: "not a URL", url: "ops.example.com", secret: secret.Reveal(), policy: strict, wantErr: "operator webhook URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := activities.ParseOperatorWebhook(tt.url, tt.secret, tt.policy)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				for _, leak := range []string{"url-secret-token", secret.Reveal(), badSecret} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("error %q repeats %q", err, leak)
					}
				}
			case err != nil:
				t.Fatalf("ParseOperatorWebhook: %v", err)
			case tt.wantNil:
				if op != nil {
					t.Errorf("got %+v, want nil", op)
				}
			case op == nil || op.URL != tt.url || op.Secret.Reveal() != tt.secret:
				t.Errorf("got %+v, want URL %q and the secret", op, tt.url)
			}
		})
	}
}

// countingStore counts RecordAttempt calls, and fails them when told to.
type countingStore struct {
	*subscription.SQLiteStore
	mu      sync.Mutex
	records int
	fail    error
}

func (c *countingStore) RecordAttempt(ctx context.Context, id string, ok bool, at time.Time) error {
	c.mu.Lock()
	c.records++
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return fail
	}
	return c.SQLiteStore.RecordAttempt(ctx, id, ok, at)
}

func (c *countingStore) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records
}

// Deliver records each attempt in the endpoint's health, but skips the
// store when the write would change nothing: a healthy endpoint costs a
// write a minute, a failing one none per attempt.
func TestDeliver_RecordsHealthSkippingWritesThatChangeNothing(t *testing.T) {
	f := newFixture(t)
	store := &countingStore{SQLiteStore: f.store}
	clock := now
	acts := &activities.Activities{
		Store:  store,
		Sender: activities.NewSender(egress.Policy{AllowHTTP: true, AllowCIDRs: loopback}, 5*time.Second),
		Now:    func() time.Time { return clock },
	}
	ok, down := f.subscribe(t, "/ok", true), f.subscribe(t, "/down", true)
	steps := []struct {
		name      string
		id        string
		advance   time.Duration
		wantWrite bool
		want      func(h subscription.Health) bool
	}{
		{"first success is recorded", ok, 0, true,
			func(h subscription.Health) bool { return h.LastSuccessAt.Equal(now) && !h.Failing() }},
		{"success seconds later is not", ok, 10 * time.Second, false,
			func(h subscription.Health) bool { return h.LastSuccessAt.Equal(now) }},
		{"success over a minute after the recorded one is", ok, time.Minute, true,
			func(h subscription.Health) bool { return h.LastSuccessAt.Equal(now.Add(70 * time.Second)) }},
		{"first failure starts the clock", down, 0, true,
			func(h subscription.Health) bool { return h.FailingSince.Equal(now.Add(70 * time.Second)) }},
		{"later failure writes nothing", down, time.Hour, false,
			func(h subscription.Health) bool { return h.FailingSince.Equal(now.Add(70 * time.Second)) }},
	}
	for _, s := range steps {
		clock = clock.Add(s.advance)
		before := store.count()
		_, _ = acts.Deliver(t.Context(), activities.DeliverInput{Event: f.event, SubscriptionID: s.id, Attempt: 1})
		if wrote := store.count() > before; wrote != s.wantWrite {
			t.Errorf("%s: RecordAttempt called %t, want %t", s.name, wrote, s.wantWrite)
		}
		sub, err := f.store.Get(t.Context(), s.id)
		if err != nil {
			t.Fatal(err)
		}
		if !s.want(sub.Health) {
			t.Errorf("%s: health = %+v", s.name, sub.Health)
		}
	}

	// The endpoint recovers: the success is written at once, however
	// recent the last one.
	sub, err := f.store.Get(t.Context(), down)
	if err != nil {
		t.Fatal(err)
	}
	sub.URL = f.srv.URL + "/ok"
	if err := f.store.Update(t.Context(), &sub); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	before := store.count()
	if rec, err := acts.Deliver(t.Context(), activities.DeliverInput{Event: f.event, SubscriptionID: down, Attempt: 2}); err != nil || !rec.Succeeded() {
		t.Fatalf("Deliver after recovery = %+v, %v", rec, err)
	}
	if store.count() == before {
		t.Error("success after failures: RecordAttempt not called")
	}
	if sub, _ := f.store.Get(t.Context(), down); sub.Health.Failing() || !sub.Health.LastSuccessAt.Equal(clock) {
		t.Errorf("after recovery: health = %+v, want not failing, last success %v", sub.Health, clock)
	}
}

func TestDeliver_AHealthStoreErrorDoesNotFailTheAttempt(t *testing.T) {
	f := newFixture(t)
	store := &countingStore{SQLiteStore: f.store, fail: errors.New("database is locked")}
	acts := &activities.Activities{
		Store:  store,
		Sender: activities.NewSender(egress.Policy{AllowHTTP: true, AllowCIDRs: loopback}, 5*time.Second),
	}
	rec, err := acts.Deliver(t.Context(), activities.DeliverInput{Event: f.event, SubscriptionID: f.subscribe(t, "/ok", true), Attempt: 1})
	if err != nil || !rec.Succeeded() {
		t.Errorf("Deliver = %+v, %v; want delivered although health could not be written (the request was sent)", rec, err)
	}
	if store.count() != 1 {
		t.Errorf("RecordAttempt called %d times, want 1", store.count())
	}
}

func TestDeliver_SkipsADisabledSubscriptionSayingWhy(t *testing.T) {
	f := newFixture(t)
	id := f.subscribe(t, "/ok", true)
	if _, err := f.store.Disable(t.Context(), id, activities.ReasonGone, now); err != nil {
		t.Fatal(err)
	}
	acts := &activities.Activities{Store: f.store, Sender: activities.NewSender(egress.Policy{AllowHTTP: true, AllowCIDRs: loopback}, 5*time.Second)}
	rec, err := acts.Deliver(t.Context(), activities.DeliverInput{Event: f.event, SubscriptionID: id, Attempt: 1})
	if err != nil || !rec.Skipped || !strings.Contains(rec.Error, activities.ReasonGone) {
		t.Errorf("Deliver = %+v, %v; want skipped, saying %q", rec, err, activities.ReasonGone)
	}
}
