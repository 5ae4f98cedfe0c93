package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
)

// Fan-out limits. Temporal allows about 2,000 pending children per workflow
// and 50 MiB of history; every child's start event carries the event. A
// batch therefore holds at most MaxBatchSize deliveries and at most
// maxBatchBytes of event bodies; larger fan-outs run as several
// DeliveryBatchWorkflow children.
const (
	MaxBatchSize  = 1000
	maxBatchBytes = 16 << 20
)

// localMatchChange is the workflow.GetVersion change ID of subscription
// matching as a local activity: from version 1 on, each page of
// MatchSubscriptions is a local activity (one marker in history, in the
// workflow task that started the event). Before (DefaultVersion) it was an
// activity: three events, a trip through the task queue and one more
// workflow task before the deliveries started.
const localMatchChange = "local-match"

// matchOptions bound one page of MatchSubscriptions, a query of the
// subscription store; Temporal retries it while the store is unreachable.
var (
	matchOptions = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         matchRetry,
	}
	matchLocalOptions = workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         matchRetry,
	}
	matchRetry = &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute}
)

// UserEventInput is the input of UserEventWorkflow.
type UserEventInput struct {
	Event event.Event
	// BatchSize caps the deliveries one workflow starts; 0 means the largest
	// that fits (at most MaxBatchSize). Tests lower it to exercise batching.
	BatchSize int `json:",omitempty"`
}

// Summary counts the outcomes of an event's deliveries.
type Summary struct {
	Subscriptions int
	Delivered     int
	Failed        int
	Canceled      int
	Skipped       int
	// Batches is the number of DeliveryBatchWorkflow children (0 when the
	// event workflow started the deliveries itself).
	Batches int `json:",omitempty"`
}

func (s *Summary) add(o Summary) {
	s.Subscriptions += o.Subscriptions
	s.Delivered += o.Delivered
	s.Failed += o.Failed
	s.Canceled += o.Canceled
	s.Skipped += o.Skipped
}

// UserEventWorkflow delivers one event to every matching subscription: it
// pages through the subscriptions of the event's account that accept its
// type and starts one DeliveryWorkflow child per subscription (through
// DeliveryBatchWorkflow children when there are more than one batch's
// worth), then waits for all of them and returns a Summary.
//
// Its ID is EventWorkflowID(event.ID), so an event is processed once however
// often it is published. Cancelling it cancels every delivery it started.
func UserEventWorkflow(ctx workflow.Context, in UserEventInput) (Summary, error) {
	size, err := batchSize(in)
	if err != nil {
		return Summary{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidEvent", err)
	}
	match := matcher(ctx)

	var (
		after   string
		batches []workflow.ChildWorkflowFuture
		sum     Summary
	)
	for page := 1; ; page++ {
		var m activities.MatchResult
		err := match(activities.MatchInput{
			AccountID: in.Event.AccountID,
			EventType: in.Event.Type,
			AfterID:   after,
			Limit:     size,
		}).Get(ctx, &m)
		if err != nil {
			return sum, fmt.Errorf("match subscriptions (page %d): %w", page, err)
		}
		if page == 1 && !m.More {
			// The common case: one batch, delivered from here.
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("Delivering to %d subscription(s).", len(m.Targets)))
			sum = fanOut(ctx, in.Event, m.Targets)
			break
		}
		if len(m.Targets) > 0 {
			batches = append(batches, startBatch(ctx, in.Event, m.Targets, len(batches)+1))
			after = m.Targets[len(m.Targets)-1].SubscriptionID
		}
		if !m.More {
			break
		}
	}
	if len(batches) > 0 {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("Delivering in %d batches.", len(batches)))
		sum.Batches = len(batches)
		for _, b := range batches {
			var part Summary
			if err := b.Get(ctx, &part); err != nil {
				if ctx.Err() != nil {
					return sum, temporal.NewCanceledError(sum)
				}
				return sum, fmt.Errorf("delivery batch: %w", err)
			}
			sum.add(part)
		}
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("%d subscription(s): %d delivered, %d failed, %d canceled, %d skipped.",
		sum.Subscriptions, sum.Delivered, sum.Failed, sum.Canceled, sum.Skipped))
	if ctx.Err() != nil {
		return sum, temporal.NewCanceledError(sum)
	}
	return sum, nil
}

// matcher returns how this run calls MatchSubscriptions: as a local
// activity from localMatchChange on, as an activity in histories recorded
// before.
func matcher(ctx workflow.Context) func(activities.MatchInput) workflow.Future {
	if workflow.GetVersion(ctx, localMatchChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		actx := workflow.WithActivityOptions(ctx, matchOptions)
		return func(in activities.MatchInput) workflow.Future {
			return workflow.ExecuteActivity(actx, (*activities.Activities).MatchSubscriptions, in)
		}
	}
	lctx := workflow.WithLocalActivityOptions(ctx, matchLocalOptions)
	// The method value of a nil *Activities: see permits.acquire.
	var acts *activities.Activities
	return func(in activities.MatchInput) workflow.Future {
		return workflow.ExecuteLocalActivity(lctx, acts.MatchSubscriptions, in)
	}
}

// batchSize is the number of deliveries one workflow may start for this
// event: at most MaxBatchSize, and few enough that their inputs fit
// maxBatchBytes.
func batchSize(in UserEventInput) (int, error) {
	body, err := in.Event.Marshal()
	if err != nil {
		return 0, err
	}
	size := min(MaxBatchSize, max(1, maxBatchBytes/max(1, len(body))))
	if in.BatchSize > 0 {
		size = min(size, in.BatchSize)
	}
	return size, nil
}

// BatchInput is the input of DeliveryBatchWorkflow.
type BatchInput struct {
	Event   event.Event
	Targets []activities.Target
}

// DeliveryBatchWorkflow starts and awaits the deliveries of one batch of a
// large fan-out. UserEventWorkflow starts it; cancelling the event
// workflow cancels it and, through it, its deliveries.
func DeliveryBatchWorkflow(ctx workflow.Context, in BatchInput) (Summary, error) {
	sum := fanOut(ctx, in.Event, in.Targets)
	if ctx.Err() != nil {
		return sum, temporal.NewCanceledError(sum)
	}
	return sum, nil
}

func startBatch(ctx workflow.Context, e event.Event, targets []activities.Target, n int) workflow.ChildWorkflowFuture {
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            BatchWorkflowID(e.ID, n),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: EventSearchAttributes(e),
		StaticSummary:         fmt.Sprintf("%s %s: batch %d (%d subscriptions)", e.Type, e.Data.User.ID, n, len(targets)),
	})
	return workflow.ExecuteChildWorkflow(ctx, DeliveryBatchWorkflow, BatchInput{Event: e, Targets: targets})
}

// fanOut starts one DeliveryWorkflow per target and waits for all of them.
func fanOut(ctx workflow.Context, e event.Event, targets []activities.Target) Summary {
	futures := make([]workflow.ChildWorkflowFuture, len(targets))
	for i, t := range targets {
		attrs := temporal.NewSearchAttributes(append(attrUpdates(e),
			AttrSubscriptionID.ValueSet(t.SubscriptionID),
			AttrDeliveryStatus.ValueSet(string(delivery.StatusPending)),
			AttrAttempts.ValueSet(0),
		)...)
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: DeliveryWorkflowID(e.ID, t.SubscriptionID),
			// Cancelling (or terminating) the event stops its deliveries.
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
			// A later run with the same ID is a redelivery.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			TypedSearchAttributes: attrs,
			StaticSummary:         fmt.Sprintf("%s %s → %s", e.Type, e.Data.User.ID, t.Endpoint),
		})
		in := DeliveryInput{Event: e, SubscriptionID: t.SubscriptionID, Schedule: t.Schedule}
		if t.MaxInFlight > 0 {
			in.MaxInFlight, in.Endpoint = t.MaxInFlight, t.Endpoint
		}
		futures[i] = workflow.ExecuteChildWorkflow(cctx, DeliveryWorkflow, in)
	}
	sum := Summary{Subscriptions: len(targets)}
	for _, f := range futures {
		var res DeliveryResult
		err := f.Get(ctx, &res)
		var appErr *temporal.ApplicationError
		switch {
		case err == nil && res.Status == delivery.StatusSkipped:
			sum.Skipped++
		case err == nil:
			sum.Delivered++
		case temporal.IsCanceledError(err):
			sum.Canceled++
		case errors.As(err, &appErr) && appErr.Type() == ErrTypeDeliveryFailed:
			sum.Failed++
		default:
			// The child could not start or ended abnormally (terminated,
			// timed out): not delivered.
			workflow.GetLogger(ctx).Error("Delivery ended abnormally", "error", err)
			sum.Failed++
		}
	}
	return sum
}

func attrUpdates(e event.Event) []temporal.SearchAttributeUpdate {
	return []temporal.SearchAttributeUpdate{
		AttrEventID.ValueSet(e.ID),
		AttrEventType.ValueSet(string(e.Type)),
		AttrUserID.ValueSet(e.Data.User.ID),
		AttrAccountID.ValueSet(e.AccountID),
	}
}

// EventSearchAttributes are the search attributes every workflow of an
// event carries: event ID, type, user and account.
func EventSearchAttributes(e event.Event) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(attrUpdates(e)...)
}
