package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/workflows"
)

// These tests run the workflows in the SDK's time-skipping test environment
// with the activities mocked: timers fire as soon as the workflow blocks, so
// a three-day retry schedule runs in milliseconds and env.Now() tells how
// much workflow time passed.

var testEvent = event.Event{
	ID:        "evt_1",
	Type:      event.TypeUserCreated,
	Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
	AccountID: "acct_1",
	Data:      event.Data{User: event.User{ID: "usr_1", Email: "ada@example.com"}},
}

const testSubID = "sub_1"

// The activities as the workflows name them, for OnActivity.
var acts *activities.Activities

// newEnv returns a test environment with everything registered the way a
// worker registers it.
func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	// The SDK logs every failed activity as an error; keep that for -v.
	out := io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(out, nil))))
	env := suite.NewTestWorkflowEnvironment()
	workflows.Register(env, &activities.Activities{})
	return env
}

// schedule returns a schedule with the given delays and no jitter, so that
// attempt times are exact; a receiver's Retry-After is capped at 1 h.
func schedule(delays ...time.Duration) *delivery.Schedule {
	s := &delivery.Schedule{MaxRetryAfter: delivery.Duration(time.Hour)}
	for _, d := range delays {
		s.Delays = append(s.Delays, delivery.Duration(d))
	}
	return s
}

func deliveryInput(s *delivery.Schedule) workflows.DeliveryInput {
	return workflows.DeliveryInput{Event: testEvent, SubscriptionID: testSubID, Schedule: s}
}

// outcome is one scripted result of the Deliver activity.
type outcome func(in activities.DeliverInput) (delivery.Attempt, error)

// answer is a receiver answering with an HTTP status, reported the way
// Activities.Deliver reports it: the record on success, otherwise a
// non-retryable application error typed by class and carrying the record.
func answer(code int) outcome { return answerRetryAfter(code, 0) }

func answerRetryAfter(code int, retryAfter time.Duration) outcome {
	return func(in activities.DeliverInput) (delivery.Attempt, error) {
		rec := delivery.Attempt{Number: in.Attempt, StatusCode: code, DurationMs: 12, Class: delivery.ClassifyStatus(code)}
		if rec.Class == "" {
			return rec, nil
		}
		rec.Error = fmt.Sprintf("HTTP %d", code)
		rec.RetryAfter = delivery.Duration(retryAfter)
		msg := fmt.Sprintf("attempt %d: %s", rec.Number, rec.Error)
		return rec, temporal.NewNonRetryableApplicationError(msg, string(rec.Class), nil, rec)
	}
}

// skipped is a subscription that was disabled before the attempt.
func skipped(in activities.DeliverInput) (delivery.Attempt, error) {
	return delivery.Attempt{Number: in.Attempt, Skipped: true, Error: "subscription is disabled"}, nil
}

// storeDown is a fault on our side: a plain error, which the activity's
// own retry policy retries.
func storeDown(in activities.DeliverInput) (delivery.Attempt, error) {
	return delivery.Attempt{}, fmt.Errorf("load subscription %s: store unreachable", in.SubscriptionID)
}

// deliverCall is one invocation of the mocked Deliver activity.
type deliverCall struct {
	WorkflowID string // the delivery workflow that ran it
	In         activities.DeliverInput
	At         time.Time // workflow time
}

// receiver mocks Deliver and records every invocation. It answers each
// invocation with the next outcome of its script (the last one repeats), or
// by subscription when bySub is set. Safe for concurrent use: children run
// their activities in parallel.
type receiver struct {
	env    *testsuite.TestWorkflowEnvironment
	script []outcome
	bySub  map[string]outcome

	mu    sync.Mutex
	calls []deliverCall
}

func mockDeliver(env *testsuite.TestWorkflowEnvironment, script ...outcome) *receiver {
	r := &receiver{env: env, script: script}
	env.OnActivity(acts.Deliver, mock.Anything, mock.Anything).Return(r.deliver)
	return r
}

func mockDeliverBySubscription(env *testsuite.TestWorkflowEnvironment, bySub map[string]outcome) *receiver {
	r := &receiver{env: env, bySub: bySub}
	env.OnActivity(acts.Deliver, mock.Anything, mock.Anything).Return(r.deliver)
	return r
}

func (r *receiver) deliver(ctx context.Context, in activities.DeliverInput) (delivery.Attempt, error) {
	r.mu.Lock()
	r.calls = append(r.calls, deliverCall{WorkflowID: activity.GetInfo(ctx).WorkflowExecution.ID, In: in, At: r.env.Now()})
	n := len(r.calls)
	r.mu.Unlock()
	if r.bySub != nil {
		o, ok := r.bySub[in.SubscriptionID]
		if !ok {
			return delivery.Attempt{}, temporal.NewNonRetryableApplicationError("unexpected subscription "+in.SubscriptionID, "Test", nil)
		}
		return o(in)
	}
	return r.script[min(n, len(r.script))-1](in)
}

func (r *receiver) Calls() []deliverCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// attempts lists the Attempt number of each invocation, in order.
func (r *receiver) attempts() []int {
	var n []int
	for _, c := range r.Calls() {
		n = append(n, c.In.Attempt)
	}
	return n
}

// offsets lists when each invocation happened, relative to start.
func (r *receiver) offsets(start time.Time) []time.Duration {
	var d []time.Duration
	for _, c := range r.Calls() {
		d = append(d, c.At.Sub(start))
	}
	return d
}

// statusUpdate is one upsert of the delivery-status search attributes.
type statusUpdate struct {
	Status   string
	Attempts int64
}

// recordStatuses captures the delivery workflow's search-attribute upserts
// (the test environment has no visibility store to query).
func recordStatuses(env *testsuite.TestWorkflowEnvironment) func() []statusUpdate {
	var (
		mu  sync.Mutex
		got []statusUpdate
	)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		status, _ := sa.GetKeyword(workflows.AttrDeliveryStatus)
		attempts, _ := sa.GetInt64(workflows.AttrAttempts)
		mu.Lock()
		got = append(got, statusUpdate{status, attempts})
		mu.Unlock()
	})
	return func() []statusUpdate {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// deliveryFailure checks that the workflow failed with ErrTypeDeliveryFailed
// and returns the DeliveryResult its details carry.
func deliveryFailure(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.DeliveryResult {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeDeliveryFailed {
		t.Fatalf("workflow error = %v, want an application error of type %s", err, workflows.ErrTypeDeliveryFailed)
	}
	if !appErr.NonRetryable() {
		t.Error("DeliveryFailed error is retryable; a failed delivery must not be retried by a workflow retry policy")
	}
	var res workflows.DeliveryResult
	if err := appErr.Details(&res); err != nil {
		t.Fatalf("decode DeliveryFailed details: %v", err)
	}
	return res
}

// deliveryResult checks that the workflow completed without error and
// returns its result.
func deliveryResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.DeliveryResult {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error = %v, want none", err)
	}
	var res workflows.DeliveryResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("decode result: %v", err)
	}
	return res
}

func TestDeliveryWorkflow_RetriesServerErrorsOnScheduleUntilDelivered(t *testing.T) {
	env := newEnv(t)
	statuses := recordStatuses(env)
	rcv := mockDeliver(env, answer(500), answer(500), answer(200))
	sched := schedule(10*time.Second, time.Minute)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.DeliveryWorkflowID(testEvent.ID, testSubID)})

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(sched))

	res := deliveryResult(t, env)
	if res.Status != delivery.StatusDelivered || res.Attempts != 3 || res.Last.StatusCode != 200 {
		t.Errorf("result = %+v, want delivered on attempt 3 with HTTP 200", res)
	}
	if got, want := rcv.attempts(), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("Deliver attempts = %v, want %v", got, want)
	}
	if got, want := rcv.offsets(start), []time.Duration{0, 10 * time.Second, 70 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("Deliver called at %v, want %v (the schedule's delays, no jitter)", got, want)
	}
	if elapsed := env.Now().Sub(start); elapsed != sched.Total() {
		t.Errorf("workflow took %s, want the schedule's total %s", elapsed, sched.Total())
	}
	for _, c := range rcv.Calls() {
		if c.In.SubscriptionID != testSubID || c.In.Event.ID != testEvent.ID {
			t.Errorf("Deliver input = %+v, want event %s to subscription %s", c.In, testEvent.ID, testSubID)
		}
	}
	want := []statusUpdate{{"retrying", 1}, {"retrying", 2}, {"delivered", 3}}
	if got := statuses(); !slices.Equal(got, want) {
		t.Errorf("search attribute updates = %v, want %v", got, want)
	}
}

func TestDeliveryWorkflow_FinalClientErrorFailsAtOnce(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 422} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			env := newEnv(t)
			rcv := mockDeliver(env, answer(code), answer(200))
			env.OnActivity(acts.DisableSubscription, mock.Anything, mock.Anything).Return(activities.DisableResult{}, nil).Never()
			env.OnActivity(acts.DisableFailingSubscription, mock.Anything, mock.Anything).Return(activities.DisableResult{}, nil).Never()

			start := env.Now()
			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute, time.Minute)))

			res := deliveryFailure(t, env)
			if res.Status != delivery.StatusFailed || res.Attempts != 1 {
				t.Errorf("result = %+v, want status failed after 1 attempt", res)
			}
			if res.Last.StatusCode != code || res.Last.Class != delivery.ClassClientError {
				t.Errorf("last attempt = %+v, want HTTP %d (%s)", res.Last, code, delivery.ClassClientError)
			}
			if n := len(rcv.Calls()); n != 1 {
				t.Errorf("Deliver called %d times, want 1", n)
			}
			if elapsed := env.Now().Sub(start); elapsed != 0 {
				t.Errorf("workflow waited %s, want no wait", elapsed)
			}
			env.AssertExpectations(t)
		})
	}
}

func TestDeliveryWorkflow_RetryAfterLengthensButNeverShortensTheWait(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		wantGap    time.Duration
	}{
		{"longer than the schedule's delay", 90 * time.Second, 90 * time.Second},
		{"above MaxRetryAfter is clamped", 48 * time.Hour, time.Hour},
		{"shorter than the schedule's delay is ignored", time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			rcv := mockDeliver(env, answerRetryAfter(429, tt.retryAfter), answer(200))

			start := env.Now()
			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(10*time.Second)))

			if res := deliveryResult(t, env); res.Status != delivery.StatusDelivered || res.Attempts != 2 {
				t.Errorf("result = %+v, want delivered on attempt 2", res)
			}
			if got, want := rcv.offsets(start), []time.Duration{0, tt.wantGap}; !slices.Equal(got, want) {
				t.Errorf("Deliver called at %v, want %v", got, want)
			}
		})
	}
}

func TestDeliveryWorkflow_FailsWhenScheduleIsExhausted(t *testing.T) {
	env := newEnv(t)
	statuses := recordStatuses(env)
	rcv := mockDeliver(env, answer(500))
	sched := schedule(10*time.Second, time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(sched))

	res := deliveryFailure(t, env)
	if res.Status != delivery.StatusFailed || res.Attempts != 3 || res.Last.Class != delivery.ClassServerError {
		t.Errorf("result = %+v, want failed after 3 attempts with %s", res, delivery.ClassServerError)
	}
	if got, want := rcv.attempts(), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("Deliver attempts = %v, want %v", got, want)
	}
	// The last attempt is final: no wait after it.
	if elapsed := env.Now().Sub(start); elapsed != sched.Total() {
		t.Errorf("workflow took %s, want %s", elapsed, sched.Total())
	}
	if got := statuses(); len(got) == 0 || got[len(got)-1] != (statusUpdate{"failed", 3}) {
		t.Errorf("search attribute updates = %v, want the last to be failed after 3", got)
	}
}

func TestDeliveryWorkflow_RetryNowSignalCutsTheWaitShort(t *testing.T) {
	env := newEnv(t)
	rcv := mockDeliver(env, answer(503), answer(200))
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalRetryNow, nil)
	}, time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Hour)))

	if res := deliveryResult(t, env); res.Status != delivery.StatusDelivered || res.Attempts != 2 {
		t.Errorf("result = %+v, want delivered on attempt 2", res)
	}
	if got, want := rcv.offsets(start), []time.Duration{0, time.Minute}; !slices.Equal(got, want) {
		t.Errorf("Deliver called at %v, want %v: the signal, not the 1 h timer, should start attempt 2", got, want)
	}
}

// Signals that arrive outside a wait (here: two before the first wait even
// starts) must not skip later waits.
func TestDeliveryWorkflow_RetryNowSignalsSentBeforeAWaitAreDropped(t *testing.T) {
	env := newEnv(t)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalRetryNow, nil)
		env.SignalWorkflow(workflows.SignalRetryNow, nil)
	}, 0)
	rcv := mockDeliver(env, answer(503), answer(503), answer(200))

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Hour, time.Hour)))

	if res := deliveryResult(t, env); res.Status != delivery.StatusDelivered || res.Attempts != 3 {
		t.Errorf("result = %+v, want delivered on attempt 3", res)
	}
	if got, want := rcv.offsets(start), []time.Duration{0, time.Hour, 2 * time.Hour}; !slices.Equal(got, want) {
		t.Errorf("Deliver called at %v, want %v: early signals must not skip the waits", got, want)
	}
}

func TestDeliveryWorkflow_CancelDuringWaitEndsCanceledWithoutAnotherAttempt(t *testing.T) {
	env := newEnv(t)
	statuses := recordStatuses(env)
	rcv := mockDeliver(env, answer(500))
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Hour, time.Hour)))

	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	err := env.GetWorkflowError()
	if !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error = %v, want canceled", err)
	}
	var canceled *temporal.CanceledError
	var res workflows.DeliveryResult
	if !errors.As(err, &canceled) || canceled.Details(&res) != nil || res.Status != delivery.StatusCanceled || res.Attempts != 1 {
		t.Errorf("canceled error details = %+v, want a DeliveryResult canceled after 1 attempt", res)
	}
	if n := len(rcv.Calls()); n != 1 {
		t.Errorf("Deliver called %d times, want 1", n)
	}
	if elapsed := env.Now().Sub(start); elapsed != 10*time.Minute {
		t.Errorf("workflow ended after %s, want at the cancel (10m0s)", elapsed)
	}
	if got := statuses(); len(got) == 0 || got[len(got)-1] != (statusUpdate{"canceled", 1}) {
		t.Errorf("search attribute updates = %v, want the last to be canceled after 1", got)
	}
}

func TestDeliveryWorkflow_GoneDisablesSubscriptionAndFails(t *testing.T) {
	tests := []struct {
		name       string
		disableErr error
		// wantDisableCalls counts activity invocations, retries included.
		wantDisableCalls int
	}{
		{"disable succeeds", nil, 1},
		// A store outage must not turn a final answer into another outcome.
		{"disable keeps failing", errors.New("store unreachable"), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			rcv := mockDeliver(env, answer(410), answer(200))
			var (
				mu       sync.Mutex
				disabled []activities.DisableInput
			)
			env.OnActivity(acts.DisableSubscription, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.DisableInput) (activities.DisableResult, error) {
					mu.Lock()
					defer mu.Unlock()
					disabled = append(disabled, in)
					return activities.DisableResult{}, tt.disableErr
				})

			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

			res := deliveryFailure(t, env)
			if res.Status != delivery.StatusFailed || res.Attempts != 1 || res.Last.Class != delivery.ClassGone {
				t.Errorf("result = %+v, want failed after 1 attempt with %s", res, delivery.ClassGone)
			}
			if n := len(rcv.Calls()); n != 1 {
				t.Errorf("Deliver called %d times, want 1", n)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(disabled) != tt.wantDisableCalls {
				t.Errorf("DisableSubscription called %d times, want %d", len(disabled), tt.wantDisableCalls)
			}
			for _, in := range disabled {
				if in.SubscriptionID != testSubID || in.Reason != activities.ReasonGone {
					t.Errorf("DisableSubscription input = %+v, want subscription %s and reason %q", in, testSubID, activities.ReasonGone)
				}
			}
		})
	}
}

func TestDeliveryWorkflow_SkippedAttemptCompletesAsSkipped(t *testing.T) {
	env := newEnv(t)
	statuses := recordStatuses(env)
	rcv := mockDeliver(env, skipped, answer(200))

	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

	res := deliveryResult(t, env)
	if res.Status != delivery.StatusSkipped || res.Attempts != 1 || !res.Last.Skipped {
		t.Errorf("result = %+v, want skipped after 1 attempt", res)
	}
	if n := len(rcv.Calls()); n != 1 {
		t.Errorf("Deliver called %d times, want 1", n)
	}
	if got, want := statuses(), []statusUpdate{{"skipped", 1}}; !slices.Equal(got, want) {
		t.Errorf("search attribute updates = %v, want %v", got, want)
	}
}

// The Deliver activity retries faults on our side itself: 5 invocations
// with backoffs of 1, 2, 4 and 8 s (workflows/delivery.go, infraRetry).
const (
	infraInvocations = 5
	infraBackoff     = 15 * time.Second
)

func TestDeliveryWorkflow_InfrastructureFaultCountsAsOneAttemptAndKeepsToSchedule(t *testing.T) {
	env := newEnv(t)
	script := make([]outcome, 0, infraInvocations+1)
	for range infraInvocations {
		script = append(script, storeDown)
	}
	rcv := mockDeliver(env, append(script, answer(200))...)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

	res := deliveryResult(t, env)
	if res.Status != delivery.StatusDelivered || res.Attempts != 2 {
		t.Errorf("result = %+v, want delivered on attempt 2", res)
	}
	wantAttempts := []int{1, 1, 1, 1, 1, 2}
	if got := rcv.attempts(); !slices.Equal(got, wantAttempts) {
		t.Errorf("Deliver attempts = %v, want %v (activity retries reuse attempt 1)", got, wantAttempts)
	}
	offsets := rcv.offsets(start)
	if len(offsets) == len(wantAttempts) {
		if got, want := offsets[infraInvocations], infraBackoff+time.Minute; got != want {
			t.Errorf("attempt 2 at %s, want %s: activity retries, then the schedule's delay", got, want)
		}
	}
}

func TestDeliveryWorkflow_PersistentInfrastructureFaultFailsAsInternalError(t *testing.T) {
	env := newEnv(t)
	rcv := mockDeliver(env, storeDown)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Minute)))

	res := deliveryFailure(t, env)
	if res.Status != delivery.StatusFailed || res.Attempts != 2 || res.Last.Class != delivery.ClassInternal || res.Last.Number != 2 {
		t.Errorf("result = %+v, want failed after 2 attempts, the last with class %s", res, delivery.ClassInternal)
	}
	if res.Last.Error == "" {
		t.Error("the internal attempt's record has no error text")
	}
	if n := len(rcv.Calls()); n != 2*infraInvocations {
		t.Errorf("Deliver called %d times, want %d", n, 2*infraInvocations)
	}
	if elapsed, want := env.Now().Sub(start), 2*infraBackoff+time.Minute; elapsed != want {
		t.Errorf("workflow took %s, want %s", elapsed, want)
	}
}

func TestDeliveryWorkflow_DefaultScheduleJitterIsSeededByWorkflowID(t *testing.T) {
	ids := []string{"delivery/evt/sub", "delivery/evt/other"}
	gaps := map[string]time.Duration{}
	for _, id := range ids {
		gaps[id], _ = delivery.DefaultSchedule().NextDelay(1, 0, id)
	}
	if gaps[ids[0]] == gaps[ids[1]] {
		t.Fatalf("test is void: both IDs jitter to %s", gaps[ids[0]])
	}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			env := newEnv(t)
			rcv := mockDeliver(env, answer(500), answer(200))
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id})

			start := env.Now()
			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(nil))

			if res := deliveryResult(t, env); res.Status != delivery.StatusDelivered {
				t.Errorf("result = %+v, want delivered", res)
			}
			if got, want := rcv.offsets(start), []time.Duration{0, gaps[id]}; !slices.Equal(got, want) {
				t.Errorf("Deliver called at %v, want %v", got, want)
			}
		})
	}
}

// subscriptions mocks MatchSubscriptions over a sorted list of subscription
// IDs, paging the way the real activity does (More when a page is full),
// and records each request.
type subscriptions struct {
	ids []string

	mu       sync.Mutex
	requests []activities.MatchInput
}

func mockMatch(env *testsuite.TestWorkflowEnvironment, ids ...string) *subscriptions {
	s := &subscriptions{ids: ids}
	env.OnActivity(acts.MatchSubscriptions, mock.Anything, mock.Anything).Return(s.match)
	return s
}

func (s *subscriptions) match(_ context.Context, in activities.MatchInput) (activities.MatchResult, error) {
	s.mu.Lock()
	s.requests = append(s.requests, in)
	s.mu.Unlock()
	if in.AccountID != testEvent.AccountID || in.EventType != testEvent.Type || in.Limit <= 0 {
		return activities.MatchResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("unexpected request %+v", in), "Test", nil)
	}
	rest := s.ids
	if in.AfterID != "" {
		i := slices.Index(s.ids, in.AfterID)
		if i < 0 {
			return activities.MatchResult{}, temporal.NewNonRetryableApplicationError("unknown AfterID "+in.AfterID, "Test", nil)
		}
		rest = s.ids[i+1:]
	}
	page := rest[:min(in.Limit, len(rest))]
	res := activities.MatchResult{Targets: []activities.Target{}, More: len(page) == in.Limit}
	for _, id := range page {
		res.Targets = append(res.Targets, activities.Target{SubscriptionID: id, Endpoint: "https://" + id + ".example.com"})
	}
	return res, nil
}

func (s *subscriptions) Requests() []activities.MatchInput {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *subscriptions) afterIDs() []string {
	var ids []string
	for _, r := range s.Requests() {
		ids = append(ids, r.AfterID)
	}
	return ids
}

// recordChildren lists the IDs of the child workflows started.
func recordChildren(env *testsuite.TestWorkflowEnvironment) func() []string {
	var (
		mu  sync.Mutex
		ids []string
	)
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, info.WorkflowExecution.ID)
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(ids))
	}
}

func summary(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.Summary {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error = %v, want none", err)
	}
	var sum workflows.Summary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatalf("decode summary: %v", err)
	}
	return sum
}

func TestUserEventWorkflow_OnePageIsDeliveredWithoutBatches(t *testing.T) {
	env := newEnv(t)
	children := recordChildren(env)
	subs := mockMatch(env, "sub_a", "sub_b", "sub_c")
	rcv := mockDeliver(env, answer(200))

	env.ExecuteWorkflow(workflows.UserEventWorkflow, workflows.UserEventInput{Event: testEvent})

	if got, want := summary(t, env), (workflows.Summary{Subscriptions: 3, Delivered: 3}); got != want {
		t.Errorf("summary = %+v, want %+v", got, want)
	}
	reqs := subs.Requests()
	if len(reqs) != 1 || reqs[0].AfterID != "" {
		t.Fatalf("MatchSubscriptions requests = %+v, want one for the first page", reqs)
	}
	if limit := reqs[0].Limit; limit != workflows.MaxBatchSize {
		t.Errorf("page limit = %d, want MaxBatchSize (%d) for a small event", limit, workflows.MaxBatchSize)
	}
	want := []string{
		workflows.DeliveryWorkflowID(testEvent.ID, "sub_a"),
		workflows.DeliveryWorkflowID(testEvent.ID, "sub_b"),
		workflows.DeliveryWorkflowID(testEvent.ID, "sub_c"),
	}
	if got := children(); !slices.Equal(got, want) {
		t.Errorf("children = %q, want %q", got, want)
	}
	var ran []string
	for _, c := range rcv.Calls() {
		ran = append(ran, c.WorkflowID)
	}
	if slices.Sort(ran); !slices.Equal(ran, want) {
		t.Errorf("Deliver ran in workflows %q, want %q", ran, want)
	}
}

func TestUserEventWorkflow_LargeFanOutRunsInBatches(t *testing.T) {
	tests := []struct {
		name         string
		subs         []string
		batchSize    int
		wantAfterIDs []string
		wantBatches  int
	}{
		{"last page partly full", []string{"s1", "s2", "s3", "s4", "s5"}, 2, []string{"", "s2", "s4"}, 3},
		{"last page empty", []string{"s1", "s2", "s3", "s4"}, 2, []string{"", "s2", "s4"}, 2},
		{"one full page", []string{"s1", "s2", "s3"}, 3, []string{"", "s3"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			children := recordChildren(env)
			subs := mockMatch(env, tt.subs...)
			rcv := mockDeliver(env, answer(204))

			env.ExecuteWorkflow(workflows.UserEventWorkflow, workflows.UserEventInput{Event: testEvent, BatchSize: tt.batchSize})

			n := len(tt.subs)
			want := workflows.Summary{Subscriptions: n, Delivered: n, Batches: tt.wantBatches}
			if got := summary(t, env); got != want {
				t.Errorf("summary = %+v, want %+v", got, want)
			}
			if got := subs.afterIDs(); !slices.Equal(got, tt.wantAfterIDs) {
				t.Errorf("MatchSubscriptions AfterIDs = %q, want %q", got, tt.wantAfterIDs)
			}
			for _, r := range subs.Requests() {
				if r.Limit != tt.batchSize {
					t.Errorf("page limit = %d, want the batch size %d", r.Limit, tt.batchSize)
				}
			}
			var wantChildren []string
			for i := 1; i <= tt.wantBatches; i++ {
				wantChildren = append(wantChildren, workflows.BatchWorkflowID(testEvent.ID, i))
			}
			for _, s := range tt.subs {
				wantChildren = append(wantChildren, workflows.DeliveryWorkflowID(testEvent.ID, s))
			}
			slices.Sort(wantChildren)
			if got := children(); !slices.Equal(got, wantChildren) {
				t.Errorf("children = %q, want %q", got, wantChildren)
			}
			if got := len(rcv.Calls()); got != n {
				t.Errorf("Deliver called %d times, want %d", got, n)
			}
		})
	}
}

func TestUserEventWorkflow_SummaryCountsEachOutcome(t *testing.T) {
	tests := []struct {
		name        string
		batchSize   int
		wantBatches int
	}{
		{"one batch", 0, 0},
		{"in batches", 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			mockMatch(env, "sub_bad_request", "sub_ok", "sub_skipped")
			rcv := mockDeliverBySubscription(env, map[string]outcome{
				"sub_bad_request": answer(400),
				"sub_ok":          answer(200),
				"sub_skipped":     skipped,
			})

			env.ExecuteWorkflow(workflows.UserEventWorkflow, workflows.UserEventInput{Event: testEvent, BatchSize: tt.batchSize})

			want := workflows.Summary{Subscriptions: 3, Delivered: 1, Failed: 1, Skipped: 1, Batches: tt.wantBatches}
			if got := summary(t, env); got != want {
				t.Errorf("summary = %+v, want %+v", got, want)
			}
			if n := len(rcv.Calls()); n != 3 {
				t.Errorf("Deliver called %d times, want 3", n)
			}
		})
	}
}

func TestUserEventWorkflow_CancelCancelsDeliveries(t *testing.T) {
	env := newEnv(t)
	mockMatch(env, "sub_a", "sub_b")
	rcv := mockDeliver(env, answer(500))
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)

	env.ExecuteWorkflow(workflows.UserEventWorkflow, workflows.UserEventInput{Event: testEvent})

	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	err := env.GetWorkflowError()
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("workflow error = %v, want canceled", err)
	}
	var sum workflows.Summary
	if err := canceled.Details(&sum); err != nil {
		t.Fatalf("decode canceled details: %v", err)
	}
	if want := (workflows.Summary{Subscriptions: 2, Canceled: 2}); sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
	// Each delivery made its first attempt, then was canceled in its wait.
	if n := len(rcv.Calls()); n != 2 {
		t.Errorf("Deliver called %d times, want 2", n)
	}
}
