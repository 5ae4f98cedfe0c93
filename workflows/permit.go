package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
)

// concurrencyLimitChange is the workflow.GetVersion change ID of
// per-endpoint concurrency limits. Only a delivery with a limit asks for
// it, so deliveries without one record nothing more than before.
const concurrencyLimitChange = "endpoint-concurrency"

// permitResendAfter is how long a delivery waits for a grant before it
// sends its request again, in case the gate that had it is gone (a
// terminated run). Repeating a request is harmless: the gate knows its ID.
const permitResendAfter = 10 * time.Minute

// requestPermitOptions run RequestPermit as a local activity: it is one
// call to the Temporal frontend, and as a local activity it costs the
// delivery one marker event rather than three activity events and a
// workflow task.
var requestPermitOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout: 10 * time.Second,
	// Past this, the wait for the grant starts anyway, and the request is
	// sent again after permitResendAfter.
	ScheduleToCloseTimeout: 2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    30 * time.Second,
	},
}

// errCanceledWaitingForPermit is what permits.deliverOnce returns when the
// delivery was cancelled while it waited for a permit: a cancellation, and
// no attempt (nothing was sent), so the delivery must not count one.
var errCanceledWaitingForPermit = temporal.NewCanceledError("canceled while waiting for a permit; the attempt was not made")

// permits is how a delivery with a concurrency limit takes and gives back
// permits from its endpoint's gate (EndpointGateWorkflow). A nil *permits
// is a delivery without a limit: its attempts run as they always did.
type permits struct {
	in     DeliveryInput
	grants workflow.ReceiveChannel
}

// newPermits returns the permits of a delivery that has a concurrency
// limit, and nil for one that has none, without recording anything in the
// latter's history.
func newPermits(ctx workflow.Context, in DeliveryInput) *permits {
	if in.MaxInFlight <= 0 {
		return nil
	}
	if workflow.GetVersion(ctx, concurrencyLimitChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	return &permits{in: in, grants: workflow.GetSignalChannel(ctx, SignalPermitGrant)}
}

// deliverOnce runs one attempt as the package's deliverOnce does, holding
// a permit of the endpoint's gate while it runs when the delivery has a
// limit. Cancelled while it waits for the permit, it withdraws the request
// and returns errCanceledWaitingForPermit, a CanceledError: the attempt was
// not made.
func (p *permits) deliverOnce(ctx workflow.Context, in DeliveryInput, attempt int, local bool) (delivery.Attempt, error) {
	if p == nil {
		return deliverOnce(ctx, in, attempt, local)
	}
	info := workflow.GetInfo(ctx)
	req := activities.PermitRequest{
		RequestID:  fmt.Sprintf("%s/%d", info.WorkflowExecution.RunID, attempt),
		WorkflowID: info.WorkflowExecution.ID,
		RunID:      info.WorkflowExecution.RunID,
		Limit:      in.MaxInFlight,
	}
	err := p.acquire(ctx, req, attempt)
	// Released whatever happens: after the attempt, or to withdraw the
	// request of a delivery cancelled while it waited.
	defer p.release(ctx, req.RequestID)
	if err != nil {
		return delivery.Attempt{}, errCanceledWaitingForPermit
	}
	return deliverOnce(ctx, in, attempt, local)
}

// acquire asks the gate for a permit and waits for the grant, asking again
// every permitResendAfter. It returns an error only when ctx is cancelled.
func (p *permits) acquire(ctx workflow.Context, req activities.PermitRequest, attempt int) error {
	p.returnStaleGrants(ctx)
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("Attempt %d is waiting for a permit: at most %d request(s) in flight to %s at once.",
		attempt, req.Limit, p.endpoint()))
	lctx := workflow.WithLocalActivityOptions(ctx, requestPermitOptions)
	// The method value of a nil *Activities, as the SDK documents for local
	// activities: the worker runs its registered RequestPermit all the same,
	// and where none is registered (the replayer) the arguments are checked
	// against the activity's own signature. The method expression
	// (*activities.Activities).RequestPermit has the receiver as a third
	// parameter, so replay failed the call at once instead of reading its
	// marker. Either way the marker names RequestPermit: histories are the
	// same.
	var acts *activities.Activities
	for {
		err := workflow.ExecuteLocalActivity(lctx, acts.RequestPermit, activities.RequestPermitInput{
			Gate:    activities.GateStart{SubscriptionID: p.in.SubscriptionID, Endpoint: p.in.Endpoint},
			Request: req,
		}).Get(lctx, nil)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			workflow.GetLogger(ctx).Warn("Could not request a permit; waiting, and asking again later",
				"subscription_id", p.in.SubscriptionID, "attempt", attempt, "error", err)
		}
		grant, ok, err := p.await(ctx, req.RequestID)
		if err != nil {
			return err
		}
		if ok {
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("Attempt %d holds a permit: %d of at most %d request(s) in flight to %s.",
				attempt, grant.InFlight, grant.Limit, p.endpoint()))
			return nil
		}
	}
}

// await waits for the grant of requestID for up to permitResendAfter. It
// reports whether it came; its error is ctx's when ctx is cancelled.
// Grants of other requests are given back.
func (p *permits) await(ctx workflow.Context, requestID string) (PermitGrant, bool, error) {
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimer(timerCtx, permitResendAfter)
	for {
		var (
			grant    PermitGrant
			received bool
		)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(p.grants, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, &grant)
			received = true
		})
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		switch {
		case ctx.Err() != nil:
			return PermitGrant{}, false, ctx.Err()
		case !received:
			return PermitGrant{}, false, nil // time to ask again
		case grant.RequestID == requestID:
			return grant, true, nil
		}
		p.release(ctx, grant.RequestID)
	}
}

// returnStaleGrants gives back grants that arrived for earlier requests
// (a gate that saw a late copy of a finished request).
func (p *permits) returnStaleGrants(ctx workflow.Context) {
	var grant PermitGrant
	for p.grants.ReceiveAsync(&grant) {
		p.release(ctx, grant.RequestID)
	}
}

// release gives a permit back, or withdraws a request, by signalling the
// gate's current run, and waits until the signal is delivered: the server
// drops a signal whose sender has completed, so a delivery must not end
// before its release is in. An error (no gate running) is ignored: a gate
// that is gone holds no permits. It works in a cancelled workflow too.
func (p *permits) release(ctx workflow.Context, requestID string) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	err := workflow.SignalExternalWorkflow(dctx, activities.GateWorkflowID(p.in.SubscriptionID), "", SignalPermitRelease,
		PermitRelease{RequestID: requestID}).Get(dctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Info("Could not release a permit; its gate is not running",
			"subscription_id", p.in.SubscriptionID, "request_id", requestID, "error", err)
	}
}

func (p *permits) endpoint() string {
	if p.in.Endpoint != "" {
		return p.in.Endpoint
	}
	return "the endpoint"
}
