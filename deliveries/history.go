package deliveries

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
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
// activity's result under; localActivityMarkerData is the part of the
// marker's "data" detail that names the activity.
const localActivityMarker = "LocalActivity"

type localActivityMarkerData struct {
	ActivityType string
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

// attemptLog reads the attempts of a delivery run from its history: the
// result of every completed Deliver activity and the details of every
// failed one, in order, decoded with dc. It also says when the pending
// retry timer fires, and whether the run is waiting for a permit.
//
// Deliver activities that failed without an attempt record (their retries
// for faults on our side ran out, or they timed out) are listed as
// InternalError attempts, as the workflow counts them. An activity still
// running is not an attempt yet; a cancelled one never is.
//
// A delivery with a concurrency limit asks its gate for a permit before
// each attempt (a RequestPermit local activity: a marker in history) and
// waits for the grant on a timer (workflows.permits.await), after which
// it asks again. That timer is not a retry: from a permit request until the
// next Deliver is scheduled the run is waiting for a permit, and timers
// started then are not the next attempt.
func attemptLog(dc converter.DataConverter, events []*historypb.HistoryEvent) (runLog, error) {
	var (
		log       []delivery.Attempt
		number    = map[int64]int{} // scheduled event ID of a Deliver → attempt number
		timers    = map[string]time.Time{}
		scheduled int
		// waitingSince is set from the first permit request of an attempt
		// until the attempt's Deliver is scheduled.
		waitingSince time.Time
	)
	internal := func(ev *historypb.HistoryEvent, n int, msg string) delivery.Attempt {
		return delivery.Attempt{Number: n, StartedAt: ev.GetEventTime().AsTime(), Class: delivery.ClassInternal, Error: msg}
	}
	for _, ev := range events {
		switch {
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == deliverActivityType {
				scheduled++
				number[ev.GetEventId()] = scheduled
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
			if data.ActivityType == requestPermitActivityType && waitingSince.IsZero() {
				waitingSince = ev.GetEventTime().AsTime()
			}
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			a := ev.GetActivityTaskCompletedEventAttributes()
			n, ok := number[a.GetScheduledEventId()]
			if !ok {
				continue
			}
			var rec delivery.Attempt
			if err := dc.FromPayloads(a.GetResult(), &rec); err != nil {
				return runLog{}, fmt.Errorf("decode result of attempt %d: %w", n, err)
			}
			if rec.Number == 0 {
				rec.Number = n
			}
			log = append(log, rec)
		case ev.GetActivityTaskFailedEventAttributes() != nil:
			a := ev.GetActivityTaskFailedEventAttributes()
			n, ok := number[a.GetScheduledEventId()]
			if !ok {
				continue
			}
			app := a.GetFailure().GetApplicationFailureInfo()
			if app == nil || len(app.GetDetails().GetPayloads()) == 0 {
				log = append(log, internal(ev, n, a.GetFailure().GetMessage()))
				continue
			}
			var rec delivery.Attempt
			if err := dc.FromPayloads(app.GetDetails(), &rec); err != nil {
				return runLog{}, fmt.Errorf("decode failure details of attempt %d: %w", n, err)
			}
			if rec.Number == 0 {
				rec.Number = n
			}
			log = append(log, rec)
		case ev.GetActivityTaskTimedOutEventAttributes() != nil:
			a := ev.GetActivityTaskTimedOutEventAttributes()
			if n, ok := number[a.GetScheduledEventId()]; ok {
				log = append(log, internal(ev, n, "attempt timed out: "+a.GetFailure().GetMessage()))
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
