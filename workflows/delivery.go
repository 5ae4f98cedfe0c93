package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
)

// ErrTypeDeliveryFailed is the application-error type of a delivery workflow
// that ended without delivering; its details are the DeliveryResult.
const ErrTypeDeliveryFailed = "DeliveryFailed"

// Metrics DeliveryWorkflow emits through workflow.GetMetricsHandler, which
// drops them while the workflow replays, so a run counts each once. With
// the metrics package they reach Prometheus under these names, with the
// labels the SDK's worker adds (such as namespace, task_queue and
// workflow_type) besides their own.
const (
	// MetricDeliveries counts finished deliveries, labelled TagOutcome
	// (delivered, failed, canceled or skipped) and TagEventType.
	MetricDeliveries = "userhooks_deliveries_total"
	// MetricDeliveryAttempts counts attempts as history records them,
	// labelled activities.TagResult and TagEventType; an attempt that
	// failed on our side after the activity's own retries counts once, as
	// InternalError.
	MetricDeliveryAttempts = "userhooks_delivery_attempts_total"
	// TagOutcome is the final delivery.Status of a delivery.
	TagOutcome = "outcome"
	// TagEventType is the event's type, e.g. user.created.
	TagEventType = "event_type"
)

// deliverTimeout bounds one Deliver activity: the request timeout plus room
// to load the subscription and report the result.
const deliverTimeout = activities.DefaultRequestTimeout + 15*time.Second

// infraRetry retries a Deliver activity, local or not, only for faults on
// our side (worker lost mid-attempt, store unreachable). HTTP outcomes
// never go through it: Deliver reports them as non-retryable errors and the
// workflow schedules the next attempt itself, so every attempt is its own
// entry in history.
var infraRetry = &temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    30 * time.Second,
	MaximumAttempts:    5,
}

// notifyTimeout bounds one NotifySubscriptionDisabled activity, as
// deliverTimeout bounds a delivery request.
const notifyTimeout = deliverTimeout

// notifyRetry retries a notification to the operator webhook for about
// six minutes (8 tries, 5 s growing to 2 min apart), then gives up: the
// disable has been logged, and the delivery workflow must not wait on an
// operator endpoint that stays down. Non-retryable errors (a 4xx, a URL the
// egress policy refuses) end it at once.
var notifyRetry = &temporal.RetryPolicy{
	InitialInterval:    5 * time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    2 * time.Minute,
	MaximumAttempts:    8,
}

// endpointHealthChange is the workflow.GetVersion change ID of endpoint
// health: from version 1 on, a delivery that used up its schedule asks
// DisableFailingSubscription to disable a long-failing subscription, and
// every disable is followed by NotifySubscriptionDisabled. Histories
// recorded before (DefaultVersion) replay without these commands.
const endpointHealthChange = "endpoint-health"

// localDeliverChange is the workflow.GetVersion change ID of attempts run
// as local activities: from version 1 on, each attempt is a Deliver local
// activity, whose outcome history records as one marker, in the workflow
// task that ran it. Before (DefaultVersion) each attempt was a Deliver
// activity: three events, a trip through the task queue and a second
// workflow task. Histories recorded before replay as they were.
const localDeliverChange = "local-deliver"

// deliverLocalOptions run Deliver as a local activity. As for the activity,
// Temporal retries it only for faults on our side; a worker lost mid-attempt
// times out the workflow task (10 s), and another worker runs the attempt
// again.
var deliverLocalOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout: deliverTimeout,
	RetryPolicy:         infraRetry,
}

// DeliveryInput is the input of DeliveryWorkflow. It carries the
// subscription's ID, never its URL or secrets.
type DeliveryInput struct {
	Event          event.Event
	SubscriptionID string
	// Schedule overrides delivery.DefaultSchedule() when set.
	Schedule *delivery.Schedule `json:",omitempty"`
	// MaxInFlight, when positive, limits the requests in flight to the
	// subscription's endpoint across all deliveries: each attempt holds a
	// permit of the endpoint's EndpointGateWorkflow. Endpoint (scheme and
	// host) is set with it, for the details of a delivery that waits.
	MaxInFlight int    `json:",omitempty"`
	Endpoint    string `json:",omitempty"`
}

// DeliveryResult is how a delivery ended.
type DeliveryResult struct {
	Status   delivery.Status
	Attempts int
	// Last is the record of the last attempt.
	Last delivery.Attempt
}

// DeliveryWorkflow delivers one event to one subscription. Each attempt is
// one Deliver local activity (an activity in runs recorded before
// localDeliverChange), whose outcome history records; between attempts it
// waits on a durable timer for the time the retry schedule (or the
// receiver's Retry-After) says, or until a retry-now signal. It stops on
// success, on a final answer (4xx other than 408/425/429; 410 also
// disables the subscription), when the schedule is exhausted (and then
// disables the subscription if its endpoint has been failing for the
// worker's DisableAfter), or when cancelled. Every disable it causes is
// reported to the operator webhook; neither a failed disable nor a failed
// notification changes how the delivery ends.
//
// With a concurrency limit (MaxInFlight), each attempt first waits for a
// permit of the endpoint's gate (EndpointGateWorkflow) and gives it back
// when it ends; the grant is a signal in history.
//
// It completes with status delivered or skipped, fails with
// ErrTypeDeliveryFailed, or ends cancelled, so Temporal's own execution
// status already tells the outcome.
func DeliveryWorkflow(ctx workflow.Context, in DeliveryInput) (DeliveryResult, error) {
	sched := delivery.DefaultSchedule()
	if in.Schedule != nil {
		sched = *in.Schedule
	}
	info := workflow.GetInfo(ctx)
	log := workflow.GetLogger(ctx)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: deliverTimeout,
		RetryPolicy:         infraRetry,
	})
	local := workflow.GetVersion(ctx, localDeliverChange, workflow.DefaultVersion, 1) >= 1
	retryNow := workflow.GetSignalChannel(ctx, SignalRetryNow)
	permits := newPermits(ctx, in) // nil without a limit: nothing more in history

	var res DeliveryResult
	for attempt := 1; ; attempt++ {
		rec, err := permits.deliverOnce(ctx, in, attempt, local)
		// An attempt cancelled while it waited for its permit was never
		// made: the result and UserhooksAttempts keep the attempts made.
		// (Only a delivery with a limit, past the permit path's GetVersion,
		// can be cancelled there; the commands are the same either way.)
		if !errors.Is(err, errCanceledWaitingForPermit) {
			res.Attempts, res.Last = attempt, rec
		}
		if err == nil {
			workflow.GetMetricsHandler(ctx).WithTags(map[string]string{
				activities.TagResult: activities.AttemptResult(rec),
				TagEventType:         string(in.Event.Type),
			}).Counter(MetricDeliveryAttempts).Inc(1)
		}
		switch {
		case temporal.IsCanceledError(err):
			return res, finish(ctx, in, &res, delivery.StatusCanceled)
		case err != nil:
			return res, err
		case rec.Skipped:
			return res, finish(ctx, in, &res, delivery.StatusSkipped)
		case rec.Succeeded():
			return res, finish(ctx, in, &res, delivery.StatusDelivered)
		case rec.Class == delivery.ClassGone:
			health := workflow.GetVersion(ctx, endpointHealthChange, workflow.DefaultVersion, 1)
			if health == workflow.DefaultVersion {
				disable := workflow.ExecuteActivity(ctx, (*activities.Activities).DisableSubscription, activities.DisableInput{
					SubscriptionID: in.SubscriptionID,
					Reason:         activities.ReasonGone,
				})
				if err := disable.Get(ctx, nil); err != nil {
					log.Error("Could not disable subscription after 410 Gone", "subscription_id", in.SubscriptionID, "error", err)
				}
			} else {
				hctx := healthContext(ctx)
				notifyIfDisabled(hctx, in, workflow.ExecuteActivity(hctx, (*activities.Activities).DisableSubscription, activities.DisableInput{
					SubscriptionID: in.SubscriptionID,
					Reason:         activities.ReasonGone,
				}))
			}
			return res, finish(ctx, in, &res, delivery.StatusFailed)
		case !rec.Class.Retryable():
			return res, finish(ctx, in, &res, delivery.StatusFailed)
		}

		delay, ok := sched.NextDelay(attempt, time.Duration(rec.RetryAfter), info.WorkflowExecution.ID)
		if !ok {
			if workflow.GetVersion(ctx, endpointHealthChange, workflow.DefaultVersion, 1) >= 1 {
				hctx := healthContext(ctx)
				notifyIfDisabled(hctx, in, workflow.ExecuteActivity(hctx, (*activities.Activities).DisableFailingSubscription,
					activities.DisableFailingInput{SubscriptionID: in.SubscriptionID}))
			}
			return res, finish(ctx, in, &res, delivery.StatusFailed)
		}
		next := workflow.Now(ctx).Add(delay).UTC()
		setStatus(ctx, delivery.StatusRetrying, attempt)
		waiting := fmt.Sprintf("Attempt %d failed: %s. Next attempt (%d of %d) at %s.",
			attempt, rec.Error, attempt+1, sched.MaxAttempts(), next.Format(time.RFC3339))
		workflow.SetCurrentDetails(ctx, waiting)
		log.Info("Waiting before next attempt", "attempt", attempt, "delay", delay)

		// The timer's summary says in the Web UI's history why it waits: a
		// failed local activity looks like a successful one in its rows.
		if err := waitForRetry(ctx, delay, waiting, retryNow); err != nil {
			return res, finish(ctx, in, &res, delivery.StatusCanceled)
		}
	}
}

// healthContext is the context of the disable and notify activities that
// end a delivery. It is disconnected from the workflow's cancellation: the
// delivery's outcome is already decided, and a cancel arriving between a
// disable and its notification must not leave the disable unreported.
func healthContext(ctx workflow.Context) workflow.Context {
	hctx, _ := workflow.NewDisconnectedContext(ctx)
	return hctx
}

// notifyIfDisabled waits for a disable activity and, when it disabled the
// subscription, sends its notice to operators with NotifySubscriptionDisabled
// under notifyRetry. Failures are logged and otherwise ignored: the
// delivery has ended whatever they are.
func notifyIfDisabled(ctx workflow.Context, in DeliveryInput, disable workflow.Future) {
	log := workflow.GetLogger(ctx)
	var res activities.DisableResult
	if err := disable.Get(ctx, &res); err != nil {
		log.Error("Could not disable subscription", "subscription_id", in.SubscriptionID, "error", err)
		return
	}
	if !res.Disabled || res.Notice == nil {
		return
	}
	log.Warn("Subscription disabled", "subscription_id", in.SubscriptionID, "reason", res.Notice.Data.Reason)
	nctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: notifyTimeout,
		RetryPolicy:         notifyRetry,
	})
	err := workflow.ExecuteActivity(nctx, (*activities.Activities).NotifySubscriptionDisabled,
		activities.NotifyInput{Event: *res.Notice}).Get(nctx, nil)
	if err != nil {
		log.Error("Could not notify operators that the subscription was disabled", "subscription_id", in.SubscriptionID, "error", err)
	}
}

// deliverOnce runs one Deliver activity, a local one when local is set
// (localDeliverChange), and returns the attempt's record. The error is
// non-nil only for cancellation (a CanceledError) or for a workflow-level
// problem; failed attempts, including faults on our side that outlasted
// the activity's retries, come back as records.
func deliverOnce(ctx workflow.Context, in DeliveryInput, attempt int, local bool) (delivery.Attempt, error) {
	din := activities.DeliverInput{Event: in.Event, SubscriptionID: in.SubscriptionID, Attempt: attempt}
	var f workflow.Future
	if local {
		opts := deliverLocalOptions
		opts.Summary = fmt.Sprintf("attempt %d", attempt) // the row's label in the Web UI
		// The method value of a nil *Activities: see permits.acquire.
		var acts *activities.Activities
		f = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), acts.Deliver, din)
	} else {
		f = workflow.ExecuteActivity(ctx, (*activities.Activities).Deliver, din)
	}
	var rec delivery.Attempt
	err := f.Get(ctx, &rec)
	if err == nil {
		return rec, nil
	}
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		return delivery.Attempt{Number: attempt}, temporal.NewCanceledError()
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&rec) == nil {
		return rec, nil
	}
	// The activity's own retries ran out (worker lost, timeout, store down):
	// count it as an attempt that failed on our side and keep to the schedule.
	return delivery.Attempt{
		Number:    attempt,
		StartedAt: workflow.Now(ctx).UTC(),
		Class:     delivery.ClassInternal,
		Error:     err.Error(),
	}, nil
}

// waitForRetry sleeps for delay on a durable timer, whose summary is
// summary, ending early on a retry-now signal. It returns an error only if
// the workflow is cancelled.
//
// Only a signal that arrives during the wait counts: signals sent while an
// attempt was running are dropped, so that one signal never skips a later
// wait and several never skip several.
func waitForRetry(ctx workflow.Context, delay time.Duration, summary string, retryNow workflow.ReceiveChannel) error {
	for retryNow.ReceiveAsync(nil) {
	}
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimerWithOptions(timerCtx, delay, workflow.TimerOptions{Summary: summary})
	var timerErr error
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(timer, func(f workflow.Future) { timerErr = f.Get(ctx, nil) })
	sel.AddReceive(retryNow, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.Select(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return timerErr
}

// finish records the final status in search attributes, the workflow's
// details and MetricDeliveries, and returns what the workflow function
// should return.
func finish(ctx workflow.Context, in DeliveryInput, res *DeliveryResult, status delivery.Status) error {
	res.Status = status
	// Search attributes and details are updated even when the workflow is
	// cancelled: a disconnected context lets the commands through.
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	setStatus(ctx, status, res.Attempts)
	workflow.SetCurrentDetails(ctx, describe(*res))
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{
		TagOutcome:   string(status),
		TagEventType: string(in.Event.Type),
	}).Counter(MetricDeliveries).Inc(1)
	switch status {
	case delivery.StatusCanceled:
		return temporal.NewCanceledError(*res)
	case delivery.StatusFailed:
		return temporal.NewNonRetryableApplicationError(describe(*res), ErrTypeDeliveryFailed, nil, *res)
	}
	return nil
}

func setStatus(ctx workflow.Context, status delivery.Status, attempts int) {
	err := workflow.UpsertTypedSearchAttributes(ctx,
		AttrDeliveryStatus.ValueSet(string(status)),
		AttrAttempts.ValueSet(int64(attempts)),
	)
	if err != nil {
		workflow.GetLogger(ctx).Error("Could not update search attributes", "error", err)
	}
}

// describe says in one line how a delivery stands, for the Web UI.
func describe(r DeliveryResult) string {
	switch r.Status {
	case delivery.StatusDelivered:
		return fmt.Sprintf("Delivered on attempt %d (HTTP %d, %d ms).", r.Attempts, r.Last.StatusCode, r.Last.DurationMs)
	case delivery.StatusSkipped:
		return fmt.Sprintf("Skipped: %s.", r.Last.Error)
	case delivery.StatusCanceled:
		return fmt.Sprintf("Canceled after %d attempt(s).", r.Attempts)
	default:
		return fmt.Sprintf("Failed after %d attempt(s); last: %s (%s).", r.Attempts, r.Last.Error, r.Last.Class)
	}
}
