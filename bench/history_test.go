package bench_test

import (
	"reflect"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/userhooks/userhooks/bench"
	"github.com/userhooks/userhooks/workflows"
)

func history(types ...enumspb.EventType) []*historypb.HistoryEvent {
	h := make([]*historypb.HistoryEvent, len(types))
	for i, t := range types {
		h[i] = &historypb.HistoryEvent{EventId: int64(i + 1), EventType: t}
	}
	return h
}

var wft = []enumspb.EventType{
	enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
	enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED,
	enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
}

// deliveryHistory is the shape of a DeliveryWorkflow, before the
// local-deliver change, that delivered on its first attempt: 12 events, 2
// workflow tasks, 1 activity, and UserhooksAttempts set to 1.
func deliveryHistory(t *testing.T) []*historypb.HistoryEvent {
	var types []enumspb.EventType
	types = append(types, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
	types = append(types, wft...)
	types = append(types, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
	types = append(types, wft...)
	types = append(types, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
	h := history(types...)
	setAttempts(t, h[len(h)-2], 1)
	return h
}

// setAttempts makes ev an upsert of UserhooksAttempts to n, as a delivery
// workflow records it.
func setAttempts(t *testing.T, ev *historypb.HistoryEvent, n int) {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(n)
	if err != nil {
		t.Fatal(err)
	}
	ev.EventType = enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
	ev.Attributes = &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{
		UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
			SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
				workflows.AttrAttempts.GetName(): p,
			}},
		},
	}
}

// parentHistory is a parent of n children woken once for all of them.
func parentHistory(n int) []*historypb.HistoryEvent {
	var t []enumspb.EventType
	t = append(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
	t = append(t, wft...)
	for range n {
		t = append(t, enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)
	}
	t = append(t, wft...)
	t = append(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
	return history(t...)
}

func TestCountHistory(t *testing.T) {
	c := bench.CountHistory(deliveryHistory(t))
	if c.Events != 12 || c.WorkflowTasks != 2 || c.Activities != 1 || c.LocalActivities != 0 || c.Children != 0 {
		t.Errorf("CountHistory(delivery) = %+v, want 12 events, 2 tasks, 1 activity", c)
	}
	if got := c.ByType["WorkflowTaskCompleted"]; got != 2 {
		t.Errorf("ByType[WorkflowTaskCompleted] = %d, want 2 (types: %v)", got, c.ByType)
	}
	if got := c.ByType["UpsertWorkflowSearchAttributes"]; got != 1 {
		t.Errorf("ByType[UpsertWorkflowSearchAttributes] = %d, want 1 (types: %v)", got, c.ByType)
	}
	p := bench.CountHistory(parentHistory(3))
	if p.Events != 1+3+9+3+1 || p.Children != 3 || p.WorkflowTasks != 2 {
		t.Errorf("CountHistory(parent of 3) = %+v, want 17 events, 3 children, 2 tasks", p)
	}
	// A local activity's marker counts; a version marker does not.
	lh := history(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_MARKER_RECORDED, enumspb.EVENT_TYPE_MARKER_RECORDED)
	for i, name := range []string{"Version", "LocalActivity"} {
		lh[i+1].Attributes = &historypb.HistoryEvent_MarkerRecordedEventAttributes{
			MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{MarkerName: name}}
	}
	if local := bench.CountHistory(lh); local.LocalActivities != 1 {
		t.Errorf("CountHistory counted %d local activities, want 1", local.LocalActivities)
	}
}

func TestSummarizeTrees_SharesTheParentAmongItsDeliveries(t *testing.T) {
	tree := func(n int) bench.EventTree {
		tr := bench.EventTree{Parent: bench.CountHistory(parentHistory(n))}
		for range n {
			tr.Deliveries = append(tr.Deliveries, bench.CountHistory(deliveryHistory(t)))
		}
		return tr
	}
	// Two events of 2 deliveries each: the parent has 1+3+6+3+1 = 14
	// events (7 per subscription) and 2 workflow tasks.
	s := bench.SummarizeTrees([]bench.EventTree{tree(2), tree(2)})
	want := bench.HistoryStats{
		SampledEvents: 2, SampledDeliveries: 4,
		ParentEventsPerSubscription: 7, ParentEventsMean: 14, ParentTasksMean: 2,
		FirstAttemptDeliveries: 4, DeliveryEventsMean: 12, DeliveryEventsMax: 12, DeliveryTasksMean: 2,
		EventsPerDelivery: 19, TasksPerDelivery: 3,
		EventsPerEvent: 38, TasksPerEvent: 6,
	}
	if s.ParentExample["StartChildWorkflowExecutionInitiated"] != 2 || s.DeliveryExample["ActivityTaskScheduled"] != 1 {
		t.Errorf("examples = %v and %v, want the first parent's and delivery's counts", s.ParentExample, s.DeliveryExample)
	}
	s.ParentExample, s.DeliveryExample = nil, nil
	if !reflect.DeepEqual(s, want) {
		t.Errorf("SummarizeTrees =\n%+v\nwant\n%+v", s, want)
	}
}

func TestSummarizeTrees_RetriedDeliveryIsNotFirstAttempt(t *testing.T) {
	h := deliveryHistory(t)
	setAttempts(t, h[len(h)-2], 2)
	retried := bench.CountHistory(h)
	s := bench.SummarizeTrees([]bench.EventTree{{Parent: bench.CountHistory(parentHistory(1)), Deliveries: []bench.HistoryCount{retried}}})
	if s.FirstAttemptDeliveries != 0 {
		t.Errorf("FirstAttemptDeliveries = %d, want 0", s.FirstAttemptDeliveries)
	}
	if empty := bench.SummarizeTrees(nil); empty.SampledEvents != 0 || empty.EventsPerDelivery != 0 {
		t.Errorf("SummarizeTrees(nil) = %+v, want zero", empty)
	}
}

func TestSummarizeWorkflows(t *testing.T) {
	a := bench.CountHistory(history(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED))
	b := bench.CountHistory(history(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED))
	s := bench.SummarizeWorkflows([]bench.HistoryCount{a, b})
	if s.Sampled != 2 || s.EventsMean != 1.5 || s.TasksMean != 0.5 {
		t.Errorf("SummarizeWorkflows = %+v, want 2 sampled, 1.5 events, 0.5 tasks", s)
	}
}
