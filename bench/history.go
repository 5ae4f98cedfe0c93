package bench

import (
	"context"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/userhooks/userhooks/workflows"
)

// HistoryCount describes one workflow history.
type HistoryCount struct {
	// Events is the number of history events.
	Events int `json:"events"`
	// WorkflowTasks is the number of workflow tasks started: each is one
	// round trip from the server to a worker and back.
	WorkflowTasks int `json:"workflow_tasks"`
	// Activities counts activities scheduled; LocalActivities counts
	// local activity markers.
	Activities      int `json:"activities"`
	LocalActivities int `json:"local_activities"`
	// Children counts child workflows initiated.
	Children int `json:"children"`
	// Attempts is the last UserhooksAttempts search attribute a delivery
	// workflow set (0 for other workflows): the attempts it made, whether
	// they ran as activities or local activities.
	Attempts int `json:"attempts,omitempty"`
	// ByType counts events by type (e.g. "WorkflowTaskCompleted").
	ByType map[string]int `json:"by_type"`
}

// localActivityMarker is the marker name of a local activity's outcome;
// version markers (workflow.GetVersion) have another.
const localActivityMarker = "LocalActivity"

// CountHistory counts the events of a history.
func CountHistory(events []*historypb.HistoryEvent) HistoryCount {
	c := HistoryCount{Events: len(events), ByType: map[string]int{}}
	for _, e := range events {
		t := e.GetEventType()
		c.ByType[eventTypeName(t)]++
		switch t {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			c.WorkflowTasks++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			c.Activities++
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if e.GetMarkerRecordedEventAttributes().GetMarkerName() == localActivityMarker {
				c.LocalActivities++
			}
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			c.Children++
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			attrs := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			if p, ok := attrs[workflows.AttrAttempts.GetName()]; ok {
				// Search attributes are never encrypted: the default
				// converter reads them.
				var n int
				if err := converter.GetDefaultDataConverter().FromPayload(p, &n); err == nil {
					c.Attempts = n
				}
			}
		}
	}
	return c
}

// eventTypeName turns EVENT_TYPE_WORKFLOW_TASK_STARTED into
// WorkflowTaskStarted, whichever spelling the API's String gives.
func eventTypeName(t enumspb.EventType) string {
	s := t.String()
	if !strings.HasPrefix(s, "EVENT_TYPE_") {
		return s
	}
	var b strings.Builder
	for _, w := range strings.Split(strings.TrimPrefix(s, "EVENT_TYPE_"), "_") {
		if w == "" {
			continue
		}
		b.WriteString(w[:1])
		b.WriteString(strings.ToLower(w[1:]))
	}
	return b.String()
}

// FetchHistory reads the whole history of a workflow run ("" runID: the
// latest run).
func FetchHistory(ctx context.Context, c client.Client, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("read history of %s: %w", workflowID, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// HistoryStats sums up the histories of a sample of events: each event's
// UserEventWorkflow (the parent) and its DeliveryWorkflow children.
type HistoryStats struct {
	// SampledEvents is the number of events whose histories were read;
	// SampledDeliveries the number of their delivery workflows.
	SampledEvents     int `json:"sampled_events"`
	SampledDeliveries int `json:"sampled_deliveries"`

	// ParentEventsPerSubscription is the parent's history events divided
	// by its subscriptions, averaged over the sample.
	ParentEventsPerSubscription float64 `json:"parent_events_per_subscription"`
	ParentEventsMean            float64 `json:"parent_events_mean"`
	ParentTasksMean             float64 `json:"parent_workflow_tasks_mean"`

	// Delivery workflows that delivered on their first attempt.
	FirstAttemptDeliveries int     `json:"first_attempt_deliveries"`
	DeliveryEventsMean     float64 `json:"delivery_events_mean"`
	DeliveryEventsMax      int     `json:"delivery_events_max"`
	DeliveryTasksMean      float64 `json:"delivery_workflow_tasks_mean"`

	// Per delivery, parent and children together: the parent's share
	// divided among its deliveries.
	EventsPerDelivery float64 `json:"events_per_delivery"`
	TasksPerDelivery  float64 `json:"workflow_tasks_per_delivery"`
	// Per published event (the parent and all its deliveries).
	EventsPerEvent float64 `json:"events_per_event"`
	TasksPerEvent  float64 `json:"workflow_tasks_per_event"`

	// ParentExample and DeliveryExample are the first sampled histories,
	// by event type, to show where the events go.
	ParentExample   map[string]int `json:"parent_example"`
	DeliveryExample map[string]int `json:"delivery_example"`
}

// EventTree is one sampled event: its parent's history and its deliveries'.
type EventTree struct {
	Parent     HistoryCount
	Deliveries []HistoryCount
}

// SummarizeTrees computes HistoryStats from sampled event trees. A
// delivery counts as first-attempt when it recorded one attempt
// (HistoryCount.Attempts).
func SummarizeTrees(trees []EventTree) HistoryStats {
	var s HistoryStats
	var parentEvents, parentTasks, perSub, delEvents, delTasks float64
	var totalEvents, totalTasks int
	for _, t := range trees {
		s.SampledEvents++
		parentEvents += float64(t.Parent.Events)
		parentTasks += float64(t.Parent.WorkflowTasks)
		if n := len(t.Deliveries); n > 0 {
			perSub += float64(t.Parent.Events) / float64(n)
		}
		totalEvents += t.Parent.Events
		totalTasks += t.Parent.WorkflowTasks
		if s.ParentExample == nil {
			s.ParentExample = t.Parent.ByType
		}
		for _, d := range t.Deliveries {
			s.SampledDeliveries++
			delEvents += float64(d.Events)
			delTasks += float64(d.WorkflowTasks)
			s.DeliveryEventsMax = max(s.DeliveryEventsMax, d.Events)
			if d.Attempts == 1 {
				s.FirstAttemptDeliveries++
			}
			totalEvents += d.Events
			totalTasks += d.WorkflowTasks
			if s.DeliveryExample == nil {
				s.DeliveryExample = d.ByType
			}
		}
	}
	if s.SampledEvents > 0 {
		n := float64(s.SampledEvents)
		s.ParentEventsMean = round2(parentEvents / n)
		s.ParentTasksMean = round2(parentTasks / n)
		s.ParentEventsPerSubscription = round2(perSub / n)
		s.EventsPerEvent = round2(float64(totalEvents) / n)
		s.TasksPerEvent = round2(float64(totalTasks) / n)
	}
	if s.SampledDeliveries > 0 {
		n := float64(s.SampledDeliveries)
		s.DeliveryEventsMean = round2(delEvents / n)
		s.DeliveryTasksMean = round2(delTasks / n)
		s.EventsPerDelivery = round2(float64(totalEvents) / n)
		s.TasksPerDelivery = round2(float64(totalTasks) / n)
	}
	return s
}

// WorkflowSample sums up the histories of a sample of single workflows
// (the ceiling's).
type WorkflowSample struct {
	Sampled    int            `json:"sampled"`
	EventsMean float64        `json:"events_mean"`
	TasksMean  float64        `json:"workflow_tasks_mean"`
	Example    map[string]int `json:"example"`
}

// SummarizeWorkflows computes a WorkflowSample.
func SummarizeWorkflows(counts []HistoryCount) WorkflowSample {
	var s WorkflowSample
	var events, tasks int
	for _, c := range counts {
		s.Sampled++
		events += c.Events
		tasks += c.WorkflowTasks
		if s.Example == nil {
			s.Example = c.ByType
		}
	}
	if s.Sampled > 0 {
		s.EventsMean = round2(float64(events) / float64(s.Sampled))
		s.TasksMean = round2(float64(tasks) / float64(s.Sampled))
	}
	return s
}

func round2(v float64) float64 {
	if v < 0 {
		return -round2(-v)
	}
	return float64(int64(v*100+0.5)) / 100
}
