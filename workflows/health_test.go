package workflows_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/workflows"
)

// testNotice is the operational event the mocked disable activities return.
var testNotice = activities.OperatorEvent{
	ID:        "01a2088a-0000-7000-8000-00000000000a",
	Type:      activities.EventSubscriptionDisabled,
	Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
	AccountID: testEvent.AccountID,
	Data:      activities.SubscriptionDisabledData{SubscriptionID: testSubID, Endpoint: "https://receiver.example", Reason: "failing"},
}

// health mocks the disable and notify activities and records each call,
// with the workflow time it happened at. Safe for concurrent use.
type health struct {
	env *testsuite.TestWorkflowEnvironment
	// The answers of the mocked activities.
	failing, gone activities.DisableResult
	disableErr    error
	notifyErr     error

	mu       sync.Mutex
	calls    []string // "DisableFailingSubscription", "DisableSubscription", "NotifySubscriptionDisabled"
	at       []time.Time
	notified []activities.OperatorEvent
}

func mockHealth(env *testsuite.TestWorkflowEnvironment, h *health) *health {
	h.env = env
	env.OnActivity(acts.DisableFailingSubscription, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DisableFailingInput) (activities.DisableResult, error) {
			h.record("DisableFailingSubscription", in.SubscriptionID)
			return h.failing, h.disableErr
		})
	env.OnActivity(acts.DisableSubscription, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DisableInput) (activities.DisableResult, error) {
			h.record("DisableSubscription", in.SubscriptionID)
			return h.gone, h.disableErr
		})
	env.OnActivity(acts.NotifySubscriptionDisabled, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) error {
			h.record("NotifySubscriptionDisabled", in.Event.Data.SubscriptionID)
			h.mu.Lock()
			h.notified = append(h.notified, in.Event)
			h.mu.Unlock()
			return h.notifyErr
		})
	return h
}

func (h *health) record(name, subscriptionID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if subscriptionID != testSubID {
		name += "(" + subscriptionID + ")"
	}
	h.calls = append(h.calls, name)
	h.at = append(h.at, h.env.Now())
}

func (h *health) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *health) Notified() []activities.OperatorEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.notified)
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestDeliveryWorkflow_ExhaustedScheduleDisablesALongFailingSubscriptionAndNotifies(t *testing.T) {
	env := newEnv(t)
	rcv := mockDeliver(env, answer(500))
	h := mockHealth(env, &health{failing: activities.DisableResult{Disabled: true, Notice: &testNotice}})
	sched := schedule(10 * time.Second)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(sched))

	res := deliveryFailure(t, env)
	if res.Status != delivery.StatusFailed || res.Attempts != 2 || res.Last.Class != delivery.ClassServerError {
		t.Errorf("result = %+v, want failed after 2 attempts with %s", res, delivery.ClassServerError)
	}
	if n := len(rcv.Calls()); n != 2 {
		t.Errorf("Deliver called %d times, want 2", n)
	}
	if got, want := h.Calls(), []string{"DisableFailingSubscription", "NotifySubscriptionDisabled"}; !slices.Equal(got, want) {
		t.Fatalf("health activities = %q, want %q", got, want)
	}
	if h.at[0].Sub(start) != sched.Total() {
		t.Errorf("DisableFailingSubscription ran %s after the start, want right after the last attempt (%s)", h.at[0].Sub(start), sched.Total())
	}
	if got := h.Notified(); len(got) != 1 || got[0] != testNotice {
		t.Errorf("notified %+v, want the notice the disable returned", got)
	}
}

func TestDeliveryWorkflow_ExhaustedScheduleOfARecentlyHealthyEndpointNotifiesNobody(t *testing.T) {
	env := newEnv(t)
	mockDeliver(env, answer(503))
	// Not failing long enough (say, a success two days ago): not disabled.
	h := mockHealth(env, &health{failing: activities.DisableResult{Disabled: false}})

	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute, time.Minute)))

	if res := deliveryFailure(t, env); res.Attempts != 3 {
		t.Errorf("result = %+v, want failed after 3 attempts", res)
	}
	if got, want := h.Calls(), []string{"DisableFailingSubscription"}; !slices.Equal(got, want) {
		t.Errorf("health activities = %q, want %q (no notification when nothing was disabled)", got, want)
	}
}

func TestDeliveryWorkflow_GoneDisablesAndNotifiesOnlyWhenItDisabled(t *testing.T) {
	tests := []struct {
		name      string
		gone      activities.DisableResult
		wantCalls []string
	}{
		{"disabled by this delivery", activities.DisableResult{Disabled: true, Notice: &testNotice},
			[]string{"DisableSubscription", "NotifySubscriptionDisabled"}},
		{"already disabled", activities.DisableResult{}, []string{"DisableSubscription"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			mockDeliver(env, answer(410))
			h := mockHealth(env, &health{gone: tt.gone})

			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

			if res := deliveryFailure(t, env); res.Attempts != 1 || res.Last.Class != delivery.ClassGone {
				t.Errorf("result = %+v, want failed after 1 attempt with %s", res, delivery.ClassGone)
			}
			if got := h.Calls(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("health activities = %q, want %q", got, tt.wantCalls)
			}
			if tt.gone.Disabled {
				if got := h.Notified(); len(got) != 1 || got[0] != testNotice {
					t.Errorf("notified %+v, want the notice the disable returned", got)
				}
			}
		})
	}
}

// The notification retries on its own bounded policy (8 tries, 5 s
// doubling to at most 2 min apart: workflows/delivery.go, notifyRetry),
// then the delivery ends as it would have.
func TestDeliveryWorkflow_NotificationFailureDoesNotHoldTheDelivery(t *testing.T) {
	const retryWait = (5 + 10 + 20 + 40 + 80 + 120 + 120) * time.Second
	tests := []struct {
		name      string
		err       error
		wantTries int
		wantWait  time.Duration
	}{
		{"operator endpoint keeps failing", temporal.NewApplicationError("HTTP 503", string(delivery.ClassServerError)), 8, retryWait},
		{"operator endpoint refuses for good", temporal.NewNonRetryableApplicationError("HTTP 403", string(delivery.ClassClientError), nil), 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			mockDeliver(env, answer(500))
			h := mockHealth(env, &health{failing: activities.DisableResult{Disabled: true, Notice: &testNotice}, notifyErr: tt.err})
			sched := schedule(10 * time.Second)

			start := env.Now()
			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(sched))

			if res := deliveryFailure(t, env); res.Status != delivery.StatusFailed || res.Attempts != 2 {
				t.Errorf("result = %+v, want failed after 2 attempts, as without the notification", res)
			}
			want := append([]string{"DisableFailingSubscription"}, repeat("NotifySubscriptionDisabled", tt.wantTries)...)
			if got := h.Calls(); !slices.Equal(got, want) {
				t.Errorf("health activities = %q, want %q", got, want)
			}
			if elapsed := env.Now().Sub(start); elapsed != sched.Total()+tt.wantWait {
				t.Errorf("workflow took %s, want %s: the schedule, then the notification's retries", elapsed, sched.Total()+tt.wantWait)
			}
		})
	}
}

func TestDeliveryWorkflow_DisableFailureDoesNotChangeTheOutcome(t *testing.T) {
	env := newEnv(t)
	mockDeliver(env, answer(500))
	h := mockHealth(env, &health{disableErr: errors.New("store unreachable")})

	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

	if res := deliveryFailure(t, env); res.Status != delivery.StatusFailed || res.Attempts != 2 {
		t.Errorf("result = %+v, want failed after 2 attempts", res)
	}
	// The activity's infrastructure retries, then nothing: no notification.
	if got, want := h.Calls(), repeat("DisableFailingSubscription", infraInvocations); !slices.Equal(got, want) {
		t.Errorf("health activities = %q, want %q", got, want)
	}
}

// Only a delivery that used up its schedule asks to disable a failing
// subscription; a final 4xx, a success, a skip or a cancel does not.
func TestDeliveryWorkflow_OnlyAnExhaustedScheduleChecksTheFailureClock(t *testing.T) {
	tests := []struct {
		name   string
		script []outcome
		cancel bool
	}{
		{"final client error", []outcome{answer(400)}, false},
		{"delivered after failures", []outcome{answer(500), answer(200)}, false},
		{"skipped", []outcome{skipped}, false},
		{"canceled while waiting", []outcome{answer(500)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			mockDeliver(env, tt.script...)
			h := mockHealth(env, &health{failing: activities.DisableResult{Disabled: true, Notice: &testNotice}})
			if tt.cancel {
				env.RegisterDelayedCallback(env.CancelWorkflow, 30*time.Second)
			}

			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			if got := h.Calls(); len(got) != 0 {
				t.Errorf("health activities = %q, want none", got)
			}
		})
	}
}

// With the activities' defaults (DisableAfter zero: automatic disabling
// off), the real DisableFailingSubscription disables nothing and touches no
// store, so an exhausted delivery fails exactly as before.
func TestDeliveryWorkflow_AutomaticDisablingOffDisablesNothing(t *testing.T) {
	env := newEnv(t) // registers &activities.Activities{}: no store, DisableAfter 0
	mockDeliver(env, answer(500))
	env.OnActivity(acts.NotifySubscriptionDisabled, mock.Anything, mock.Anything).Return(nil).Never()

	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

	if res := deliveryFailure(t, env); res.Status != delivery.StatusFailed || res.Attempts != 2 {
		t.Errorf("result = %+v, want failed after 2 attempts", res)
	}
	env.AssertExpectations(t)
}

// A cancel that arrives while the disable runs (an operator cancelling the
// event, say) neither stops the disable nor leaves it unreported: the
// delivery's outcome was decided before.
func TestDeliveryWorkflow_CancelDuringTheDisableStillNotifies(t *testing.T) {
	sched := schedule(10 * time.Second)
	tests := []struct {
		name   string
		script outcome
		// last is when the last attempt ends, from the start.
		last time.Duration
	}{
		{"schedule exhausted", answer(500), sched.Total()},
		{"410 Gone", answer(410), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			mockDeliver(env, tt.script)
			var (
				mu       sync.Mutex
				notified []activities.OperatorEvent
			)
			disabled := activities.DisableResult{Disabled: true, Notice: &testNotice}
			env.OnActivity(acts.DisableFailingSubscription, mock.Anything, mock.Anything).After(time.Minute).Return(disabled, nil)
			env.OnActivity(acts.DisableSubscription, mock.Anything, mock.Anything).After(time.Minute).Return(disabled, nil)
			env.OnActivity(acts.NotifySubscriptionDisabled, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.NotifyInput) error {
					mu.Lock()
					defer mu.Unlock()
					notified = append(notified, in.Event)
					return nil
				})
			// The disable starts right after the last attempt and takes a
			// minute; the cancel comes in the middle of it.
			env.RegisterDelayedCallback(env.CancelWorkflow, tt.last+30*time.Second)

			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(sched))

			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(notified) != 1 || notified[0] != testNotice {
				t.Errorf("notified %+v, want the notice once although the workflow was cancelled meanwhile", notified)
			}
		})
	}
}
