package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/workflows"
)

// These tests run a DeliveryWorkflow with a concurrency limit against a
// fake gate: the RequestPermit local activity and the release signals are
// mocked and recorded, and grants are signals the test sends.

// gateCall is a request or a release the fake gate received, at workflow
// time At relative to the test's start.
type gateCall struct {
	Kind      string // "request" or "release"
	RequestID string
	At        time.Duration
}

type fakeGate struct {
	env   *testsuite.TestWorkflowEnvironment
	start time.Time

	mu       sync.Mutex
	calls    []gateCall
	requests []activities.RequestPermitInput
}

func mockGate(env *testsuite.TestWorkflowEnvironment) *fakeGate {
	g := &fakeGate{env: env, start: env.Now()}
	env.OnActivity(acts.RequestPermit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RequestPermitInput) error {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.calls = append(g.calls, gateCall{"request", in.Request.RequestID, g.env.Now().Sub(g.start)})
			g.requests = append(g.requests, in)
			return nil
		})
	env.OnSignalExternalWorkflow(mock.Anything, activities.GateWorkflowID(testSubID), "", workflows.SignalPermitRelease, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.calls = append(g.calls, gateCall{"release", arg.(workflows.PermitRelease).RequestID, g.env.Now().Sub(g.start)})
			return nil
		})
	return g
}

func (g *fakeGate) Calls() []gateCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

// lastRequest is the request the gate received last.
func (g *fakeGate) lastRequest() activities.PermitRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.requests) == 0 {
		return activities.PermitRequest{RequestID: "(none)"}
	}
	return g.requests[len(g.requests)-1].Request
}

// grantAt grants the latest request at workflow time at.
func (g *fakeGate) grantAt(at time.Duration) {
	g.env.RegisterDelayedCallback(func() {
		r := g.lastRequest()
		g.env.SignalWorkflow(workflows.SignalPermitGrant, workflows.PermitGrant{RequestID: r.RequestID, InFlight: 2, Limit: r.Limit})
	}, at)
}

func limitedInput(s *delivery.Schedule) workflows.DeliveryInput {
	in := deliveryInput(s)
	in.MaxInFlight, in.Endpoint = 2, "https://crm.example.com"
	return in
}

// testRunID is the run ID the test environment gives a workflow.
const testRunID = "default-test-run-id"

func TestDeliveryWorkflow_WithALimitEachAttemptHoldsAPermit(t *testing.T) {
	env := newEnv(t)
	gate := mockGate(env)
	rcv := mockDeliver(env, answer(500), answer(200))
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.DeliveryWorkflowID(testEvent.ID, testSubID)})
	gate.grantAt(time.Minute)       // attempt 1
	gate.grantAt(130 * time.Second) // attempt 2, asked after the 10 s wait

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, limitedInput(schedule(10*time.Second)))

	if res := deliveryResult(t, env); res.Status != delivery.StatusDelivered || res.Attempts != 2 {
		t.Errorf("result = %+v, want delivered on attempt 2", res)
	}
	want := []gateCall{
		{"request", testRunID + "/1", 0},
		{"release", testRunID + "/1", time.Minute},
		{"request", testRunID + "/2", 70 * time.Second},
		{"release", testRunID + "/2", 130 * time.Second},
	}
	if got := gate.Calls(); !slices.Equal(got, want) {
		t.Errorf("gate calls:\n got  %+v\n want %+v", got, want)
	}
	if got, want := rcv.offsets(start), []time.Duration{time.Minute, 130 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("Deliver called at %v, want %v (each once its permit is granted)", got, want)
	}
	for _, in := range gate.requests {
		r := in.Request
		if r.WorkflowID != workflows.DeliveryWorkflowID(testEvent.ID, testSubID) || r.RunID != testRunID || r.Limit != 2 ||
			in.Gate != (activities.GateStart{SubscriptionID: testSubID, Endpoint: "https://crm.example.com"}) {
			t.Errorf("permit request = %+v, want one for this run with limit 2, to the gate of %s", in, testSubID)
		}
	}
}

func TestDeliveryWorkflow_AsksAgainWhileTheGrantDoesNotCome(t *testing.T) {
	env := newEnv(t)
	gate := mockGate(env)
	rcv := mockDeliver(env, answer(200))
	gate.grantAt(25 * time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, limitedInput(nil))

	if res := deliveryResult(t, env); res.Status != delivery.StatusDelivered {
		t.Errorf("result = %+v, want delivered", res)
	}
	id := testRunID + "/1"
	want := []gateCall{{"request", id, 0}, {"request", id, 10 * time.Minute}, {"request", id, 20 * time.Minute}, {"release", id, 25 * time.Minute}}
	if got := gate.Calls(); !slices.Equal(got, want) {
		t.Errorf("gate calls:\n got  %+v\n want %+v", got, want)
	}
	if got, want := rcv.offsets(start), []time.Duration{25 * time.Minute}; !slices.Equal(got, want) {
		t.Errorf("Deliver called at %v, want %v", got, want)
	}
}

func TestDeliveryWorkflow_CancelWhileWaitingForAPermitWithdrawsTheRequest(t *testing.T) {
	env := newEnv(t)
	gate := mockGate(env)
	rcv := mockDeliver(env, answer(200))
	statuses := recordStatuses(env)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)

	env.ExecuteWorkflow(workflows.DeliveryWorkflow, limitedInput(nil))

	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error = %v, want canceled", err)
	}
	id := testRunID + "/1"
	if got, want := gate.Calls(), []gateCall{{"request", id, 0}, {"release", id, time.Minute}}; !slices.Equal(got, want) {
		t.Errorf("gate calls:\n got  %+v\n want %+v", got, want)
	}
	if n := len(rcv.Calls()); n != 0 {
		t.Errorf("Deliver called %d times, want never", n)
	}
	if got := statuses(); len(got) == 0 || got[len(got)-1].Status != string(delivery.StatusCanceled) {
		t.Errorf("search attribute updates = %v, want the last to be canceled", got)
	}
}

func TestDeliveryWorkflow_GivesBackAGrantItDidNotAskFor(t *testing.T) {
	env := newEnv(t)
	gate := mockGate(env)
	rcv := mockDeliver(env, answer(200))
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalPermitGrant, workflows.PermitGrant{RequestID: "an-earlier-run/3", InFlight: 1, Limit: 2})
	}, 30*time.Second)
	gate.grantAt(time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, limitedInput(nil))

	deliveryResult(t, env)
	id := testRunID + "/1"
	want := []gateCall{{"request", id, 0}, {"release", "an-earlier-run/3", 30 * time.Second}, {"release", id, time.Minute}}
	if got := gate.Calls(); !slices.Equal(got, want) {
		t.Errorf("gate calls:\n got  %+v\n want %+v", got, want)
	}
	if got, want := rcv.offsets(start), []time.Duration{time.Minute}; !slices.Equal(got, want) {
		t.Errorf("Deliver called at %v, want %v: only its own grant lets it go", got, want)
	}
}

func TestDeliveryWorkflow_WithoutALimitNeverAsksForAPermit(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(acts.RequestPermit, mock.Anything, mock.Anything).Return(nil).Never()
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil).Never()
	rcv := mockDeliver(env, answer(200))

	env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(nil))

	deliveryResult(t, env)
	if n := len(rcv.Calls()); n != 1 {
		t.Errorf("Deliver called %d times, want 1", n)
	}
	env.AssertExpectations(t)
}

func TestUserEventWorkflow_PassesTheLimitToLimitedDeliveriesOnly(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(acts.MatchSubscriptions, mock.Anything, mock.Anything).Return(activities.MatchResult{Targets: []activities.Target{
		{SubscriptionID: "sub_limited", Endpoint: "https://slow.example.com", MaxInFlight: 3},
		{SubscriptionID: "sub_free", Endpoint: "https://fast.example.com"},
	}}, nil)
	var (
		mu     sync.Mutex
		inputs = map[string]workflows.DeliveryInput{}
	)
	env.SetOnChildWorkflowStartedListener(func(_ *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		var in workflows.DeliveryInput
		if err := args.Get(&in); err != nil {
			t.Errorf("decode child input: %v", err)
		}
		mu.Lock()
		inputs[in.SubscriptionID] = in
		mu.Unlock()
	})
	env.OnWorkflow(workflows.DeliveryWorkflow, mock.Anything, mock.Anything).Return(workflows.DeliveryResult{Status: delivery.StatusDelivered, Attempts: 1}, nil)

	env.ExecuteWorkflow(workflows.UserEventWorkflow, workflows.UserEventInput{Event: testEvent})

	summary(t, env)
	mu.Lock()
	defer mu.Unlock()
	if in := inputs["sub_limited"]; in.MaxInFlight != 3 || in.Endpoint != "https://slow.example.com" {
		t.Errorf("limited delivery's input has MaxInFlight %d, Endpoint %q; want 3, https://slow.example.com", in.MaxInFlight, in.Endpoint)
	}
	// Unchanged from deliveries before limits existed, byte for byte.
	if in := inputs["sub_free"]; in.MaxInFlight != 0 || in.Endpoint != "" {
		t.Errorf("unlimited delivery's input has MaxInFlight %d, Endpoint %q; want neither", in.MaxInFlight, in.Endpoint)
	}
	if len(inputs) != 2 {
		t.Errorf("%d deliveries started, want 2", len(inputs))
	}
}

// A gate that ends while a delivery waits is covered by the re-sent
// request; a request that fails is retried by the next one.
func TestDeliveryWorkflow_AFailedRequestIsSentAgainLater(t *testing.T) {
	env := newEnv(t)
	var (
		mu    sync.Mutex
		tries []time.Duration
	)
	start := env.Now()
	env.OnActivity(acts.RequestPermit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.RequestPermitInput) error {
			mu.Lock()
			defer mu.Unlock()
			tries = append(tries, env.Now().Sub(start))
			if len(tries) == 1 {
				return temporal.NewNonRetryableApplicationError("frontend unavailable", "Test", errors.New("unavailable"))
			}
			return nil
		})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalPermitGrant, workflows.PermitGrant{RequestID: testRunID + "/1", InFlight: 1, Limit: 2})
	}, 10*time.Minute+time.Second)
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil)
	mockDeliver(env, answer(200))

	env.ExecuteWorkflow(workflows.DeliveryWorkflow, limitedInput(nil))

	deliveryResult(t, env)
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != 2 || tries[1] != 10*time.Minute {
		t.Errorf("RequestPermit called at %v, want at 0s and again after 10m", tries)
	}
}

// TestDeliveryWorkflow_CancelWhileWaitingForAPermitCountsNoAttempt: an
// attempt cancelled before its permit came sent nothing, so neither the
// result nor UserhooksAttempts counts it: they keep the attempts made, and
// the last of them.
func TestDeliveryWorkflow_CancelWhileWaitingForAPermitCountsNoAttempt(t *testing.T) {
	tests := []struct {
		name    string
		answers []outcome
		grants  []time.Duration // when the gate grants; the wait after them is cancelled
		want    int             // attempts made
		last    int             // the last attempt's status code, 0 for none
	}{
		{"waiting for attempt 1", nil, nil, 0, 0},
		{"waiting for attempt 2", []outcome{answer(500)}, []time.Duration{time.Second}, 1, 500},
		{"waiting for attempt 3", []outcome{answer(503), answer(500)}, []time.Duration{time.Second, 20 * time.Second}, 2, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			gate := mockGate(env)
			rcv := mockDeliver(env, tc.answers...)
			statuses := recordStatuses(env)
			for _, at := range tc.grants {
				gate.grantAt(at)
			}
			// Every grant comes within 20 s and retries are 10 s apart:
			// at 5 minutes the next attempt has asked and waits.
			env.RegisterDelayedCallback(env.CancelWorkflow, 5*time.Minute)

			env.ExecuteWorkflow(workflows.DeliveryWorkflow, limitedInput(schedule(10*time.Second, 10*time.Second, 10*time.Second)))

			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			err := env.GetWorkflowError()
			var (
				canceled *temporal.CanceledError
				res      workflows.DeliveryResult
			)
			if !errors.As(err, &canceled) || canceled.Details(&res) != nil {
				t.Fatalf("workflow error = %v, want canceled with a DeliveryResult", err)
			}
			if res.Status != delivery.StatusCanceled || res.Attempts != tc.want || res.Last.StatusCode != tc.last {
				t.Errorf("result = %+v, want canceled after %d attempt(s), the last answered %d", res, tc.want, tc.last)
			}
			if n := len(rcv.Calls()); n != tc.want {
				t.Errorf("Deliver called %d times, want %d", n, tc.want)
			}
			if got := statuses(); len(got) == 0 || got[len(got)-1] != (statusUpdate{"canceled", int64(tc.want)}) {
				t.Errorf("search attribute updates = %v, want the last to be canceled with %d attempt(s)", got, tc.want)
			}
			// The request of the attempt that was not made was withdrawn.
			calls := gate.Calls()
			waiting := fmt.Sprintf("%s/%d", testRunID, tc.want+1)
			if len(calls) < 2 || calls[len(calls)-1] != (gateCall{"release", waiting, 5 * time.Minute}) || calls[len(calls)-2].RequestID != waiting {
				t.Errorf("gate calls %+v, want the request %s withdrawn at the cancel", calls, waiting)
			}
		})
	}
}
