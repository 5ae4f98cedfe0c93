package deliveries

import (
	"context"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/workflows"
)

// deliverActivityType is the registered name of activities.Activities.Deliver.
const deliverActivityType = "Deliver"

// requestPermitActivityType is the registered name of
// activities.Activities.RequestPermit, which a delivery with a concurrency
// limit runs as a local activity before each attempt: its result is a
// marker in history, not an activity's events.
const requestPermitActivityType = "RequestPermit"

// localActivityMarker is the marker name the Go SDK records a local
// activity's outcome under; localActivityMarkerData is the part of the
// marker's "data" detail that names the activity and, when its last try
// failed with more tries to come, the backoff before the next one. Its
// result, if any, is the "result" detail; its failure, the marker's.
const localActivityMarker = "LocalActivity"

type localActivityMarkerData struct {
	ActivityType string
	Backoff      time.Duration
}

// history returns every event of one run.
func (s *Service) history(ctx context.Context, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
	it := s.client.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("history of %s run %s: %w", workflowID, runID, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// startInput reads the input a run was started with from its first
// history event.
func (s *Service) startInput(ctx context.Context, workflowID, runID string) (workflows.DeliveryInput, error) {
	var in workflows.DeliveryInput
	it := s.client.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return in, fmt.Errorf("history of %s run %s is empty", workflowID, runID)
	}
	ev, err := it.Next()
	if err != nil {
		return in, fmt.Errorf("history of %s run %s: %w", workflowID, runID, err)
	}
	started := ev.GetWorkflowExecutionStartedEventAttributes()
	if started == nil {
		return in, fmt.Errorf("first event of %s run %s is %s, want WorkflowExecutionStarted", workflowID, runID, ev.GetEventType())
	}
	if err := s.opts.DataConverter.FromPayloads(started.GetInput(), &in); err != nil {
		return in, fmt.Errorf("decode input of %s run %s: %w", workflowID, runID, err)
	}
	return in, nil
}

// runLog is what a delivery run's history says of its attempts.
type runLog struct {
	// Attempts are the attempts made, in order.
	Attempts []delivery.Attempt
	// NextAttemptAt is when the pending retry timer fires; zero when none
	// is pending.
	NextAttemptAt time.Time
	// WaitingForPermitSince is when the run asked its endpoint's gate for
	// the permit of its next attempt, while it waits for the grant; zero
	// otherwise.
	WaitingForPermitSince time.Time
}

// attemptLog reads the attempts of a delivery run from its history, in
// order, decoded with dc, and says when the pending retry timer fires and
// whether the run is waiting for a permit.
//
// An attempt is a Deliver activity that ended: its result, or the details
// of its failure. Runs recorded before the local-deliver change ran it as
// an activity (ActivityTaskScheduled, then Completed, Failed or TimedOut);
// later runs run it as a local activity, whose outcome is one marker. A
// Deliver that failed without an attempt record (its retries for faults on
// our side ran out, or it timed out) is an InternalError attempt, as the
// workflow counts it. One still running is not an attempt yet, and a
// cancelled one never is.
//
// A delivery with a concurrency limit asks its gate for a permit before
// each attempt (a RequestPermit local activity: a marker in history) and
// waits for the grant on a timer (workflows.permits.await), after which
// it asks again. That timer is not a retry: from a permit request until the
// attempt (its Deliver activity scheduled, or its local activity's marker)
// the run is waiting for a permit, and timers started then are not the next
// attempt.
func attemptLog(dc converter.DataConverter, events []*historypb.HistoryEvent) (runLog, error) {
	var (
		log      []delivery.Attempt
		number   = map[int64]int{} // scheduled event ID of a Deliver activity → attempt number
		timers   = map[string]time.Time{}
		attempts int
		// waitingSince is set from the first permit request of an attempt
		// until the attempt's Deliver is scheduled or recorded.
		waitingSince time.Time
	)
	// ended adds attempt n, which ended with result (nil when it failed) or
	// failure.
	ended := func(ev *historypb.HistoryEvent, n int, result *commonpb.Payloads, failure *failurepb.Failure) error {
		rec, err := attemptRecord(dc, ev, n, result, failure)
		if err != nil {
			return err
		}
		log = append(log, rec)
		return nil
	}
	for _, ev := range events {
		switch {
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == deliverActivityType {
				attempts++
				number[ev.GetEventId()] = attempts
				waitingSince = time.Time{}
			}
		case ev.GetMarkerRecordedEventAttributes() != nil:
			m := ev.GetMarkerRecordedEventAttributes()
			if m.GetMarkerName() != localActivityMarker {
				continue // a version marker
			}
			var data localActivityMarkerData
			if err := dc.FromPayloads(m.GetDetails()["data"], &data); err != nil {
				return runLog{}, fmt.Errorf("decode local activity marker %d: %w", ev.GetEventId(), err)
			}
			switch {
			case data.ActivityType == requestPermitActivityType:
				if waitingSince.IsZero() {
					waitingSince = ev.GetEventTime().AsTime()
				}
			case data.ActivityType != deliverActivityType:
			case m.GetFailure().GetCanceledFailureInfo() != nil:
				// Cancelled with its run: not an attempt.
			case m.GetFailure() != nil && data.Backoff > 0:
				// A fault on our side, tried again after the backoff: the
				// attempt has not ended.
			default:
				attempts++
				waitingSince = time.Time{}
				if err := ended(ev, attempts, m.GetDetails()["result"], m.GetFailure()); err != nil {
					return runLog{}, err
				}
			}
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			a := ev.GetActivityTaskCompletedEventAttributes()
			if n, ok := number[a.GetScheduledEventId()]; ok {
				if err := ended(ev, n, a.GetResult(), nil); err != nil {
					return runLog{}, err
				}
			}
		case ev.GetActivityTaskFailedEventAttributes() != nil:
			a := ev.GetActivityTaskFailedEventAttributes()
			if n, ok := number[a.GetScheduledEventId()]; ok {
				if err := ended(ev, n, nil, a.GetFailure()); err != nil {
					return runLog{}, err
				}
			}
		case ev.GetActivityTaskTimedOutEventAttributes() != nil:
			a := ev.GetActivityTaskTimedOutEventAttributes()
			if n, ok := number[a.GetScheduledEventId()]; ok {
				log = append(log, internalAttempt(ev, n, "attempt timed out: "+a.GetFailure().GetMessage()))
			}
		case ev.GetTimerStartedEventAttributes() != nil:
			if !waitingSince.IsZero() {
				continue // the wait for a grant, before asking again
			}
			a := ev.GetTimerStartedEventAttributes()
			timers[a.GetTimerId()] = ev.GetEventTime().AsTime().Add(a.GetStartToFireTimeout().AsDuration())
		case ev.GetTimerFiredEventAttributes() != nil:
			delete(timers, ev.GetTimerFiredEventAttributes().GetTimerId())
		case ev.GetTimerCanceledEventAttributes() != nil:
			delete(timers, ev.GetTimerCanceledEventAttributes().GetTimerId())
		}
	}
	rl := runLog{Attempts: log, WaitingForPermitSince: waitingSince}
	for _, at := range timers {
		if rl.NextAttemptAt.IsZero() || at.Before(rl.NextAttemptAt) {
			rl.NextAttemptAt = at
		}
	}
	return rl, nil
}

// attemptRecord decodes the record of attempt n, recorded by event ev: the
// Deliver's result when failure is nil, else the details of its
// application failure. A failure without a record (a fault on our side)
// is an InternalError attempt with the failure's message.
func attemptRecord(dc converter.DataConverter, ev *historypb.HistoryEvent, n int, result *commonpb.Payloads, failure *failurepb.Failure) (delivery.Attempt, error) {
	payloads, what := result, "result"
	if failure != nil {
		app := failure.GetApplicationFailureInfo()
		if app == nil || len(app.GetDetails().GetPayloads()) == 0 {
			return internalAttempt(ev, n, failure.GetMessage()), nil
		}
		payloads, what = app.GetDetails(), "failure details"
	}
	var rec delivery.Attempt
	if err := dc.FromPayloads(payloads, &rec); err != nil {
		return rec, fmt.Errorf("decode %s of attempt %d: %w", what, n, err)
	}
	if rec.Number == 0 {
		rec.Number = n
	}
	return rec, nil
}

// internalAttempt is attempt n, which failed on our side with msg, as of
// event ev.
func internalAttempt(ev *historypb.HistoryEvent, n int, msg string) delivery.Attempt {
	return delivery.Attempt{Number: n, StartedAt: ev.GetEventTime().AsTime(), Class: delivery.ClassInternal, Error: msg}
}
