package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/workflows"
)

// Per-endpoint concurrency limits, on the real server, with two workers on
// one task queue: the endpoint's gate holds the limit across both. Each
// attempt runs as a Deliver local activity, on the worker that runs the
// delivery's workflow task, so both workers deliver to the endpoint; which
// one ran an attempt is the identity on the workflow task that recorded its
// marker.

// concurrencySlots bounds the activities (not the local activities, such as
// Deliver) each worker runs at once.
const concurrencySlots = 2

// startConcurrencyWorkers starts n workers, named worker-1…worker-n, on the
// env's task queue, each with concurrencySlots activity slots and a request
// timeout long enough for requests that a test holds.
func (e *env) startConcurrencyWorkers(n int) {
	e.t.Helper()
	for i := 1; i <= n; i++ {
		w := worker.New(e.client, e.taskQueue, worker.Options{
			Identity:                           fmt.Sprintf("worker-%d", i),
			MaxConcurrentActivityExecutionSize: concurrencySlots,
		})
		workflows.Register(w, &activities.Activities{
			Store:  e.store,
			Sender: activities.NewSender(loopback, 25*time.Second),
			Logger: zaptest.NewLogger(e.t),
		})
		if err := w.Start(); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(w.Stop)
	}
}

// subscribeLimited creates an enabled subscription of account to url, of
// all event types, with a concurrency limit.
func (e *env) subscribeLimited(account, url string, maxInFlight int) subscription.Subscription {
	e.t.Helper()
	key, err := signature.GenerateSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	s := subscription.Subscription{AccountID: account, URL: url, Enabled: true, MaxInFlight: maxInFlight,
		Secrets: []subscription.Secret{{Key: key}}, Schedule: fast}
	if err := e.store.Create(context.Background(), &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// holdingReceiver holds every request until the test releases it, first
// come first released, and counts the requests it holds at once.
type holdingReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	inFlight int
	maxSeen  int
	arrived  []string        // webhook-id of each request, in arrival order
	held     []chan struct{} // requests not yet released, in arrival order
	changed  chan struct{}   // closed and replaced on every change
	closed   chan struct{}
}

func newHoldingReceiver(t *testing.T) *holdingReceiver {
	r := &holdingReceiver{t: t, changed: make(chan struct{}), closed: make(chan struct{})}
	r.srv = httptest.NewServer(r)
	// Cleanups run last first: release what is held, then close.
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() { close(r.closed) })
	return r
}

func (r *holdingReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	release := make(chan struct{})
	r.update(func() {
		r.inFlight++
		r.maxSeen = max(r.maxSeen, r.inFlight)
		r.arrived = append(r.arrived, req.Header.Get("webhook-id"))
		r.held = append(r.held, release)
	})
	select {
	case <-release:
	case <-r.closed:
	case <-req.Context().Done():
	}
	r.update(func() { r.inFlight-- })
	w.WriteHeader(http.StatusNoContent)
}

func (r *holdingReceiver) update(change func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change()
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitHeld waits until exactly n requests are held, and returns the
// webhook-ids of all requests so far.
func (r *holdingReceiver) waitHeld(n int, within time.Duration) []string {
	r.t.Helper()
	timeout := time.After(within)
	for {
		r.mu.Lock()
		held, arrived, changed := len(r.held), slices.Clone(r.arrived), r.changed
		r.mu.Unlock()
		if held == n {
			return arrived
		}
		select {
		case <-changed:
		case <-timeout:
			r.t.Fatalf("receiver holds %d requests after %s, want %d (%d arrived)", held, within, n, len(arrived))
		}
	}
}

// releaseOne answers the request held longest.
func (r *holdingReceiver) releaseOne() {
	r.update(func() {
		if len(r.held) == 0 {
			r.t.Fatal("no request to release")
		}
		close(r.held[0])
		r.held = r.held[1:]
	})
}

func (r *holdingReceiver) stats() (maxSeen int, arrived []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxSeen, slices.Clone(r.arrived)
}

func TestConcurrency_LimitHoldsAcrossTwoWorkersAndSparesOtherEndpoints(t *testing.T) {
	e := newEnvWithoutWorker(t, server.GetDefaultClient())
	e.startConcurrencyWorkers(2)
	slow := newHoldingReceiver(t)
	fastRcv := newReceiver(t)
	const events, limit = 20, 3
	limited := e.subscribeLimited("acme", slow.srv.URL+"/hooks", limit)
	free, _ := e.subscribe("acme", fastRcv.srv.URL+"/hooks", nil, fast)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var receipts []starter.Receipt
	for i := range events {
		r, err := e.publisher.Publish(ctx, userCreated("acme", fmt.Sprintf("u_%d", i)))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		receipts = append(receipts, r)
	}

	// The slow endpoint fills up to its limit...
	slow.waitHeld(limit, 2*time.Minute)
	// ...while the other endpoint gets every event, though its deliveries
	// share the workers with 17 waiting for the slow one.
	fastRcv.waitRequests(events, 2*time.Minute)
	if maxSeen, arrived := slow.stats(); maxSeen != limit || len(arrived) != limit {
		t.Fatalf("while saturated, the slow receiver saw %d requests, at most %d at once; want %d, %d", len(arrived), maxSeen, limit, limit)
	}

	// Answer one request at a time: each answer lets one more in.
	for answered := 0; answered < events; answered++ {
		slow.waitHeld(min(limit, events-answered), time.Minute)
		slow.releaseOne()
	}
	for _, r := range receipts {
		var sum workflows.Summary
		if err := e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &sum); err != nil {
			t.Fatalf("event %s: %v", r.Event.ID, err)
		}
		if sum.Delivered != 2 {
			t.Errorf("event %s: summary %+v, want delivered to both subscriptions", r.Event.ID, sum)
		}
	}
	maxSeen, arrived := slow.stats()
	if maxSeen != limit {
		t.Errorf("the slow receiver held up to %d requests at once, want %d (the limit)", maxSeen, limit)
	}
	if slices.Sort(arrived); len(slices.Compact(arrived)) != events || len(arrived) != events {
		t.Errorf("the slow receiver got %d requests for %d events, want each of the %d once", len(arrived), len(slices.Compact(arrived)), events)
	}

	// Histories: every limited attempt waited for a grant (a signal in its
	// history), deliveries to the free endpoint have no trace of the gate
	// (no permit request, no signal), and both workers ran attempts to the
	// slow endpoint.
	dc := converter.GetDefaultDataConverter()
	identities := map[string]bool{}
	var limitedLen, freeLen []int
	for _, r := range receipts {
		lh := e.history(workflows.DeliveryWorkflowID(r.Event.ID, limited.ID))
		if n := countSignals(lh, workflows.SignalPermitGrant); n != 1 {
			t.Errorf("delivery of %s to the limited subscription received %d grants, want 1", r.Event.ID, n)
		}
		delivered, err := localActivityMarkers(lh, dc, "Deliver")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range delivered {
			identities[completedBy(lh, m)] = true
		}
		fh := e.history(workflows.DeliveryWorkflowID(r.Event.ID, free.ID))
		if requests, err := localActivityMarkers(fh, dc, "RequestPermit"); err != nil || len(requests) != 0 {
			t.Errorf("delivery of %s to the unlimited subscription asked for %d permits (%v), want none", r.Event.ID, len(requests), err)
		}
		for _, ev := range fh {
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
				t.Errorf("delivery of %s to the unlimited subscription has a %s event", r.Event.ID, ev.GetEventType())
			}
		}
		limitedLen, freeLen = append(limitedLen, len(lh)), append(freeLen, len(fh))
	}
	if !identities["worker-1"] || !identities["worker-2"] {
		t.Errorf("attempts to the slow endpoint ran on %v, want both workers", identities)
	}
	slices.Sort(limitedLen)
	slices.Sort(freeLen)
	t.Logf("history events per delivery (first attempt delivered): unlimited %d–%d, limited %d–%d (median %d vs %d)",
		freeLen[0], freeLen[len(freeLen)-1], limitedLen[0], limitedLen[len(limitedLen)-1], freeLen[len(freeLen)/2], limitedLen[len(limitedLen)/2])
	gate := e.history(activities.GateWorkflowID(limited.ID))
	t.Logf("gate history: %d events for %d permits (one run)", len(gate), events)
	if grants := grantTargets(t, gate); len(grants) != events {
		t.Errorf("the gate sent %d grants, want %d", len(grants), events)
	}
	// Replay fixtures: a delivery that waited for its permit, and the gate
	// (still running: 20 grants and releases).
	e.record("delivery-limited-waited", workflows.DeliveryWorkflowID(receipts[events-1].Event.ID, limited.ID))
	e.record("gate-limited", activities.GateWorkflowID(limited.ID))
}

func TestConcurrency_ACancelledWaitingDeliveryLetsTheNextOneGo(t *testing.T) {
	e := newEnvWithoutWorker(t, server.GetDefaultClient())
	e.startConcurrencyWorkers(2)
	rcv := newHoldingReceiver(t)
	sub := e.subscribeLimited("acme", rcv.srv.URL+"/hooks", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	publish := func(user string) starter.Receipt {
		r, err := e.publisher.Publish(ctx, userCreated("acme", user))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		return r
	}
	first := publish("u_1")
	if got := rcv.waitHeld(1, time.Minute); got[0] != first.Event.ID {
		t.Fatalf("first request is for %s, want %s", got[0], first.Event.ID)
	}
	second, third := publish("u_2"), publish("u_3")
	secondID := workflows.DeliveryWorkflowID(second.Event.ID, sub.ID)
	thirdID := workflows.DeliveryWorkflowID(third.Event.ID, sub.ID)
	// Both have asked the gate.
	e.waitPermitRequested(secondID, time.Minute)
	e.waitPermitRequested(thirdID, time.Minute)

	if err := e.client.CancelWorkflow(ctx, secondID, ""); err != nil {
		t.Fatal(err)
	}
	err := e.client.GetWorkflow(ctx, secondID, "").Get(ctx, nil)
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("second delivery ended with %v, want canceled", err)
	}

	rcv.releaseOne()
	if got := rcv.waitHeld(1, time.Minute); len(got) != 2 || got[1] != third.Event.ID {
		t.Fatalf("requests after the first was answered: %v, want the third event %s next", got, third.Event.ID)
	}
	rcv.releaseOne()
	for _, r := range []starter.Receipt{first, third} {
		var sum workflows.Summary
		if err := e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &sum); err != nil || sum.Delivered != 1 {
			t.Errorf("event %s: summary %+v, %v; want delivered", r.Event.ID, sum, err)
		}
	}
	if _, arrived := rcv.stats(); len(arrived) != 2 {
		t.Errorf("receiver got %v, want only the first and third events", arrived)
	}

	// The cancelled delivery withdrew its request: the gate granted only
	// the first and the third, and the second's history holds its release.
	want := []string{workflows.DeliveryWorkflowID(first.Event.ID, sub.ID), thirdID}
	if got := grantTargets(t, e.history(activities.GateWorkflowID(sub.ID))); !slices.Equal(got, want) {
		t.Errorf("the gate granted %v, want %v", got, want)
	}
	if n := countSignalsSent(e.history(secondID), workflows.SignalPermitRelease); n != 1 {
		t.Errorf("the cancelled delivery sent %d releases, want 1 (its withdrawal)", n)
	}
	if *recordHistories != "" {
		// Replay fixtures. The gate completes gateIdleTimeout (2 minutes)
		// after its last release: wait for it, so that its fixture holds
		// the whole run, idle completion included.
		wctx, wcancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer wcancel()
		if err := e.client.GetWorkflow(wctx, activities.GateWorkflowID(sub.ID), "").Get(wctx, nil); err != nil {
			t.Fatalf("the gate did not complete: %v", err)
		}
		e.record("delivery-canceled-waiting-permit", secondID)
		e.record("delivery-limited-after-withdrawal", thirdID)
		e.record("gate-withdrawal-idle", activities.GateWorkflowID(sub.ID))
	}
}

// waitPermitRequested waits until a delivery's history records a request
// to its endpoint's gate: the marker of a RequestPermit local activity.
func (e *env) waitPermitRequested(workflowID string, within time.Duration) {
	e.t.Helper()
	waitFor(e.t, within, "a permit request in the history of "+workflowID, func() bool {
		h, err := e.tryHistory(workflowID)
		if err != nil {
			return false // not started yet
		}
		requests, err := localActivityMarkers(h, converter.GetDefaultDataConverter(), "RequestPermit")
		if err != nil {
			e.t.Fatalf("history of %s: %v", workflowID, err)
		}
		return len(requests) > 0
	})
}

// countSignals counts the signals of a name that a history received.
func countSignals(h []*historypb.HistoryEvent, name string) int {
	n := 0
	for _, ev := range h {
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == name {
			n++
		}
	}
	return n
}

// countSignalsSent counts the signals of a name that a history sent.
func countSignalsSent(h []*historypb.HistoryEvent, name string) int {
	n := 0
	for _, ev := range h {
		if a := ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes(); a != nil && a.GetSignalName() == name {
			n++
		}
	}
	return n
}

// grantTargets lists the workflow IDs a gate's history granted permits
// to, in order, checking each grant's payload names a request.
func grantTargets(t *testing.T, h []*historypb.HistoryEvent) []string {
	t.Helper()
	var ids []string
	for _, ev := range h {
		a := ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes()
		if a == nil || a.GetSignalName() != workflows.SignalPermitGrant {
			continue
		}
		var g workflows.PermitGrant
		if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &g); err != nil || g.RequestID == "" {
			t.Errorf("grant payload: %+v, %v", g, err)
		}
		ids = append(ids, a.GetWorkflowExecution().GetWorkflowId())
	}
	return ids
}
