package deliveries

import (
	"context"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/workflows"
)

// Cancel requests cancellation of the delivery's open run: it stops
// retrying and ends canceled (at once when waiting between attempts, after
// the attempt in flight otherwise). It returns ErrNotRunning when the latest
// run is closed. Cancelling a run already asked to cancel is not an error.
func (s *Service) Cancel(ctx context.Context, accountID string, k Key) error {
	id, r, err := s.openRun(ctx, accountID, k)
	if err != nil {
		return err
	}
	err = s.client.CancelWorkflowWithOptions(ctx, client.CancelWorkflowOptions{
		WorkflowID: id,
		RunID:      r.RunID,
		Reason:     "canceled through the userhooks delivery API",
	})
	return closedIsNotRunning(err, "cancel", id)
}

// RetryNow makes a delivery that is waiting between attempts try again at
// once (the retry-now signal). Sent while an attempt is in flight, it has no
// effect: the workflow only honours it during a wait. It returns
// ErrNotRunning when the latest run is closed.
func (s *Service) RetryNow(ctx context.Context, accountID string, k Key) error {
	id, r, err := s.openRun(ctx, accountID, k)
	if err != nil {
		return err
	}
	err = s.client.SignalWorkflow(ctx, id, r.RunID, workflows.SignalRetryNow, nil)
	return closedIsNotRunning(err, "signal retry-now to", id)
}

// openRun returns the delivery's latest run if it belongs to accountID and
// is open. The operation that follows names that run, so it can never reach
// a later run started in between.
func (s *Service) openRun(ctx context.Context, accountID string, k Key) (string, run, error) {
	id, err := k.WorkflowID()
	if err != nil {
		return "", run{}, err
	}
	r, err := s.describe(ctx, accountID, id, "")
	if err != nil {
		return "", run{}, err
	}
	if !r.open {
		return "", run{}, ErrNotRunning
	}
	return id, r, nil
}

func closedIsNotRunning(err error, what, id string) error {
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notFound):
		// The run closed between the check and the request.
		return ErrNotRunning
	default:
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
}

// Redeliver delivers the event to the subscription again, as a new run of
// the delivery workflow with the same workflow ID (so the receiver gets the
// same webhook-id), the input of the latest run, fresh search attributes
// (pending, 0 attempts) and a memo (MemoRedeliveryOf) and link naming the
// run it redelivers. It needs the latest run to be closed (delivered,
// failed, canceled or skipped); otherwise it returns ErrStillRunning.
//
// It is idempotent per run: concurrent calls that find the same latest run
// start exactly one new run, and each returns it or ErrStillRunning. (The
// start request's ID is derived from the redelivered run, and Temporal
// deduplicates starts by request ID, even once the new run has closed.) A
// call that finds the new run already closed redelivers again, as asked.
//
// The new run is not a child of the event workflow: cancelling the event no
// longer cancels it; cancel the delivery itself.
func (s *Service) Redeliver(ctx context.Context, accountID string, k Key) (Delivery, error) {
	id, err := k.WorkflowID()
	if err != nil {
		return Delivery{}, err
	}
	r, err := s.describe(ctx, accountID, id, "")
	if err != nil {
		return Delivery{}, err
	}
	if r.open {
		return Delivery{}, ErrStillRunning
	}
	return s.redeliver(ctx, k, r)
}

// redeliver starts the run that redelivers prev, a closed run already
// checked to belong to the caller's account.
func (s *Service) redeliver(ctx context.Context, k Key, prev run) (Delivery, error) {
	in, err := s.startInput(ctx, prev.WorkflowID, prev.RunID)
	if err != nil {
		return Delivery{}, err
	}
	if in.Event.AccountID != prev.AccountID || in.Event.ID != k.EventID || in.SubscriptionID != k.SubscriptionID {
		// The input disagrees with the search attributes: not a run that
		// userhooks started, and not one to act on.
		return Delivery{}, ErrNotFound
	}

	summary := fmt.Sprintf("%s %s (redelivery of run %s)", in.Event.Type, in.Event.Data.User.ID, prev.RunID)
	if prev.Endpoint != "" {
		summary = fmt.Sprintf("%s %s → %s (redelivery of run %s)", in.Event.Type, in.Event.Data.User.ID, prev.Endpoint, prev.RunID)
	}
	req, err := s.startRequest(in, prev, summary)
	if err != nil {
		return Delivery{}, err
	}
	resp, err := s.client.WorkflowService().StartWorkflowExecution(ctx, req)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		// Another run, not ours, was started after prev closed.
		return Delivery{}, ErrStillRunning
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("start redelivery of %s run %s: %w", prev.WorkflowID, prev.RunID, err)
	}

	d := Delivery{
		EventID:        in.Event.ID,
		SubscriptionID: in.SubscriptionID,
		AccountID:      in.Event.AccountID,
		EventType:      string(in.Event.Type),
		UserID:         in.Event.Data.User.ID,
		Status:         delivery.StatusPending,
		WorkflowID:     prev.WorkflowID,
		RunID:          resp.GetRunId(),
		StartedAt:      time.Now().UTC(),
		Endpoint:       prev.Endpoint,
		RedeliveryOf:   prev.RunID,
	}
	// Describe the new run for its real start time and current status; the
	// run exists whatever this returns, so a failure here is not an error.
	if now, err := s.describe(ctx, prev.AccountID, prev.WorkflowID, d.RunID); err == nil {
		d = now.Delivery
	}
	return d, nil
}

// startRequest builds the start of a redelivery. It is made below the SDK
// client, because only the raw request carries a request ID, and the
// request ID is what makes concurrent redeliveries of one run start one run.
func (s *Service) startRequest(in workflows.DeliveryInput, prev run, summary string) (*workflowservice.StartWorkflowExecutionRequest, error) {
	dc := s.opts.DataConverter
	input, err := dc.ToPayloads(in)
	if err != nil {
		return nil, fmt.Errorf("encode redelivery input: %w", err)
	}
	memo, err := dc.ToPayload(prev.RunID)
	if err != nil {
		return nil, fmt.Errorf("encode redelivery memo: %w", err)
	}
	sum, err := dc.ToPayload(summary)
	if err != nil {
		return nil, fmt.Errorf("encode redelivery summary: %w", err)
	}
	attrs, err := encodeSearchAttributes(
		workflows.AttrEventID.ValueSet(in.Event.ID),
		workflows.AttrEventType.ValueSet(string(in.Event.Type)),
		workflows.AttrUserID.ValueSet(in.Event.Data.User.ID),
		workflows.AttrAccountID.ValueSet(in.Event.AccountID),
		workflows.AttrSubscriptionID.ValueSet(in.SubscriptionID),
		workflows.AttrDeliveryStatus.ValueSet(string(delivery.StatusPending)),
		workflows.AttrAttempts.ValueSet(0),
	)
	if err != nil {
		return nil, err
	}
	return &workflowservice.StartWorkflowExecutionRequest{
		Namespace:    s.opts.Namespace,
		WorkflowId:   prev.WorkflowID,
		WorkflowType: &commonpb.WorkflowType{Name: deliveryWorkflowType},
		TaskQueue:    &taskqueuepb.TaskQueue{Name: s.opts.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		Input:        input,
		Identity:     s.opts.Identity,
		RequestId:    redeliveryRequestID(prev.WorkflowID, prev.RunID),
		// A closed run of any outcome may be followed by another; an open
		// one is never replaced or joined (ErrStillRunning instead).
		WorkflowIdReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIdConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		Memo:                     &commonpb.Memo{Fields: map[string]*commonpb.Payload{MemoRedeliveryOf: memo}},
		SearchAttributes:         attrs,
		UserMetadata:             &sdkpb.UserMetadata{Summary: sum},
		Links: []*commonpb.Link{{Variant: &commonpb.Link_WorkflowEvent_{WorkflowEvent: &commonpb.Link_WorkflowEvent{
			Namespace:  s.opts.Namespace,
			WorkflowId: prev.WorkflowID,
			RunId:      prev.RunID,
			Reference: &commonpb.Link_WorkflowEvent_EventRef{EventRef: &commonpb.Link_WorkflowEvent_EventReference{
				EventId:   1,
				EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
			}},
		}}}},
	}, nil
}

// redeliveryNamespace scopes the request IDs of redeliveries.
var redeliveryNamespace = uuid.MustParse("5b0d7c52-4a8e-4f43-9a57-0c2f8a3b6e11")

// redeliveryRequestID is the start request ID of the redelivery of a run:
// the same for every caller that redelivers that run.
func redeliveryRequestID(workflowID, runID string) string {
	return uuid.NewSHA1(redeliveryNamespace, []byte(workflowID+"\x00"+runID)).String()
}

// encodeSearchAttributes encodes search attributes as the SDK does: with
// the default converter (search attributes never go through a codec) and
// their type in the payload's metadata.
func encodeSearchAttributes(updates ...temporal.SearchAttributeUpdate) (*commonpb.SearchAttributes, error) {
	typed := temporal.NewSearchAttributes(updates...)
	out := &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{}}
	for key, value := range typed.GetUntypedValues() {
		p, err := converter.GetDefaultDataConverter().ToPayload(value)
		if err != nil {
			return nil, fmt.Errorf("encode search attribute %s: %w", key.GetName(), err)
		}
		p.Metadata["type"] = []byte(key.GetValueType().String())
		out.IndexedFields[key.GetName()] = p
	}
	return out, nil
}

// Recover redelivers the subscription's deliveries whose latest run failed
// and started at or after since (zero: any time within the namespace's
// retention). Deliveries with an open run are counted in AlreadyRunning and
// left alone; delivered, canceled and skipped ones are skipped.
//
// Visibility lists every run of a delivery, so Recover acts once per
// delivery, on its latest run as Temporal reports it at that moment, and
// through Redeliver's per-run idempotence: two Recover calls at once start
// at most one new run per delivery. On an error it returns what it did so
// far with the error.
func (s *Service) Recover(ctx context.Context, accountID, subscriptionID string, since time.Time) (RecoverResult, error) {
	var res RecoverResult
	q, err := Filter{AccountID: accountID, SubscriptionID: subscriptionID, StartedAfter: since}.Query()
	if err != nil {
		return res, err
	}
	if subscriptionID == "" {
		return res, fmt.Errorf("%w: subscription ID is required", ErrInvalidFilter)
	}
	// Candidates: failed runs, and open ones (to count them).
	q += " AND (ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut' OR ExecutionStatus = 'Running')"

	var (
		order []string           // workflow IDs, first seen first
		keys  = map[string]Key{} // workflow ID → key
		open  = map[string]bool{}
		token []byte
	)
	for {
		resp, err := s.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.opts.Namespace, PageSize: MaxPageSize, NextPageToken: token, Query: q,
		})
		if err != nil {
			return res, fmt.Errorf("list deliveries of subscription %s to recover: %w", subscriptionID, err)
		}
		for _, info := range resp.GetExecutions() {
			d := s.fromInfo(info)
			if d.AccountID != accountID || d.SubscriptionID != subscriptionID {
				continue
			}
			if _, seen := keys[d.WorkflowID]; !seen {
				order = append(order, d.WorkflowID)
				keys[d.WorkflowID] = Key{EventID: d.EventID, SubscriptionID: d.SubscriptionID}
			}
			if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				open[d.WorkflowID] = true
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}

	for _, id := range order {
		if open[id] {
			res.AlreadyRunning++
			continue
		}
		k := keys[id]
		if got, err := k.WorkflowID(); err != nil || got != id {
			continue // search attributes that do not match the ID: not ours
		}
		latest, err := s.describe(ctx, accountID, id, "")
		if errors.Is(err, ErrNotFound) {
			continue // gone (retention) since it was listed
		}
		if err != nil {
			return res, fmt.Errorf("recover %s: %w", id, err)
		}
		switch {
		case latest.open:
			res.AlreadyRunning++
			continue
		case latest.Status != delivery.StatusFailed:
			continue
		}
		d, err := s.redeliver(ctx, k, latest)
		if errors.Is(err, ErrStillRunning) {
			res.AlreadyRunning++
			continue
		}
		if err != nil {
			return res, fmt.Errorf("recover %s: %w", id, err)
		}
		res.Redelivered = append(res.Redelivered, d)
	}
	return res, nil
}
