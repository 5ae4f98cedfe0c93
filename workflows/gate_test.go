package workflows_test

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/workflows"
)

// These tests run EndpointGateWorkflow alone: requests and releases are
// signals sent at set workflow times, and its grants (signals to other
// workflows) are recorded by a mock of SignalExternalWorkflow.

// grantRecord is one grant a gate sent, at workflow time At relative to
// the test's start.
type grantRecord struct {
	RequestID string
	To        string // workflow ID/run ID
	InFlight  int
	Limit     int
	At        time.Duration
}

// grantLog records the grants of a gate. Grants to the workflows in ended
// fail, as they do when the requester's run has ended.
type grantLog struct {
	env   *testsuite.TestWorkflowEnvironment
	start time.Time
	ended map[string]bool

	mu     sync.Mutex
	grants []grantRecord
}

func mockGrants(env *testsuite.TestWorkflowEnvironment, ended ...string) *grantLog {
	g := &grantLog{env: env, start: env.Now(), ended: map[string]bool{}}
	for _, id := range ended {
		g.ended[id] = true
	}
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, workflows.SignalPermitGrant, mock.Anything).Return(
		func(_, workflowID, runID, _ string, arg any) error {
			grant := arg.(workflows.PermitGrant)
			g.mu.Lock()
			g.grants = append(g.grants, grantRecord{grant.RequestID, workflowID + "/" + runID, grant.InFlight, grant.Limit, g.env.Now().Sub(g.start)})
			g.mu.Unlock()
			if g.ended[workflowID] {
				return errors.New("unknown external workflow execution")
			}
			return nil
		})
	return g
}

// Grants returns the grants in the order the gate sent them. The mock runs
// each signal in a goroutine, so grants sent at one instant are recorded in
// any order; InFlight tells theirs.
func (g *grantLog) Grants() []grantRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	grants := slices.Clone(g.grants)
	slices.SortStableFunc(grants, func(a, b grantRecord) int {
		if c := cmp.Compare(a.At, b.At); c != 0 {
			return c
		}
		return a.InFlight - b.InFlight
	})
	return grants
}

// permitRequest is the request of the n-th delivery of the tests.
func permitRequest(n, limit int) activities.PermitRequest {
	run := fmt.Sprintf("run-%d", n)
	return activities.PermitRequest{RequestID: run + "/1", WorkflowID: fmt.Sprintf("delivery/evt_%d/%s", n, testSubID), RunID: run, Limit: limit}
}

// grantTo is the grantRecord a gate sends for permitRequest(n, …).
func grantTo(n, inFlight, limit int, at time.Duration) grantRecord {
	r := permitRequest(n, limit)
	return grantRecord{r.RequestID, r.WorkflowID + "/" + r.RunID, inFlight, limit, at}
}

func requestAt(env *testsuite.TestWorkflowEnvironment, r activities.PermitRequest, at time.Duration) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(activities.SignalPermitRequest, r) }, at)
}

func releaseAt(env *testsuite.TestWorkflowEnvironment, requestID string, at time.Duration) {
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalPermitRelease, workflows.PermitRelease{RequestID: requestID})
	}, at)
}

func gateInput() workflows.GateInput {
	return workflows.GateInput{GateStart: activities.GateStart{SubscriptionID: testSubID, Endpoint: "https://crm.example.com"}}
}

// gateResult checks that the gate completed and returns its result and
// how long it ran.
func gateResult(t *testing.T, env *testsuite.TestWorkflowEnvironment, start time.Time) (workflows.GateResult, time.Duration) {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("gate did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("gate error = %v, want none", err)
	}
	var res workflows.GateResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("decode gate result: %v", err)
	}
	return res, env.Now().Sub(start)
}

func assertGrants(t *testing.T, got, want []grantRecord) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("grants:\n got  %+v\n want %+v", got, want)
	}
}

func TestEndpointGate_GrantsInArrivalOrderUpToTheLimit(t *testing.T) {
	env := newEnv(t)
	grants := mockGrants(env)
	for n := 1; n <= 5; n++ {
		requestAt(env, permitRequest(n, 2), time.Duration(n)*time.Second)
	}
	releaseAt(env, "run-1/1", time.Minute)
	releaseAt(env, "run-3/1", 2*time.Minute)
	releaseAt(env, "run-2/1", 3*time.Minute)
	releaseAt(env, "run-4/1", 4*time.Minute)
	releaseAt(env, "run-5/1", 5*time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

	res, ran := gateResult(t, env, start)
	assertGrants(t, grants.Grants(), []grantRecord{
		grantTo(1, 1, 2, time.Second),
		grantTo(2, 2, 2, 2*time.Second),
		grantTo(3, 2, 2, time.Minute),
		grantTo(4, 2, 2, 2*time.Minute),
		grantTo(5, 2, 2, 3*time.Minute),
	})
	if want := (workflows.GateResult{Granted: 5, Released: 5}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	// Idle for two minutes after the last release, then done.
	if want := 7 * time.Minute; ran != want {
		t.Errorf("gate completed after %s, want %s", ran, want)
	}
}

func TestEndpointGate_TheLatestLimitWins(t *testing.T) {
	env := newEnv(t)
	grants := mockGrants(env)
	requestAt(env, permitRequest(1, 1), time.Second)
	requestAt(env, permitRequest(2, 1), 2*time.Second)
	requestAt(env, permitRequest(3, 1), 3*time.Second)
	// The subscription's limit was raised: 3 may be in flight.
	requestAt(env, permitRequest(4, 3), 10*time.Second)
	// Lowered to 1 again: no grant until every permit is back.
	requestAt(env, permitRequest(5, 1), 20*time.Second)
	releaseAt(env, "run-1/1", 30*time.Second)
	releaseAt(env, "run-2/1", 40*time.Second)
	releaseAt(env, "run-3/1", 50*time.Second)
	releaseAt(env, "run-4/1", time.Minute)
	releaseAt(env, "run-5/1", 70*time.Second)

	start := env.Now()
	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

	res, _ := gateResult(t, env, start)
	assertGrants(t, grants.Grants(), []grantRecord{
		grantTo(1, 1, 1, time.Second),
		grantTo(2, 2, 3, 10*time.Second),
		grantTo(3, 3, 3, 10*time.Second),
		// 4 waits: three are held. After the limit fell to 1, it waits
		// until every permit is back.
		{RequestID: "run-4/1", To: permitRequest(4, 0).WorkflowID + "/run-4", InFlight: 1, Limit: 1, At: 50 * time.Second},
		{RequestID: "run-5/1", To: permitRequest(5, 0).WorkflowID + "/run-5", InFlight: 1, Limit: 1, At: time.Minute},
	})
	if res.Granted != 5 || res.Released != 5 {
		t.Errorf("result = %+v, want 5 granted and released", res)
	}
}

func TestEndpointGate_ReclaimsAPermitWhoseLeaseExpired(t *testing.T) {
	env := newEnv(t)
	grants := mockGrants(env)
	requestAt(env, permitRequest(1, 1), 0) // its holder never releases it
	requestAt(env, permitRequest(2, 1), time.Second)
	// A late release and a late copy of the expired request change nothing.
	releaseAt(env, "run-1/1", 6*time.Minute)
	requestAt(env, permitRequest(1, 1), 6*time.Minute+30*time.Second)
	releaseAt(env, "run-2/1", 7*time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

	res, ran := gateResult(t, env, start)
	assertGrants(t, grants.Grants(), []grantRecord{
		grantTo(1, 1, 1, 0),
		grantTo(2, 1, 1, workflows.PermitLease),
	})
	if want := (workflows.GateResult{Granted: 2, Released: 1, Expired: 1, Duplicates: 1}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if want := 9 * time.Minute; ran != want {
		t.Errorf("gate completed after %s, want %s (idle two minutes after the last release)", ran, want)
	}
}

func TestEndpointGate_GrantsARequestIDOnce(t *testing.T) {
	env := newEnv(t)
	grants := mockGrants(env)
	requestAt(env, permitRequest(1, 1), time.Second)
	requestAt(env, permitRequest(2, 1), 2*time.Second)
	requestAt(env, permitRequest(2, 1), 3*time.Second) // still waiting: ignored
	requestAt(env, permitRequest(1, 1), 4*time.Second) // held: its grant is sent again
	releaseAt(env, "run-1/1", time.Minute)
	releaseAt(env, "run-1/1", 70*time.Second) // released twice: ignored
	releaseAt(env, "run-2/1", 2*time.Minute)
	requestAt(env, permitRequest(2, 1), 3*time.Minute) // finished: ignored
	releaseAt(env, "never-asked/1", 3*time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

	res, _ := gateResult(t, env, start)
	assertGrants(t, grants.Grants(), []grantRecord{
		grantTo(1, 1, 1, time.Second),
		grantTo(1, 1, 1, 4*time.Second),
		grantTo(2, 1, 1, time.Minute),
	})
	if want := (workflows.GateResult{Granted: 2, Released: 2, Duplicates: 3}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
}

func TestEndpointGate_ReclaimsAGrantItCannotDeliver(t *testing.T) {
	env := newEnv(t)
	grants := mockGrants(env, permitRequest(1, 1).WorkflowID) // delivery 1 has ended
	requestAt(env, permitRequest(1, 1), time.Second)
	requestAt(env, permitRequest(2, 1), time.Second)
	releaseAt(env, "run-2/1", time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

	res, _ := gateResult(t, env, start)
	assertGrants(t, grants.Grants(), []grantRecord{
		grantTo(1, 1, 1, time.Second),
		grantTo(2, 1, 1, time.Second),
	})
	if want := (workflows.GateResult{Granted: 2, Released: 1, Reclaimed: 1}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
}

func TestEndpointGate_AWithdrawnRequestIsNeverGranted(t *testing.T) {
	env := newEnv(t)
	grants := mockGrants(env)
	requestAt(env, permitRequest(1, 1), time.Second)
	requestAt(env, permitRequest(2, 1), 2*time.Second)
	requestAt(env, permitRequest(3, 1), 3*time.Second)
	releaseAt(env, "run-2/1", 30*time.Second) // delivery 2 cancelled while waiting
	releaseAt(env, "run-1/1", time.Minute)
	releaseAt(env, "run-3/1", 2*time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

	res, _ := gateResult(t, env, start)
	assertGrants(t, grants.Grants(), []grantRecord{
		grantTo(1, 1, 1, time.Second),
		grantTo(3, 1, 1, time.Minute),
	})
	if want := (workflows.GateResult{Granted: 2, Released: 2, Withdrawn: 1}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
}

// A request that comes just before the end of the idle time is granted,
// and the idle time starts again after its release. (One that comes while
// the gate completes makes the server refuse the completion, and the gate
// takes it in before returning; one that comes after starts a new run. The
// test environment models neither.)
func TestEndpointGate_AnIdleGateStaysForARequestThatComesInTime(t *testing.T) {
	for _, late := range []time.Duration{time.Millisecond, time.Minute} {
		t.Run(fmt.Sprintf("%s before the end of the idle time", late), func(t *testing.T) {
			env := newEnv(t)
			grants := mockGrants(env)
			requestAt(env, permitRequest(1, 1), time.Second)
			releaseAt(env, "run-1/1", 10*time.Second)
			idleEnd := 10*time.Second + 2*time.Minute
			requestAt(env, permitRequest(2, 1), idleEnd-late)
			releaseAt(env, "run-2/1", 5*time.Minute)

			start := env.Now()
			env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

			res, ran := gateResult(t, env, start)
			assertGrants(t, grants.Grants(), []grantRecord{
				grantTo(1, 1, 1, time.Second),
				grantTo(2, 1, 1, idleEnd-late),
			})
			if res.Granted != 2 || res.Released != 2 {
				t.Errorf("result = %+v, want both requests granted and released", res)
			}
			if want := 7 * time.Minute; ran != want {
				t.Errorf("gate completed after %s, want %s", ran, want)
			}
		})
	}
}

func TestEndpointGate_ContinuesAsNewWithItsState(t *testing.T) {
	tests := []struct {
		name    string
		trigger func(env *testsuite.TestWorkflowEnvironment)
	}{
		{"when the server suggests it", func(env *testsuite.TestWorkflowEnvironment) { env.SetContinueAsNewSuggested(true) }},
		{"when its history reaches the budget", func(env *testsuite.TestWorkflowEnvironment) { env.SetCurrentHistoryLength(500) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			grants := mockGrants(env)
			for n := 1; n <= 4; n++ {
				requestAt(env, permitRequest(n, 2), time.Duration(n)*time.Second)
			}
			env.RegisterDelayedCallback(func() { tt.trigger(env) }, 50*time.Second)
			releaseAt(env, "run-1/1", time.Minute)

			in := gateInput()
			in.EventBudget = 500
			env.ExecuteWorkflow(workflows.EndpointGateWorkflow, in)

			var can *workflow.ContinueAsNewError
			if err := env.GetWorkflowError(); !errors.As(err, &can) {
				t.Fatalf("gate ended with %v, want continue-as-new", err)
			}
			var next workflows.GateInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				t.Fatalf("decode the next run's input: %v", err)
			}
			var held []string
			for _, p := range next.Holders {
				held = append(held, p.RequestID)
				if want := p.GrantedAt.Add(workflows.PermitLease); !p.Expires.Equal(want) {
					t.Errorf("holder %s expires at %v, want its grant time plus the lease (%v)", p.RequestID, p.Expires, want)
				}
			}
			var waiting []string
			for _, w := range next.Waiters {
				waiting = append(waiting, w.RequestID)
			}
			if next.SubscriptionID != testSubID || next.Limit != 2 || next.EventBudget != 500 ||
				!slices.Equal(held, []string{"run-2/1", "run-3/1"}) || !slices.Equal(waiting, []string{"run-4/1"}) ||
				!slices.Contains(next.Finished, "run-1/1") {
				t.Errorf("next run's input = %+v; want subscription %s, limit 2, budget 500, holders [run-2/1 run-3/1], waiters [run-4/1], run-1/1 finished",
					next, testSubID)
			}
			if got := len(grants.Grants()); got != 3 {
				t.Errorf("%d grants before continuing as new, want 3", got)
			}

			// The next run goes on from there.
			env2 := newEnv(t)
			grants2 := mockGrants(env2)
			releaseAt(env2, "run-2/1", time.Second)
			requestAt(env2, permitRequest(1, 2), 2*time.Second) // finished in the last run
			releaseAt(env2, "run-3/1", 3*time.Second)
			releaseAt(env2, "run-4/1", 4*time.Second)
			start := env2.Now()
			next.EventBudget = 0
			env2.ExecuteWorkflow(workflows.EndpointGateWorkflow, next)

			res, _ := gateResult(t, env2, start)
			assertGrants(t, grants2.Grants(), []grantRecord{grantTo(4, 2, 2, time.Second)})
			if want := (workflows.GateResult{Granted: 1, Released: 3, Duplicates: 1}); res != want {
				t.Errorf("next run's result = %+v, want %+v", res, want)
			}
		})
	}
}

func TestEndpointGate_ContinuesAsNewWithAtMost5000Waiters(t *testing.T) {
	env := newEnv(t)
	mockGrants(env)
	in := gateInput()
	in.Limit = 1
	in.Holders = []workflows.Permit{{PermitRequest: permitRequest(0, 1), GrantedAt: env.Now(), Expires: env.Now().Add(workflows.PermitLease)}}
	for n := 1; n <= 5003; n++ {
		in.Waiters = append(in.Waiters, permitRequest(n, 1))
	}
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, time.Second)
	requestAt(env, permitRequest(9999, 1), 2*time.Second) // wakes the gate

	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, in)

	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("gate ended with %v, want continue-as-new", err)
	}
	var next workflows.GateInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(next.Waiters) != 5000 || next.Waiters[0].RequestID != "run-1/1" || next.Waiters[4999].RequestID != "run-5000/1" {
		t.Errorf("next run has %d waiters, want the first 5000 in order", len(next.Waiters))
	}
	if len(next.Holders) != 1 {
		t.Errorf("next run has %d holders, want 1", len(next.Holders))
	}
}

func TestEndpointGate_EndsWhenCancelled(t *testing.T) {
	env := newEnv(t)
	mockGrants(env)
	requestAt(env, permitRequest(1, 1), time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)

	start := env.Now()
	env.ExecuteWorkflow(workflows.EndpointGateWorkflow, gateInput())

	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("gate ended with %v, want canceled", err)
	}
	if ran := env.Now().Sub(start); ran != time.Minute {
		t.Errorf("gate ended after %s, want at the cancel (1m0s)", ran)
	}
}
