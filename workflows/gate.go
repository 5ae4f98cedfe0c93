package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
)

// Signals between deliveries and their endpoint's gate. The request signal,
// which Activities.RequestPermit sends, is activities.SignalPermitRequest.
const (
	// SignalPermitGrant tells a delivery that it holds a permit; its
	// payload is a PermitGrant.
	SignalPermitGrant = "permit-grant"
	// SignalPermitRelease gives a permit back to the gate, or withdraws a
	// request that is still waiting; its payload is a PermitRelease.
	SignalPermitRelease = "permit-release"
)

// Timing of a gate.
const (
	// PermitLease is how long a gate lets a delivery hold a permit before
	// it takes the permit back: longer than the longest attempt, one
	// Deliver activity with all its retries for faults on our side
	// (infraRetry: 5 × deliverTimeout plus 15 s of backoff, under 3
	// minutes), with room for a backlog of activity tasks. A holder that
	// ends without releasing (terminated, reset) blocks its permit for at
	// most this long.
	PermitLease = 5 * time.Minute
	// gateIdleTimeout is how long a gate with no holders and no waiters
	// lives on before it completes; the next request starts a new run.
	gateIdleTimeout = 2 * time.Minute
	// gateEventBudget is the history length at which a gate continues as
	// new, if the server has not suggested it earlier.
	gateEventBudget = 10_000
	// gateFinishedMemory is how many finished request IDs a gate
	// remembers, so that a request that arrives after its own release (a
	// late retry of RequestPermit) is not granted again.
	gateFinishedMemory = 1000
	// gateMaxCarriedWaiters is how many waiters a gate carries when it
	// continues as new, so that its input stays far below Temporal's 2 MiB
	// payload limit (a waiter is about 200 bytes). Later ones are dropped
	// and ask again within permitResendAfter, at the end of the queue.
	gateMaxCarriedWaiters = 5000
)

// PermitGrant is the payload of SignalPermitGrant.
type PermitGrant struct {
	RequestID string
	// InFlight is the number of permits held when this one was granted,
	// this one included; Limit is the limit then.
	InFlight int
	Limit    int
}

// PermitRelease is the payload of SignalPermitRelease.
type PermitRelease struct {
	RequestID string
}

// Permit is a permit that a gate has granted and not yet taken back.
type Permit struct {
	activities.PermitRequest
	GrantedAt time.Time
	// Expires is when the gate reclaims the permit if it was not released.
	Expires time.Time
}

// GateInput is the input of EndpointGateWorkflow: the subscription, and the
// state that a run hands to the next when it continues as new (empty for a
// gate that RequestPermit starts).
type GateInput struct {
	activities.GateStart
	Limit    int                        `json:",omitempty"`
	Holders  []Permit                   `json:",omitempty"`
	Waiters  []activities.PermitRequest `json:",omitempty"`
	Finished []string                   `json:",omitempty"`
	// EventBudget overrides gateEventBudget when positive (tests).
	EventBudget int `json:",omitempty"`
}

// GateResult counts what one run of a gate did.
type GateResult struct {
	Granted int
	// Released permits came back from their holders; Withdrawn requests
	// were released while still waiting.
	Released  int
	Withdrawn int
	// Expired permits outlived PermitLease; Reclaimed ones could not be
	// granted because their requester had ended.
	Expired   int
	Reclaimed int
	// Duplicates are requests for a request ID already waiting, held or
	// finished.
	Duplicates int
}

// EndpointGateWorkflow is the concurrency gate of one subscription's
// endpoint, a counting semaphore shared by every worker. Its ID is
// activities.GateWorkflowID(subscriptionID); Activities.RequestPermit starts
// it with SignalWithStartWorkflow when a delivery asks for a permit and it
// is not running.
//
// It grants permits in the order the requests arrived, while fewer than
// the limit (the latest one a request carried) are held, by signalling the
// requesting run (SignalPermitGrant). A permit comes back with
// SignalPermitRelease; one whose holder never releases it is reclaimed
// after PermitLease, and one whose grant cannot be delivered (the
// requester has ended) at once. A request ID is granted at most once:
// repeated requests are ignored (a holder asking again gets its grant
// again), and so are releases of unknown permits.
//
// It continues as new when its history grows, carrying holders, waiters and
// the limit, and completes after gateIdleTimeout without holders or
// waiters, having first taken in every signal that arrived, so that no
// request is lost.
func EndpointGateWorkflow(ctx workflow.Context, in GateInput) (GateResult, error) {
	g := newGate(ctx, in)
	requests := workflow.GetSignalChannel(ctx, activities.SignalPermitRequest)
	releases := workflow.GetSignalChannel(ctx, SignalPermitRelease)
	for {
		g.takeSignals(requests, releases)
		g.sweepGrants()
		g.expire()
		g.grant()
		now := workflow.Now(ctx)
		if len(g.holders) > 0 || len(g.waiters) > 0 {
			g.lastBusy = now
		} else if !g.lastBusy.Add(gateIdleTimeout).After(now) {
			// Complete only if no signal arrived meanwhile: one that
			// arrives after this check makes the server refuse the
			// completion, and this code runs again and sees it.
			if !g.takeSignals(requests, releases) {
				return g.res, nil
			}
			continue
		}
		if g.continueAsNewDue() {
			return g.res, g.continueAsNew(requests, releases)
		}
		g.armTimer()
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(requests, func(c workflow.ReceiveChannel, _ bool) {
			var req activities.PermitRequest
			c.Receive(ctx, &req)
			g.request(req)
		})
		sel.AddReceive(releases, func(c workflow.ReceiveChannel, _ bool) {
			var rel PermitRelease
			c.Receive(ctx, &rel)
			g.release(rel.RequestID)
		})
		sel.AddFuture(g.timer, func(workflow.Future) {})
		for _, p := range g.pending {
			sel.AddFuture(p.future, func(workflow.Future) {})
		}
		// An operator may cancel a gate: its waiters ask the next run
		// again within permitResendAfter.
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		if ctx.Err() != nil {
			return g.res, ctx.Err()
		}
		if g.timer.IsReady() {
			g.timer = nil
		}
	}
}

// gate is the state of a gate run. Holders are kept in grant order, waiters
// in arrival order.
type gate struct {
	ctx      workflow.Context
	sub      activities.GateStart
	limit    int
	holders  []Permit
	waiters  []activities.PermitRequest
	finished []string
	known    map[string]bool // request IDs of holders and waiters
	done     map[string]bool // finished, as a set
	// budget is the history length that triggers continue-as-new;
	// budgetOverride is GateInput.EventBudget, carried to the next run.
	budget         int
	budgetOverride int
	// pending are the grant signals not yet confirmed.
	pending  []pendingGrant
	lastBusy time.Time
	// timer wakes the gate at timerAt, for the next lease expiry or the
	// end of its idle time; nil when none is pending.
	timer       workflow.Future
	timerAt     time.Time
	cancelTimer workflow.CancelFunc
	res         GateResult
}

type pendingGrant struct {
	requestID string
	future    workflow.Future
}

func newGate(ctx workflow.Context, in GateInput) *gate {
	g := &gate{
		ctx:      ctx,
		sub:      in.GateStart,
		limit:    max(1, in.Limit),
		holders:  in.Holders,
		waiters:  in.Waiters,
		known:    map[string]bool{},
		done:     map[string]bool{},
		budget:   gateEventBudget,
		lastBusy: workflow.Now(ctx),
	}
	if in.EventBudget > 0 {
		g.budget, g.budgetOverride = in.EventBudget, in.EventBudget
	}
	for _, p := range g.holders {
		g.known[p.RequestID] = true
	}
	for _, w := range g.waiters {
		g.known[w.RequestID] = true
	}
	for _, id := range in.Finished {
		g.finish(id)
	}
	return g
}

// takeSignals handles every signal received so far, without blocking, and
// reports whether there was any.
func (g *gate) takeSignals(requests, releases workflow.ReceiveChannel) bool {
	took := false
	for {
		var req activities.PermitRequest
		if !requests.ReceiveAsync(&req) {
			break
		}
		g.request(req)
		took = true
	}
	for {
		var rel PermitRelease
		if !releases.ReceiveAsync(&rel) {
			break
		}
		g.release(rel.RequestID)
		took = true
	}
	return took
}

func (g *gate) request(r activities.PermitRequest) {
	g.lastBusy = workflow.Now(g.ctx)
	if r.Limit > 0 {
		g.limit = r.Limit
	}
	switch {
	case g.done[r.RequestID]:
		g.res.Duplicates++
	case g.known[r.RequestID]:
		g.res.Duplicates++
		// A holder that asks again may have missed its grant (a reset
		// run): grant again. A second grant of one request is harmless:
		// the delivery takes one and gives back what it did not ask for.
		if i := g.holder(r.RequestID); i >= 0 {
			g.signalGrant(g.holders[i].PermitRequest)
		}
	default:
		g.known[r.RequestID] = true
		g.waiters = append(g.waiters, r)
	}
}

func (g *gate) release(requestID string) {
	g.lastBusy = workflow.Now(g.ctx)
	if i := g.holder(requestID); i >= 0 {
		g.holders = slices.Delete(g.holders, i, i+1)
		g.res.Released++
	} else if i := slices.IndexFunc(g.waiters, func(w activities.PermitRequest) bool { return w.RequestID == requestID }); i >= 0 {
		g.waiters = slices.Delete(g.waiters, i, i+1)
		g.res.Withdrawn++
	}
	// Unknown releases are remembered too: a request that arrives after
	// its own withdrawal is then ignored.
	g.finish(requestID)
}

func (g *gate) holder(requestID string) int {
	return slices.IndexFunc(g.holders, func(p Permit) bool { return p.RequestID == requestID })
}

// finish forgets an active request and remembers its ID as finished.
func (g *gate) finish(requestID string) {
	delete(g.known, requestID)
	if g.done[requestID] {
		return
	}
	g.done[requestID] = true
	g.finished = append(g.finished, requestID)
	if len(g.finished) > gateFinishedMemory {
		delete(g.done, g.finished[0])
		g.finished = slices.Delete(g.finished, 0, 1)
	}
}

// grant grants permits to the first waiters while fewer than the limit are
// held.
func (g *gate) grant() {
	now := workflow.Now(g.ctx)
	for len(g.waiters) > 0 && len(g.holders) < g.limit {
		w := g.waiters[0]
		g.waiters = g.waiters[1:]
		g.holders = append(g.holders, Permit{PermitRequest: w, GrantedAt: now, Expires: now.Add(PermitLease)})
		g.res.Granted++
		g.signalGrant(w)
	}
}

func (g *gate) signalGrant(r activities.PermitRequest) {
	f := workflow.SignalExternalWorkflow(g.ctx, r.WorkflowID, r.RunID, SignalPermitGrant,
		PermitGrant{RequestID: r.RequestID, InFlight: len(g.holders), Limit: g.limit})
	g.pending = append(g.pending, pendingGrant{requestID: r.RequestID, future: f})
}

// sweepGrants takes back the permits whose grant could not be delivered:
// their requester has ended.
func (g *gate) sweepGrants() {
	g.pending = slices.DeleteFunc(g.pending, func(p pendingGrant) bool {
		if !p.future.IsReady() {
			return false
		}
		if err := p.future.Get(g.ctx, nil); err != nil {
			if i := g.holder(p.requestID); i >= 0 {
				workflow.GetLogger(g.ctx).Warn("Permit reclaimed: its requester has ended",
					"request_id", p.requestID, "workflow_id", g.holders[i].WorkflowID, "error", err)
				g.holders = slices.Delete(g.holders, i, i+1)
				g.res.Reclaimed++
				g.finish(p.requestID)
			}
		}
		return true
	})
}

// expire takes back the permits held past their lease.
func (g *gate) expire() {
	now := workflow.Now(g.ctx)
	g.holders = slices.DeleteFunc(g.holders, func(p Permit) bool {
		if p.Expires.After(now) {
			return false
		}
		workflow.GetLogger(g.ctx).Warn("Permit expired without release",
			"request_id", p.RequestID, "workflow_id", p.WorkflowID, "granted_at", p.GrantedAt)
		g.res.Expired++
		g.finish(p.RequestID)
		return true
	})
}

// armTimer makes sure a timer fires by the next time the gate must act on
// its own: the earliest lease expiry while permits are held, otherwise the
// end of its idle time. (Waiters are only ever waiting for holders.) A
// pending timer that fires earlier is kept: when it fires, the gate looks
// again and sets the next one, so timers are not restarted on every signal.
func (g *gate) armTimer() {
	at := g.lastBusy.Add(gateIdleTimeout)
	for i, p := range g.holders {
		if i == 0 || p.Expires.Before(at) {
			at = p.Expires
		}
	}
	if g.timer != nil && !g.timerAt.After(at) {
		return
	}
	if g.timer != nil {
		g.cancelTimer()
	}
	tctx, cancel := workflow.WithCancel(g.ctx)
	g.timer, g.timerAt, g.cancelTimer = workflow.NewTimer(tctx, max(time.Second, at.Sub(workflow.Now(g.ctx)))), at, cancel
}

func (g *gate) continueAsNewDue() bool {
	info := workflow.GetInfo(g.ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= g.budget
}

// continueAsNew waits for the grants in flight (so that one that cannot be
// delivered is reclaimed rather than carried), takes in the signals
// received so far, and continues as new with the gate's state.
func (g *gate) continueAsNew(requests, releases workflow.ReceiveChannel) error {
	for len(g.pending) > 0 {
		sel := workflow.NewSelector(g.ctx)
		for _, p := range g.pending {
			sel.AddFuture(p.future, func(workflow.Future) {})
		}
		sel.Select(g.ctx)
		g.sweepGrants()
	}
	g.takeSignals(requests, releases)
	workflow.GetLogger(g.ctx).Info("Gate continues as new", "holders", len(g.holders), "waiters", len(g.waiters))
	if n := len(g.waiters) - gateMaxCarriedWaiters; n > 0 {
		workflow.GetLogger(g.ctx).Warn("Gate drops the newest waiters; they will ask again", "dropped", n)
		g.waiters = g.waiters[:gateMaxCarriedWaiters]
	}
	return workflow.NewContinueAsNewError(g.ctx, EndpointGateWorkflow, GateInput{
		GateStart: g.sub,
		Limit:     g.limit,
		Holders:   g.holders,
		Waiters:   g.waiters,
		Finished:  g.finished,
		// Carried so that a test's budget holds in every run.
		EventBudget: g.budgetOverride,
	})
}
