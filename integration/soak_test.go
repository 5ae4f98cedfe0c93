package integration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	receiverkit "github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/workflows"
)

// The soak's knobs; `make soak` sets them.
var (
	soakFlag              = flag.Bool("soak", false, "run TestSoak, which is skipped otherwise (make soak)")
	soakEventsFlag        = flag.Int("soak.events", 2000, "events TestSoak publishes (at least 100)")
	soakSubscriptionsFlag = flag.Int("soak.subscriptions", 4, "subscriptions TestSoak delivers to (at least 2)")
	soakSeedFlag          = flag.Uint64("soak.seed", 0, "seed of TestSoak's events, special cases and faults (0: random)")
)

// soakSchedule gives a delivery six attempts a second apart: room for the
// at most maxPlannedFailures injected failures plus two unplanned ones (a
// request timing out on a loaded machine). Retry-After is honoured up to
// soakHold, which is how the soak keeps a delivery waiting until it is
// cancelled or its subscription disabled.
var soakSchedule = &delivery.Schedule{
	Delays: []delivery.Duration{
		delivery.Duration(time.Second), delivery.Duration(time.Second), delivery.Duration(time.Second),
		delivery.Duration(time.Second), delivery.Duration(time.Second),
	},
	MaxRetryAfter: delivery.Duration(soakHold),
}

// soakHold is the Retry-After of a held delivery: far longer than the soak
// takes to cancel it or to disable its subscription.
const soakHold = 10 * time.Minute

// How many events get each special treatment.
const (
	soakCancelled = 5 // cancelled while all their deliveries wait to retry: canceled
	soakRejected  = 8 // answered 400 by subscription 0: failed at once
	soakHeld      = 5 // held by subscription 1 until it is disabled: skipped
)

// Subscription roles, by index.
const (
	soakRejectingSub = 0 // every type; answers 400 to the rejected events
	soakDisabledSub  = 1 // user.created and user.deleted only; disabled midway
)

// TestSoak is the long fault run: thousands of events fanned out to several
// subscriptions through the real publisher, the real server and worker,
// into endpoints that misbehave at random (faultyEndpoint: 500 and 503,
// applied then 500, connections dropped before and after applying, delays,
// double application) in front of the receiver kit, which verifies
// signatures and de-duplicates by webhook-id. Besides the random faults,
// every final state is provoked:
//
//   - subscriptions filter by event type, so not every (event,
//     subscription) pair exists;
//   - subscription 1 is disabled once the first half of the events has
//     reached it: its deliveries still waiting to retry end skipped, and
//     the second half does not match it;
//   - subscription 0 answers 400 to a few events: failed at once;
//   - a few events are cancelled while their deliveries wait to retry:
//     canceled.
//
// Then it reconciles every pair (see reconcile), logs a summary and fails
// with the pairs that disagree. It is skipped unless -soak is given:
//
//	make soak EVENTS=2000 SUBSCRIPTIONS=4 SEED=N
//
// The seed (logged) decides the events, the special cases and every
// pair's faults; how deliveries interleave is up to the scheduler.
func TestSoak(t *testing.T) {
	if !*soakFlag {
		t.Skip("the soak runs with -soak: make soak")
	}
	events, subs := *soakEventsFlag, *soakSubscriptionsFlag
	if events < 100 || subs < 2 {
		t.Fatalf("-soak.events=%d -soak.subscriptions=%d: want at least 100 events and 2 subscriptions", events, subs)
	}
	seed := *soakSeedFlag
	if seed == 0 {
		seed = rand.Uint64N(1<<53) + 1
	}
	t.Logf("seed %d: rerun with make soak EVENTS=%d SUBSCRIPTIONS=%d SEED=%d", seed, events, subs, seed)

	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	if deadline, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), deadline.Add(-2*time.Minute)) // time to report
	}
	defer cancel()
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	account := "soak"
	src := generateSource(rng, account, "sk", convergenceSize{users: max(10, events/4), events: events})
	if len(src.events) != events {
		t.Fatalf("generated %d events, want %d", len(src.events), events)
	}
	s := &soakRun{t: t, seed: seed, e: newSoakEnv(t), events: src.events, pairs: map[string]*soakPair{}}
	s.plan(rng, account, subs)

	s.loadStart = loadAverage()
	s.started = time.Now()
	s.publish(ctx, s.phaseA)
	s.disableMidway(ctx)
	s.publish(ctx, s.phaseB)
	s.publishedIn = time.Since(s.started)
	s.cancelWhileRetrying(ctx)
	s.waitEvents(ctx)
	s.allDone = time.Now()
	s.loadEnd = loadAverage()

	// A request the sender gave up on may still be inside an endpoint.
	for _, ep := range s.endpoints {
		waitFor(t, time.Minute, "requests in flight at the endpoints", func() bool { return ep.faults.inflight.Load() == 0 })
	}
	rep := s.reconcile(s.listDeliveries(ctx, account))
	t.Log(s.summary(rep))
	for _, p := range rep.problems {
		t.Errorf("seed %d: %s", seed, p)
	}
	if n := len(rep.offences); n > 0 {
		const shown = 50
		more := ""
		if n > shown {
			more = fmt.Sprintf("\n… and %d more", n-shown)
		}
		t.Errorf("seed %d: %d disagreements over %d pairs:\n%s%s", seed, n, len(s.pairs), strings.Join(rep.offences[:min(n, shown)], "\n"), more)
	}
}

// newSoakEnv is newEnv with a worker that logs nothing: thousands of
// deliveries would bury the summary.
func newSoakEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvWithoutWorker(t, server.GetDefaultClient())
	w := worker.New(e.client, e.taskQueue, worker.Options{})
	workflows.Register(w, &activities.Activities{Store: e.store, Sender: activities.NewSender(loopback, 5*time.Second), Logger: zap.NewNop()})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	e.worker = w
	return e
}

// soakEndpoint is one subscription's receiver: a faultyEndpoint in front
// of the receiver kit in front of soakApp.
type soakEndpoint struct {
	index  int
	sub    subscription.Subscription
	faults *faultyEndpoint
	kit    *soakKitLog
	app    *soakApp
}

// soakPair is an (event, subscription) pair that matches at publish time.
type soakPair struct {
	event, sub int
	// want lists the final states the delivery may end in, and why.
	want []delivery.Status
	why  string
}

// soakRun is the state of one soak.
type soakRun struct {
	t         *testing.T
	seed      uint64
	e         *env
	events    []event.Event
	endpoints []*soakEndpoint
	// pairs are keyed by delivery workflow ID.
	pairs map[string]*soakPair
	// phaseA are the events (indexes) published before the disable, phaseB
	// those published after.
	phaseA, phaseB             []int
	cancelled, rejected, held  map[int]bool
	receipts                   []starter.Receipt
	summaries                  []workflows.Summary
	summaryErr                 []error
	started, allDone           time.Time
	disabledAfter, publishedIn time.Duration
	loadStart, loadEnd         string
}

// plan creates the subscriptions and their endpoints, chooses the special
// cases and the publication order, and lists the pairs with the final
// states each may end in.
func (s *soakRun) plan(rng *rand.Rand, account string, subs int) {
	t := s.t
	n := len(s.events)
	order := rng.Perm(n)
	s.phaseA, s.phaseB = order[:n/2], order[n/2:]

	types := func(i int) []string {
		switch {
		case i == soakDisabledSub:
			return []string{string(event.TypeUserCreated), string(event.TypeUserDeleted)}
		case i != soakRejectingSub && i%2 == 0:
			return []string{string(event.TypeUserUpdated)}
		}
		return nil // every type
	}
	matches := func(sub int, ev event.Event) bool {
		ts := types(sub)
		return len(ts) == 0 || slices.Contains(ts, string(ev.Type))
	}

	// Cancelled events come from the second half, which does not match
	// the subscription to disable (whose fate is skipped); held events are
	// first-half events it accepts; rejected events are any others.
	s.cancelled = pickEvents(rng, s.phaseB, soakCancelled, func(int) bool { return true })
	s.held = pickEvents(rng, s.phaseA, soakHeld, func(i int) bool { return matches(soakDisabledSub, s.events[i]) })
	s.rejected = pickEvents(rng, order, soakRejected, func(i int) bool { return !s.cancelled[i] })
	if len(s.held) < soakHeld {
		t.Fatalf("only %d events of the first half match subscription %d: publish more events", len(s.held), soakDisabledSub)
	}
	inPhaseA := map[int]bool{}
	for _, i := range s.phaseA {
		inPhaseA[i] = true
	}

	for i := range subs {
		ep := &soakEndpoint{index: i, kit: &soakKitLog{reasons: map[string]map[receiverkit.Reason]int{}}, app: newSoakApp()}
		ep.faults = &faultyEndpoint{arrivals: map[string]int{}, counts: map[string]int{}}
		srv := httptest.NewServer(ep.faults)
		t.Cleanup(srv.Close)
		var secret signature.Secret
		ep.sub, secret = s.e.subscribe(account, srv.URL+"/hooks", types(i), soakSchedule)
		kit, err := receiverkit.New(receiverkit.Options{
			Secrets:   []signature.Secret{secret},
			Dedup:     receiverkit.NewMemoryDedup(0),
			OnOutcome: ep.kit.record,
		})
		if err != nil {
			t.Fatal(err)
		}
		ep.faults.next = kit.Wrap(ep.app)

		// The pairs of this subscription, with their fault plans.
		var matching []event.Event
		for j, ev := range s.events {
			if !matches(i, ev) || (i == soakDisabledSub && !inPhaseA[j]) {
				continue
			}
			matching = append(matching, ev)
			p := &soakPair{event: j, sub: i, want: []delivery.Status{delivery.StatusDelivered}, why: "random faults within the schedule"}
			switch {
			case s.cancelled[j]:
				p.want, p.why = []delivery.Status{delivery.StatusCanceled}, "event cancelled while its deliveries wait to retry"
				ep.app.hold[ev.ID] = true
			case i == soakRejectingSub && s.rejected[j]:
				p.want, p.why = []delivery.Status{delivery.StatusFailed}, "receiver answers 400"
				ep.app.reject[ev.ID] = true
			case i == soakDisabledSub && s.held[j]:
				p.want, p.why = []delivery.Status{delivery.StatusSkipped}, "held until its subscription is disabled"
				ep.app.hold[ev.ID] = true
			case i == soakDisabledSub:
				p.want, p.why = []delivery.Status{delivery.StatusDelivered, delivery.StatusSkipped}, "subscription disabled midway"
			}
			s.pairs[workflows.DeliveryWorkflowID(ev.ID, ep.sub.ID)] = p
		}
		ep.faults.plans = planFaults(rng, matching)
		for id := range ep.app.hold {
			ep.faults.plans[id] = &faultPlan{} // held or rejected, untroubled
		}
		for id := range ep.app.reject {
			ep.faults.plans[id] = &faultPlan{}
		}
		s.endpoints = append(s.endpoints, ep)
	}
	s.receipts = make([]starter.Receipt, n)
	s.summaries = make([]workflows.Summary, n)
	s.summaryErr = make([]error, n)
	t.Logf("%d events, %d subscriptions, %d pairs; %d events cancelled, %d rejected, %d held",
		n, subs, len(s.pairs), len(s.cancelled), len(s.rejected), len(s.held))
}

// pickEvents picks up to k of candidates that ok accepts.
func pickEvents(rng *rand.Rand, candidates []int, k int, ok func(int) bool) map[int]bool {
	picked := map[int]bool{}
	for _, j := range rng.Perm(len(candidates)) {
		if len(picked) == k {
			break
		}
		if i := candidates[j]; ok(i) {
			picked[i] = true
		}
	}
	return picked
}

// publish publishes the given events from 8 goroutines.
func (s *soakRun) publish(ctx context.Context, which []int) {
	errs := parallel(8, which, func(i int) error {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		r, err := s.e.publisher.Publish(pctx, s.events[i])
		switch {
		case err != nil:
			return fmt.Errorf("publish event %d (%s): %w", i, s.events[i].ID, err)
		case r.Duplicate:
			return fmt.Errorf("publish event %d (%s): reported as a duplicate", i, s.events[i].ID)
		}
		s.receipts[i] = r
		return nil
	})
	if len(errs) > 0 {
		s.t.Fatalf("seed %d: %d publish errors, first: %v", s.seed, len(errs), errs[0])
	}
}

// disableMidway waits until every first-half event has reached the
// subscription to disable (so each of those pairs exists), disables it,
// and wakes its held deliveries so that their next attempt finds it
// disabled.
func (s *soakRun) disableMidway(ctx context.Context) {
	ep := s.endpoints[soakDisabledSub]
	var ids []string
	for _, i := range s.phaseA {
		if _, ok := ep.faults.plans[s.events[i].ID]; ok {
			ids = append(ids, s.events[i].ID)
		}
	}
	s.waitArrivals(ctx, ep, ids, "the first half of the events at the subscription to disable")
	if err := s.e.store.SetEnabled(ctx, ep.sub.ID, false); err != nil {
		s.t.Fatalf("disable subscription %d: %v", soakDisabledSub, err)
	}
	s.disabledAfter = time.Since(s.started)
	var held []string
	for i := range s.held {
		held = append(held, workflows.DeliveryWorkflowID(s.events[i].ID, ep.sub.ID))
	}
	go s.retryNow(ctx, held) // returns once they have closed
}

// waitArrivals waits until ep has received a request for each webhook-id.
func (s *soakRun) waitArrivals(ctx context.Context, ep *soakEndpoint, ids []string, what string) {
	for {
		missing := 0
		for _, id := range ids {
			if ep.faults.arrivalsOf(id) == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("seed %d: waiting for %s: %d of %d webhook-ids never arrived", s.seed, what, missing, len(ids))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// retryNow signals retry-now to the given deliveries until each has
// closed: a signal that arrives while an attempt runs is dropped.
func (s *soakRun) retryNow(ctx context.Context, ids []string) {
	for _, id := range ids {
		for ctx.Err() == nil {
			err := s.e.client.SignalWorkflow(ctx, id, "", workflows.SignalRetryNow, nil)
			var closed *serviceerror.NotFound
			if errors.As(err, &closed) {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// cancelWhileRetrying cancels each chosen event once all its deliveries
// have made their first attempt, which the receivers answer with 503 and a
// long Retry-After: they are all waiting to retry.
func (s *soakRun) cancelWhileRetrying(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.cancelled {
		wg.Go(func() {
			id := s.events[i].ID
			for _, p := range s.pairs {
				if p.event == i {
					s.waitArrivals(ctx, s.endpoints[p.sub], []string{id}, "the first attempts of an event to cancel")
				}
			}
			if err := s.e.client.CancelWorkflow(ctx, workflows.EventWorkflowID(id), ""); err != nil {
				s.t.Errorf("seed %d: cancel event %s: %v", s.seed, id, err)
			}
		})
	}
	wg.Wait()
}

// waitEvents waits for every event workflow to close and keeps its summary
// (a cancelled one's is in its error's details).
func (s *soakRun) waitEvents(ctx context.Context) {
	errs := parallel(16, slices.Concat(s.phaseA, s.phaseB), func(i int) error {
		r := s.receipts[i]
		err := s.e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &s.summaries[i])
		var canceled *temporal.CanceledError
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("event %d: workflow %s still running: %w", i, r.WorkflowID, ctx.Err())
		case errors.As(err, &canceled):
			if !canceled.HasDetails() || canceled.Details(&s.summaries[i]) != nil {
				s.summaryErr[i] = fmt.Errorf("cancelled without a summary: %w", err)
			}
		case err != nil:
			s.summaryErr[i] = err
		}
		return nil
	})
	if len(errs) > 0 {
		s.t.Fatalf("seed %d: %d event workflows did not close in time, first: %v", s.seed, len(errs), errs[0])
	}
}

// deliveryRun is one delivery workflow run as the visibility store lists
// it.
type deliveryRun struct {
	workflowID     string
	status         enumspb.WorkflowExecutionStatus
	eventID, subID string
	deliveryStatus string
	attempts       int64
}

// listDeliveries lists the soak's delivery workflows, once the visibility
// store has caught up: when it counts as many closed runs as there are
// pairs and none running, or after two minutes (the reconciliation then
// says what differs).
func (s *soakRun) listDeliveries(ctx context.Context, account string) []deliveryRun {
	query := fmt.Sprintf("WorkflowType = 'DeliveryWorkflow' AND %s = '%s'", workflows.AttrAccountID.GetName(), account)
	ns := server.GetDefaultNamespace()
	count := func(q string) int64 {
		resp, err := s.e.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: ns, Query: q})
		if err != nil {
			s.t.Fatalf("count deliveries (%s): %v", q, err)
		}
		return resp.GetCount()
	}
	caughtUp := func() bool {
		return count(query+" AND ExecutionStatus != 'Running'") == int64(len(s.pairs)) && count(query+" AND ExecutionStatus = 'Running'") == 0
	}
	for deadline := time.Now().Add(2 * time.Minute); !caughtUp() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond) // visibility has no change feed to wait on
	}

	var runs []deliveryRun
	var token []byte
	dc := converter.GetDefaultDataConverter()
	for {
		// Small pages, each tried a few times: a page of the SQLite
		// visibility store can take longer than the client's RPC timeout
		// on a busy machine.
		var resp *workflowservice.ListWorkflowExecutionsResponse
		var err error
		for try := 1; try <= 5; try++ {
			resp, err = s.e.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: ns, Query: query, PageSize: 200, NextPageToken: token,
			})
			if err == nil || ctx.Err() != nil {
				break
			}
			s.t.Logf("list deliveries, try %d: %v", try, err)
		}
		if err != nil {
			s.t.Fatalf("list deliveries: %v", err)
		}
		for _, info := range resp.GetExecutions() {
			r := deliveryRun{workflowID: info.GetExecution().GetWorkflowId(), status: info.GetStatus()}
			attrs := info.GetSearchAttributes().GetIndexedFields()
			for name, dst := range map[string]any{
				workflows.AttrEventID.GetName():        &r.eventID,
				workflows.AttrSubscriptionID.GetName(): &r.subID,
				workflows.AttrDeliveryStatus.GetName(): &r.deliveryStatus,
				workflows.AttrAttempts.GetName():       &r.attempts,
			} {
				if p := attrs[name]; p != nil {
					if err := dc.FromPayload(p, dst); err != nil {
						s.t.Fatalf("decode %s of %s: %v", name, r.workflowID, err)
					}
				}
			}
			runs = append(runs, r)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return runs
		}
	}
}

// soakReport is what the reconciliation found.
type soakReport struct {
	// offences name pairs (or requests) that disagree, one line each.
	offences []string
	// problems are failures of the soak's own premises (a kind of fault
	// or a final state that never happened).
	problems []string
	states   map[delivery.Status]int
	attempts map[int]int
	// unplanned counts delivered pairs that needed more attempts than
	// their fault plan explains (a timeout on a loaded machine).
	unplanned int
	requests  int
	accepted  int
	dups      int
	faults    map[string]int
}

// finalStatus maps Temporal's execution status to the delivery states it
// allows.
var finalStatus = map[enumspb.WorkflowExecutionStatus][]delivery.Status{
	enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED: {delivery.StatusDelivered, delivery.StatusSkipped},
	enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:    {delivery.StatusFailed},
	enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:  {delivery.StatusCanceled},
}

// reconcile checks that every pair that matched at publish time has
// exactly one delivery workflow, closed in one final state on which its
// search attribute and its execution status agree, a state its plan
// allows; that the event workflows' summaries count the same; that every
// delivered pair reached its receiver and, after de-duplication by
// webhook-id, was applied exactly once (and no pair more than once); and
// that no receiver got a request for a pair that does not exist.
func (s *soakRun) reconcile(runs []deliveryRun) soakReport {
	rep := soakReport{states: map[delivery.Status]int{}, attempts: map[int]int{}, faults: map[string]int{}}
	offend := func(format string, args ...any) { rep.offences = append(rep.offences, fmt.Sprintf(format, args...)) }

	byID := map[string][]deliveryRun{}
	for _, r := range runs {
		byID[r.workflowID] = append(byID[r.workflowID], r)
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if s.pairs[id] == nil {
			offend("%s: a delivery workflow (%d run(s), %s) for a pair that does not match", id, len(byID[id]), byID[id][0].deliveryStatus)
		}
	}

	perEvent := make([]workflows.Summary, len(s.events))
	for _, id := range slices.Sorted(maps.Keys(s.pairs)) {
		p := s.pairs[id]
		ev, ep := s.events[p.event], s.endpoints[p.sub]
		name := fmt.Sprintf("%s (subscription %d, %s)", id, p.sub, ev.Type)
		if len(byID[id]) != 1 {
			offend("%s: %d delivery workflow runs, want 1", name, len(byID[id]))
			continue
		}
		r := byID[id][0]
		st := delivery.Status(r.deliveryStatus)
		perEvent[p.event].Subscriptions++
		switch st {
		case delivery.StatusDelivered:
			perEvent[p.event].Delivered++
		case delivery.StatusFailed:
			perEvent[p.event].Failed++
		case delivery.StatusCanceled:
			perEvent[p.event].Canceled++
		case delivery.StatusSkipped:
			perEvent[p.event].Skipped++
		}
		switch {
		case r.eventID != ev.ID || r.subID != ep.sub.ID:
			offend("%s: search attributes name event %q, subscription %q", name, r.eventID, r.subID)
			continue
		case r.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			offend("%s: still running (%s)", name, st)
			continue
		case !slices.Contains(finalStatus[r.status], st):
			offend("%s: execution status %s but delivery status %q", name, r.status, st)
			continue
		case !slices.Contains(p.want, st):
			offend("%s: ended %s after %d attempt(s), want %v (%s; plan: %s)", name, st, r.attempts, p.want, p.why, ep.faults.plans[ev.ID])
			continue
		}
		rep.states[st]++
		rep.attempts[int(r.attempts)]++

		arrived, applied := ep.faults.arrivalsOf(ev.ID), ep.app.appliedOf(ev.ID)
		planned := int64(len(ep.faults.plans[ev.ID].fail) + 1)
		switch {
		case applied > 1:
			offend("%s: applied %d times after de-duplication, want at most once (%d requests)", name, applied, arrived)
		case st == delivery.StatusDelivered && applied != 1:
			offend("%s: delivered, but applied %d times by its receiver (%d requests)", name, applied, arrived)
		case st == delivery.StatusDelivered && r.attempts < planned:
			offend("%s: delivered on attempt %d, but its plan fails the first %d", name, r.attempts, planned-1)
		case st == delivery.StatusFailed && (applied != 0 || r.attempts != 1):
			offend("%s: failed after %d attempt(s) and applied %d times, want 1 attempt and none", name, r.attempts, applied)
		case st == delivery.StatusCanceled && applied != 0:
			offend("%s: canceled, but applied %d times", name, applied)
		}
		if st == delivery.StatusDelivered && p.sub != soakDisabledSub && r.attempts > planned {
			rep.unplanned++
		}
	}

	for i, ev := range s.events {
		got := s.summaries[i]
		got.Batches = 0
		switch {
		case s.summaryErr[i] != nil:
			offend("event %s: %v", ev.ID, s.summaryErr[i])
		case got != perEvent[i]:
			offend("event %s: its workflow's summary %+v, its listed deliveries %+v", ev.ID, got, perEvent[i])
		}
	}

	// Nothing may arrive for a pair that does not exist, and the receiver
	// kit must accept every signature.
	for _, ep := range s.endpoints {
		for id, n := range ep.faults.arrivalsSnapshot() {
			rep.requests += n
			if _, ok := ep.faults.plans[id]; !ok {
				offend("webhook-id %s: %d request(s) at subscription %d, which it does not match", id, n, ep.index)
			}
		}
		for k, v := range ep.faults.snapshot() {
			rep.faults[k] += v
		}
		for id, reasons := range ep.kit.snapshot() {
			for reason, n := range reasons {
				switch reason {
				case receiverkit.ReasonAccepted:
					rep.accepted += n
				case receiverkit.ReasonDuplicate:
					rep.dups += n
				case receiverkit.ReasonHandlerFailed: // held or rejected on purpose
				default:
					offend("webhook-id %s at subscription %d: the receiver kit refused %d request(s): %s", id, ep.index, n, reason)
				}
			}
		}
	}
	slices.Sort(rep.offences)

	// The soak proves something only if every kind of fault and every
	// final state happened.
	for _, k := range []string{fault500, fault503, faultApplyThen500, faultHangUpBefore, faultHangUpAfter, faultDelayed, faultDuplicated} {
		if rep.faults[k] == 0 {
			rep.problems = append(rep.problems, fmt.Sprintf("no %q fault was injected", k))
		}
	}
	for _, k := range []string{faultUnknownID, faultHijackFailed} {
		if rep.faults[k] > 0 {
			rep.problems = append(rep.problems, fmt.Sprintf("%d requests hit %q", rep.faults[k], k))
		}
	}
	for _, st := range []delivery.Status{delivery.StatusDelivered, delivery.StatusFailed, delivery.StatusCanceled, delivery.StatusSkipped} {
		if rep.states[st] == 0 {
			rep.problems = append(rep.problems, fmt.Sprintf("no delivery ended %s", st))
		}
	}
	if rep.dups == 0 {
		rep.problems = append(rep.problems, "the receivers absorbed no duplicate: no applied event was sent again")
	}
	return rep
}

// summary is the soak's report, as a table.
func (s *soakRun) summary(rep soakReport) string {
	wall := s.allDone.Sub(s.started)
	var b strings.Builder
	row := func(k, format string, args ...any) { fmt.Fprintf(&b, "\n  %-22s %s", k, fmt.Sprintf(format, args...)) }
	fmt.Fprintf(&b, "soak summary, seed %d", s.seed)
	row("events", "%d (%d published before the disable, %d after)", len(s.events), len(s.phaseA), len(s.phaseB))
	row("subscriptions", "%d", len(s.endpoints))
	row("pairs (deliveries)", "%d", len(s.pairs))
	for _, st := range []delivery.Status{delivery.StatusDelivered, delivery.StatusFailed, delivery.StatusCanceled, delivery.StatusSkipped} {
		row("  "+string(st), "%d", rep.states[st])
	}
	row("attempts per delivery", "%s", formatCounts(rep.attempts))
	row("unplanned retries", "%d delivered pairs needed more attempts than their plan", rep.unplanned)
	row("requests received", "%d (%d applied, %d duplicates absorbed)", rep.requests, rep.accepted, rep.dups)
	row("faults injected", "%s", formatCounts(rep.faults))
	row("wall time", "%s (published in %s, disabled after %s)", wall.Round(time.Second), s.publishedIn.Round(time.Second), s.disabledAfter.Round(time.Second))
	row("throughput", "%.1f deliveries/s, %.1f requests/s", float64(len(s.pairs))/wall.Seconds(), float64(rep.requests)/wall.Seconds())
	row("load average", "%s at the start, %s at the end", s.loadStart, s.loadEnd)
	row("disagreements", "%d", len(rep.offences))
	return b.String()
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func (f *faultyEndpoint) arrivalsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.arrivals[id]
}

func (f *faultyEndpoint) arrivalsSnapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.arrivals)
}

// soakKitLog records the receiver kit's outcome of every request, by
// webhook-id. It is safe for concurrent use.
type soakKitLog struct {
	mu      sync.Mutex
	reasons map[string]map[receiverkit.Reason]int
}

func (l *soakKitLog) record(_ *http.Request, o receiverkit.Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reasons[o.MessageID] == nil {
		l.reasons[o.MessageID] = map[receiverkit.Reason]int{}
	}
	l.reasons[o.MessageID][o.Reason]++
}

func (l *soakKitLog) snapshot() map[string]map[receiverkit.Reason]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]map[receiverkit.Reason]int{}
	for id, m := range l.reasons {
		out[id] = maps.Clone(m)
	}
	return out
}

// soakApp is the application behind the receiver kit: it answers 400 to
// the webhook-ids in reject, 503 with a long Retry-After to those in hold,
// and applies (counts) the others. reject and hold are set before the
// first request; it is safe for concurrent use.
type soakApp struct {
	reject, hold map[string]bool

	mu      sync.Mutex
	applied map[string]int
}

func newSoakApp() *soakApp {
	return &soakApp{reject: map[string]bool{}, hold: map[string]bool{}, applied: map[string]int{}}
}

func (a *soakApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(signature.HeaderID)
	switch {
	case a.reject[id]:
		http.Error(w, "rejected on purpose", http.StatusBadRequest)
	case a.hold[id]:
		w.Header().Set("Retry-After", strconv.Itoa(int(soakHold/time.Second)))
		http.Error(w, "held on purpose", http.StatusServiceUnavailable)
	default:
		a.mu.Lock()
		a.applied[id]++
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *soakApp) appliedOf(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied[id]
}
