package deliveries_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/userhooks/userhooks/deliveries"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/workflows"
)

// fakeTemporal is the part of a Temporal server and client the service
// uses, in memory. Runs of a workflow ID are kept in start order; starts
// follow the server's rules (request-ID deduplication first, then the
// conflict and reuse policies). Any client method it does not implement
// panics through the nil embedded interface, which fails the test.
type fakeTemporal struct {
	client.Client
	dc converter.DataConverter

	mu       sync.Mutex
	runs     map[string][]*fakeRun
	calls    []string
	lists    []*workflowservice.ListWorkflowExecutionsRequest
	listResp func(*workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	starts   []*workflowservice.StartWorkflowExecutionRequest
	canceled []string
	// describes counts DescribeWorkflowExecution calls; starts wait until
	// it reaches startGate, so that concurrent callers all look before any
	// of them starts. closeAtOnce makes started runs complete immediately,
	// as a fast delivery would.
	describes   int
	startGate   int
	closeAtOnce bool
	changed     *sync.Cond
	signals     []string
	nextRun     int
}

type fakeRun struct {
	info      *workflowpb.WorkflowExecutionInfo
	summary   *commonpb.Payload
	history   []*historypb.HistoryEvent
	requestID string
}

func newFake(t *testing.T, dc converter.DataConverter) *fakeTemporal {
	t.Helper()
	f := &fakeTemporal{dc: dc, runs: map[string][]*fakeRun{}}
	f.changed = sync.NewCond(&f.mu)
	return f
}

func (f *fakeTemporal) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeTemporal) find(id, runID string) (*fakeRun, bool) {
	runs := f.runs[id]
	if len(runs) == 0 {
		return nil, false
	}
	if runID == "" {
		return runs[len(runs)-1], true
	}
	for _, r := range runs {
		if r.info.GetExecution().GetRunId() == runID {
			return r, true
		}
	}
	return nil, false
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.record("describe " + id)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	f.changed.Broadcast()
	r, ok := f.find(id, runID)
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: r.info,
		ExecutionConfig:       &workflowpb.WorkflowExecutionConfig{UserMetadata: &sdkpb.UserMetadata{Summary: r.summary}},
	}, nil
}

type sliceIterator struct {
	events []*historypb.HistoryEvent
	err    error
}

func (it *sliceIterator) HasNext() bool { return it.err != nil || len(it.events) > 0 }

func (it *sliceIterator) Next() (*historypb.HistoryEvent, error) {
	if it.err != nil {
		err := it.err
		it.err = nil
		return nil, err
	}
	ev := it.events[0]
	it.events = it.events[1:]
	return ev, nil
}

func (f *fakeTemporal) GetWorkflowHistory(_ context.Context, id, runID string, _ bool, _ enumspb.HistoryEventFilterType) client.HistoryEventIterator {
	f.record("history " + id)
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.find(id, runID)
	if !ok {
		return &sliceIterator{err: serviceerror.NewNotFound("workflow not found")}
	}
	return &sliceIterator{events: append([]*historypb.HistoryEvent(nil), r.history...)}
}

func (f *fakeTemporal) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.record("list")
	f.mu.Lock()
	f.lists = append(f.lists, req)
	respond := f.listResp
	f.mu.Unlock()
	if respond == nil {
		return &workflowservice.ListWorkflowExecutionsResponse{}, nil
	}
	return respond(req)
}

func (f *fakeTemporal) CancelWorkflowWithOptions(_ context.Context, o client.CancelWorkflowOptions) error {
	f.record("cancel " + o.WorkflowID)
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.find(o.WorkflowID, o.RunID)
	if !ok || r.info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	f.canceled = append(f.canceled, o.RunID)
	return nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, runID, name string, _ any) error {
	f.record("signal " + id)
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.find(id, runID)
	if !ok || r.info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	f.signals = append(f.signals, name+" "+runID)
	return nil
}

func (f *fakeTemporal) WorkflowService() workflowservice.WorkflowServiceClient {
	return fakeService{f: f}
}

type fakeService struct {
	workflowservice.WorkflowServiceClient
	f *fakeTemporal
}

func (s fakeService) StartWorkflowExecution(_ context.Context, req *workflowservice.StartWorkflowExecutionRequest, _ ...grpc.CallOption) (*workflowservice.StartWorkflowExecutionResponse, error) {
	f := s.f
	f.record("start " + req.GetWorkflowId())
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.describes < f.startGate {
		f.changed.Wait()
	}
	f.starts = append(f.starts, req)
	if cur, ok := f.find(req.GetWorkflowId(), ""); ok {
		if cur.requestID == req.GetRequestId() {
			return &workflowservice.StartWorkflowExecutionResponse{RunId: cur.info.GetExecution().GetRunId()}, nil
		}
		if cur.info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING &&
			req.GetWorkflowIdConflictPolicy() == enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL {
			return nil, serviceerror.NewWorkflowExecutionAlreadyStarted("already started", cur.requestID, cur.info.GetExecution().GetRunId())
		}
		if req.GetWorkflowIdReusePolicy() != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE {
			return nil, serviceerror.NewWorkflowExecutionAlreadyStarted("reuse refused", cur.requestID, cur.info.GetExecution().GetRunId())
		}
	}
	f.nextRun++
	runID := fmt.Sprintf("00000000-0000-4000-8000-%012d", f.nextRun)
	r := &fakeRun{
		info: &workflowpb.WorkflowExecutionInfo{
			Execution:        &commonpb.WorkflowExecution{WorkflowId: req.GetWorkflowId(), RunId: runID},
			Type:             req.GetWorkflowType(),
			StartTime:        timestamppb.Now(),
			Status:           enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
			SearchAttributes: req.GetSearchAttributes(),
			Memo:             req.GetMemo(),
		},
		summary:   req.GetUserMetadata().GetSummary(),
		requestID: req.GetRequestId(),
		history: []*historypb.HistoryEvent{{
			EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
				WorkflowType: req.GetWorkflowType(), Input: req.GetInput(),
			}},
		}},
	}
	if f.closeAtOnce {
		r.info.Status = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		r.info.CloseTime = timestamppb.Now()
	}
	f.runs[req.GetWorkflowId()] = append(f.runs[req.GetWorkflowId()], r)
	return &workflowservice.StartWorkflowExecutionResponse{RunId: runID, Started: true}, nil
}

// seed is a delivery run to put in the fake.
type seed struct {
	account, eventID, subID, runID string
	status                         enumspb.WorkflowExecutionStatus
	attr                           delivery.Status
	attempts                       int64
	workflowType                   string
	events                         func(h *hist)
}

func (f *fakeTemporal) add(t *testing.T, s seed) *fakeRun {
	t.Helper()
	if s.workflowType == "" {
		s.workflowType = "DeliveryWorkflow"
	}
	if s.attr == "" {
		s.attr = delivery.StatusPending
	}
	ev := event.Event{ID: s.eventID, Type: event.TypeUserCreated, AccountID: s.account,
		Timestamp: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
		Data:      event.Data{User: event.User{ID: "u_42", Email: "ada@example.com"}}}
	in := workflows.DeliveryInput{Event: ev, SubscriptionID: s.subID}
	h := &hist{t: t, dc: f.dc, at: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			WorkflowType: &commonpb.WorkflowType{Name: s.workflowType}, Input: h.payloads(in),
		}},
	})
	if s.events != nil {
		s.events(h)
	}
	summary, err := f.dc.ToPayload("user.created u_42 → https://crm.example.com")
	if err != nil {
		t.Fatal(err)
	}
	id := workflows.DeliveryWorkflowID(s.eventID, s.subID)
	info := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: s.runID},
		Type:      &commonpb.WorkflowType{Name: s.workflowType},
		StartTime: timestamppb.New(h.start()),
		Status:    s.status,
		SearchAttributes: searchAttributes(t, map[string]any{
			"UserhooksAccountID": s.account, "UserhooksEventID": s.eventID, "UserhooksSubscriptionID": s.subID,
			"UserhooksEventType": "user.created", "UserhooksUserID": "u_42",
			"UserhooksDeliveryStatus": string(s.attr), "UserhooksAttempts": s.attempts,
		}),
	}
	if s.status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		info.CloseTime = timestamppb.New(h.at)
	}
	r := &fakeRun{info: info, summary: summary, history: h.events, requestID: "original-" + s.runID}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[id] = append(f.runs[id], r)
	return r
}

func searchAttributes(t *testing.T, values map[string]any) *commonpb.SearchAttributes {
	t.Helper()
	out := &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{}}
	for k, v := range values {
		p, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		out.IndexedFields[k] = p
	}
	return out
}

// hist writes history events with payloads encoded by dc.
type hist struct {
	t      *testing.T
	dc     converter.DataConverter
	events []*historypb.HistoryEvent
	at     time.Time
}

func (h *hist) start() time.Time { return h.events[0].GetEventTime().AsTime() }

func (h *hist) add(ev *historypb.HistoryEvent) int64 {
	ev.EventId = int64(len(h.events) + 1)
	h.at = h.at.Add(time.Second)
	ev.EventTime = timestamppb.New(h.at)
	h.events = append(h.events, ev)
	return ev.EventId
}

func (h *hist) payloads(v any) *commonpb.Payloads {
	p, err := h.dc.ToPayloads(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// attempt adds one Deliver activity that ended with a.
func (h *hist) attempt(a delivery.Attempt) {
	scheduled := h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
		Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
			ActivityType: &commonpb.ActivityType{Name: "Deliver"},
		}},
	})
	if a.Succeeded() {
		h.add(&historypb.HistoryEvent{
			EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
			Attributes: &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{
				ScheduledEventId: scheduled, Result: h.payloads(a),
			}},
		})
		return
	}
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
		Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{
			ScheduledEventId: scheduled,
			Failure: &failurepb.Failure{Message: a.Error, FailureInfo: &failurepb.Failure_ApplicationFailureInfo{ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{
				Type: string(a.Class), NonRetryable: true, Details: h.payloads(a),
			}}},
		}},
	})
}

func (h *hist) timer(d time.Duration) time.Time {
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_TIMER_STARTED,
		Attributes: &historypb.HistoryEvent_TimerStartedEventAttributes{TimerStartedEventAttributes: &historypb.TimerStartedEventAttributes{
			TimerId: "1", StartToFireTimeout: durationpb.New(d),
		}},
	})
	return h.at.Add(d)
}

func encrypting(t *testing.T) converter.DataConverter {
	t.Helper()
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := payloadcodec.NewKeyring("test", map[string][]byte{"test": key})
	if err != nil {
		t.Fatal(err)
	}
	return payloadcodec.NewDataConverter(k)
}

const (
	sub2    = "0192f5b8-3c1e-7a4b-9c2d-aaaaaaaaaaaa"
	runOpen = "11111111-1111-4111-8111-111111111111"
	runDone = "22222222-2222-4222-8222-222222222222"
)

var ctx = context.Background()

func TestService_AnotherAccountsDeliveryIsNotFoundAndUntouched(t *testing.T) {
	for _, status := range []enumspb.WorkflowExecutionStatus{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED} {
		t.Run(status.String(), func(t *testing.T) {
			f := newFake(t, converter.GetDefaultDataConverter())
			f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runDone, status: status})
			svc := deliveries.New(f, deliveries.Options{})
			k := deliveries.Key{EventID: "e1", SubscriptionID: sub1}
			for _, account := range []string{"globex", "acme2", "ACME", "acm"} {
				if _, err := svc.Get(ctx, account, k, ""); !errors.Is(err, deliveries.ErrNotFound) {
					t.Errorf("Get as %s: %v, want ErrNotFound", account, err)
				}
				if _, err := svc.Get(ctx, account, k, runDone); !errors.Is(err, deliveries.ErrNotFound) {
					t.Errorf("Get run as %s: %v, want ErrNotFound", account, err)
				}
				if _, err := svc.Redeliver(ctx, account, k); !errors.Is(err, deliveries.ErrNotFound) {
					t.Errorf("Redeliver as %s: %v, want ErrNotFound", account, err)
				}
				if err := svc.Cancel(ctx, account, k); !errors.Is(err, deliveries.ErrNotFound) {
					t.Errorf("Cancel as %s: %v, want ErrNotFound", account, err)
				}
				if err := svc.RetryNow(ctx, account, k); !errors.Is(err, deliveries.ErrNotFound) {
					t.Errorf("RetryNow as %s: %v, want ErrNotFound", account, err)
				}
			}
			for _, c := range f.calls {
				if !strings.HasPrefix(c, "describe ") {
					t.Errorf("call %q made for another account's delivery; only describe may be", c)
				}
			}
			// The error is the same as for a delivery that does not exist.
			_, unknownErr := svc.Get(ctx, "acme", deliveries.Key{EventID: "e2", SubscriptionID: sub1}, "")
			_, otherErr := svc.Get(ctx, "globex", k, "")
			if unknownErr == nil || otherErr == nil || unknownErr.Error() != otherErr.Error() {
				t.Errorf("unknown delivery: %v; another account's: %v; want the same error", unknownErr, otherErr)
			}
		})
	}
}

func TestService_OtherWorkflowWithTheAccountsAttributesIsNotFound(t *testing.T) {
	f := newFake(t, converter.GetDefaultDataConverter())
	f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runOpen, status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		workflowType: "UserEventWorkflow"})
	svc := deliveries.New(f, deliveries.Options{})
	if err := svc.Cancel(ctx, "acme", deliveries.Key{EventID: "e1", SubscriptionID: sub1}); !errors.Is(err, deliveries.ErrNotFound) {
		t.Errorf("Cancel of a non-delivery workflow: %v, want ErrNotFound", err)
	}
	if len(f.canceled) != 0 {
		t.Errorf("canceled %v", f.canceled)
	}
}

func TestService_MalformedKeysAreNotFoundWithoutAnyCall(t *testing.T) {
	f := newFake(t, converter.GetDefaultDataConverter())
	svc := deliveries.New(f, deliveries.Options{})
	for _, tc := range []struct {
		account string
		key     deliveries.Key
		run     string
	}{
		{"acme", deliveries.Key{EventID: "e1/../x", SubscriptionID: sub1}, ""},
		{"acme", deliveries.Key{EventID: "e1", SubscriptionID: "' OR '1'='1"}, ""},
		{"' OR '1'='1", deliveries.Key{EventID: "e1", SubscriptionID: sub1}, "-"},
		{"", deliveries.Key{EventID: "e1", SubscriptionID: sub1}, "-"},
		{"acme", deliveries.Key{EventID: "e1", SubscriptionID: sub1}, "not-a-run-id"},
	} {
		if tc.run != "-" {
			if _, err := svc.Get(ctx, tc.account, tc.key, tc.run); !errors.Is(err, deliveries.ErrNotFound) {
				t.Errorf("Get(%q, %+v, %q): %v, want ErrNotFound", tc.account, tc.key, tc.run, err)
			}
		}
		if tc.run == "" || tc.run == "-" {
			if _, err := svc.Redeliver(ctx, tc.account, tc.key); !errors.Is(err, deliveries.ErrNotFound) {
				t.Errorf("Redeliver(%q, %+v): %v, want ErrNotFound", tc.account, tc.key, err)
			}
			if err := svc.Cancel(ctx, tc.account, tc.key); !errors.Is(err, deliveries.ErrNotFound) {
				t.Errorf("Cancel(%q, %+v): %v, want ErrNotFound", tc.account, tc.key, err)
			}
			if err := svc.RetryNow(ctx, tc.account, tc.key); !errors.Is(err, deliveries.ErrNotFound) {
				t.Errorf("RetryNow(%q, %+v): %v, want ErrNotFound", tc.account, tc.key, err)
			}
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("malformed input reached Temporal: %v", f.calls)
	}
}

func TestGet_ReadsStatusAttemptsAndNextAttemptThroughTheDataConverter(t *testing.T) {
	dc := encrypting(t)
	f := newFake(t, dc)
	first := delivery.Attempt{Number: 1, StatusCode: 500, Class: delivery.ClassServerError, Error: "HTTP 500 Internal Server Error", ResponseExcerpt: "oops"}
	second := delivery.Attempt{Number: 2, StatusCode: 503, Class: delivery.ClassServerError, Error: "HTTP 503 Service Unavailable"}
	var next time.Time
	f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runOpen, status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		attr: delivery.StatusRetrying, attempts: 2, events: func(h *hist) {
			h.attempt(first)
			h.timer(5 * time.Second)
			h.add(&historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_TIMER_FIRED, Attributes: &historypb.HistoryEvent_TimerFiredEventAttributes{
				TimerFiredEventAttributes: &historypb.TimerFiredEventAttributes{TimerId: "1"}}})
			h.attempt(second)
			next = h.timer(time.Hour)
		}})
	svc := deliveries.New(f, deliveries.Options{DataConverter: dc})

	d, err := svc.Get(ctx, "acme", deliveries.Key{EventID: "e1", SubscriptionID: sub1}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := deliveries.Delivery{EventID: "e1", SubscriptionID: sub1, AccountID: "acme", EventType: "user.created", UserID: "u_42",
		Status: delivery.StatusRetrying, Attempts: 2, WorkflowID: "delivery/e1/" + sub1, RunID: runOpen,
		StartedAt: d.StartedAt, Endpoint: "https://crm.example.com"}
	if d.Delivery != want || d.StartedAt.IsZero() {
		t.Errorf("Get = %+v\nwant  %+v", d.Delivery, want)
	}
	if len(d.AttemptLog) != 2 || d.AttemptLog[0] != first || d.AttemptLog[1] != second {
		t.Errorf("attempt log = %+v, want %+v then %+v", d.AttemptLog, first, second)
	}
	if !d.NextAttemptAt.Equal(next) {
		t.Errorf("NextAttemptAt = %s, want %s", d.NextAttemptAt, next)
	}

	// The default converter cannot read what the codec wrote: an error, not
	// an empty log.
	plain := deliveries.New(f, deliveries.Options{})
	if d, err := plain.Get(ctx, "acme", deliveries.Key{EventID: "e1", SubscriptionID: sub1}, ""); err == nil {
		t.Errorf("Get without the codec = %+v, want an error", d)
	}
}

func TestCancelAndRetryNow_ActOnTheOpenRunOnly(t *testing.T) {
	f := newFake(t, converter.GetDefaultDataConverter())
	f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runDone, status: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, attr: delivery.StatusFailed})
	f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runOpen, status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, attr: delivery.StatusRetrying})
	f.add(t, seed{account: "acme", eventID: "e2", subID: sub1, runID: runDone, status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, attr: delivery.StatusDelivered})
	svc := deliveries.New(f, deliveries.Options{})

	open, closed := deliveries.Key{EventID: "e1", SubscriptionID: sub1}, deliveries.Key{EventID: "e2", SubscriptionID: sub1}
	if err := svc.RetryNow(ctx, "acme", open); err != nil {
		t.Fatal(err)
	}
	if err := svc.Cancel(ctx, "acme", open); err != nil {
		t.Fatal(err)
	}
	if want := []string{workflows.SignalRetryNow + " " + runOpen}; fmt.Sprint(f.signals) != fmt.Sprint(want) {
		t.Errorf("signals = %v, want %v", f.signals, want)
	}
	if want := []string{runOpen}; fmt.Sprint(f.canceled) != fmt.Sprint(want) {
		t.Errorf("canceled runs = %v, want %v", f.canceled, want)
	}
	if err := svc.RetryNow(ctx, "acme", closed); !errors.Is(err, deliveries.ErrNotRunning) {
		t.Errorf("RetryNow of a closed delivery: %v, want ErrNotRunning", err)
	}
	if err := svc.Cancel(ctx, "acme", closed); !errors.Is(err, deliveries.ErrNotRunning) {
		t.Errorf("Cancel of a closed delivery: %v, want ErrNotRunning", err)
	}
	if len(f.signals) != 1 || len(f.canceled) != 1 {
		t.Errorf("a closed delivery was signalled or cancelled: %v %v", f.signals, f.canceled)
	}
}

func TestRedeliver_StartsOneNewRunWithTheOriginalInput(t *testing.T) {
	dc := encrypting(t)
	f := newFake(t, dc)
	orig := f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runDone, status: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, attr: delivery.StatusFailed, attempts: 3})
	svc := deliveries.New(f, deliveries.Options{DataConverter: dc, TaskQueue: "tq", Namespace: "ns"})
	k := deliveries.Key{EventID: "e1", SubscriptionID: sub1}

	// Two callers at once redeliver the same failed run.
	var wg sync.WaitGroup
	results := make([]deliveries.Delivery, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = svc.Redeliver(ctx, "acme", k)
		}()
	}
	wg.Wait()
	var d deliveries.Delivery
	for i := range results {
		switch {
		case errs[i] == nil && (d.RunID == "" || results[i].RunID == d.RunID):
			d = results[i]
		case errors.Is(errs[i], deliveries.ErrStillRunning):
		default:
			t.Errorf("Redeliver %d = %+v, %v; want the one new run or ErrStillRunning", i, results[i], errs[i])
		}
	}
	if n := len(f.runs["delivery/e1/"+sub1]); n != 2 {
		t.Fatalf("%d runs after concurrent redeliveries, want 2 (the original and one new run)", n)
	}
	if d.RunID == runDone || d.RedeliveryOf != runDone || d.Status != delivery.StatusPending || d.Attempts != 0 ||
		d.AccountID != "acme" || d.Endpoint != "https://crm.example.com" {
		t.Errorf("Redeliver = %+v, want a pending new run that redelivers %s", d, runDone)
	}

	req := f.starts[0]
	if req.GetNamespace() != "ns" || req.GetTaskQueue().GetName() != "tq" || req.GetWorkflowType().GetName() != "DeliveryWorkflow" ||
		req.GetWorkflowId() != "delivery/e1/"+sub1 {
		t.Errorf("start request = %v", req)
	}
	if req.GetWorkflowIdReusePolicy() != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE ||
		req.GetWorkflowIdConflictPolicy() != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL {
		t.Errorf("policies = %s / %s, want ALLOW_DUPLICATE / FAIL", req.GetWorkflowIdReusePolicy(), req.GetWorkflowIdConflictPolicy())
	}
	var in, was workflows.DeliveryInput
	if err := dc.FromPayloads(req.GetInput(), &in); err != nil {
		t.Fatalf("decode new input with the client's converter: %v", err)
	}
	if err := dc.FromPayloads(orig.history[0].GetWorkflowExecutionStartedEventAttributes().GetInput(), &was); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in) != fmt.Sprint(was) {
		t.Errorf("new input = %+v, want the original %+v", in, was)
	}
	var summary, memo string
	if err := dc.FromPayload(req.GetUserMetadata().GetSummary(), &summary); err != nil || !strings.Contains(summary, "redelivery of run "+runDone) {
		t.Errorf("summary = %q (%v), want it to say it redelivers run %s", summary, err, runDone)
	}
	if err := dc.FromPayload(req.GetMemo().GetFields()[deliveries.MemoRedeliveryOf], &memo); err != nil || memo != runDone {
		t.Errorf("memo %s = %q (%v), want %s", deliveries.MemoRedeliveryOf, memo, err, runDone)
	}
	if l := req.GetLinks(); len(l) != 1 || l[0].GetWorkflowEvent().GetRunId() != runDone {
		t.Errorf("links = %v, want one to run %s", l, runDone)
	}
	attrs := req.GetSearchAttributes().GetIndexedFields()
	for name, want := range map[string]string{
		"UserhooksAccountID": `"acme"`, "UserhooksEventID": `"e1"`, "UserhooksSubscriptionID": `"` + sub1 + `"`,
		"UserhooksEventType": `"user.created"`, "UserhooksUserID": `"u_42"`, "UserhooksDeliveryStatus": `"pending"`, "UserhooksAttempts": "0",
	} {
		if got := string(attrs[name].GetData()); got != want {
			t.Errorf("search attribute %s = %s, want %s (in clear: search attributes never go through the codec)", name, got, want)
		}
	}

	// The new run is open: redelivering again must wait for it.
	if _, err := svc.Redeliver(ctx, "acme", k); !errors.Is(err, deliveries.ErrStillRunning) {
		t.Errorf("Redeliver while the redelivery runs: %v, want ErrStillRunning", err)
	}
}

func TestList_SendsTheFilterQueryAndPassesPageTokensThrough(t *testing.T) {
	f := newFake(t, converter.GetDefaultDataConverter())
	mine := f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runDone, status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, attr: delivery.StatusDelivered, attempts: 1})
	theirs := f.add(t, seed{account: "globex", eventID: "e1", subID: sub2, runID: runDone, status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, attr: delivery.StatusDelivered})
	f.listResp = func(req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		switch string(req.GetNextPageToken()) {
		case "":
			// A row of another account can only come from a broken query;
			// List drops it all the same.
			return &workflowservice.ListWorkflowExecutionsResponse{Executions: []*workflowpb.WorkflowExecutionInfo{mine.info, theirs.info}, NextPageToken: []byte("page-2")}, nil
		case "page-2":
			return &workflowservice.ListWorkflowExecutionsResponse{}, nil
		default:
			return nil, serviceerror.NewInvalidArgument("invalid page token")
		}
	}
	svc := deliveries.New(f, deliveries.Options{Namespace: "ns"})
	filter := deliveries.Filter{AccountID: "acme", Status: delivery.StatusDelivered}

	page, err := svc.List(ctx, filter, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	wantQuery, _ := filter.Query()
	if req := f.lists[0]; req.GetQuery() != wantQuery || req.GetPageSize() != deliveries.DefaultPageSize || req.GetNamespace() != "ns" {
		t.Errorf("list request = %v, want query %q, page size %d, namespace ns", req, wantQuery, deliveries.DefaultPageSize)
	}
	if len(page.Deliveries) != 1 || page.Deliveries[0].AccountID != "acme" || page.Deliveries[0].Status != delivery.StatusDelivered || page.Deliveries[0].Attempts != 1 {
		t.Errorf("page = %+v, want acme's one delivered delivery", page.Deliveries)
	}
	if page.NextPageToken == "" {
		t.Fatal("no next page token")
	}
	page, err = svc.List(ctx, filter, 5000, page.NextPageToken)
	if err != nil || len(page.Deliveries) != 0 || page.NextPageToken != "" {
		t.Errorf("page 2 = %+v, %v; want empty and last", page, err)
	}
	if got := f.lists[1].GetPageSize(); got != deliveries.MaxPageSize {
		t.Errorf("page size 5000 sent as %d, want %d", got, deliveries.MaxPageSize)
	}
	calls := len(f.lists)
	other, err := svc.List(ctx, deliveries.Filter{AccountID: "acme"}, 0, "")
	if err != nil || other.NextPageToken == "" {
		t.Fatalf("List = %+v, %v", other, err)
	}
	for _, token := range []string{"not base64!", "'", "c3RhbGU", other.NextPageToken} {
		if _, err := svc.List(ctx, filter, 10, token); !errors.Is(err, deliveries.ErrInvalidFilter) {
			t.Errorf("List with token %q: %v, want ErrInvalidFilter", token, err)
		}
	}
	if _, err := svc.List(ctx, deliveries.Filter{AccountID: "' OR '1'='1"}, 10, ""); !errors.Is(err, deliveries.ErrInvalidFilter) {
		t.Errorf("List with a hostile account: %v, want ErrInvalidFilter", err)
	}
	if len(f.lists) != calls+1 {
		t.Errorf("%d malformed list requests reached Temporal", len(f.lists)-calls-1)
	}

	// A token Temporal itself refuses (say, expired) is an invalid filter
	// too, not a server error.
	f.listResp = func(req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		if len(req.GetNextPageToken()) == 0 {
			return &workflowservice.ListWorkflowExecutionsResponse{NextPageToken: []byte("expires at once")}, nil
		}
		return nil, serviceerror.NewInvalidArgument("invalid page token")
	}
	page, err = svc.List(ctx, filter, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.List(ctx, filter, 10, page.NextPageToken); !errors.Is(err, deliveries.ErrInvalidFilter) {
		t.Errorf("List with a token Temporal refuses: %v, want ErrInvalidFilter", err)
	}
}

func TestRecover_RedeliversLatestFailedRunsOncePerDelivery(t *testing.T) {
	f := newFake(t, converter.GetDefaultDataConverter())
	failed := enumspb.WORKFLOW_EXECUTION_STATUS_FAILED
	// e1: failed. e2: failed, then redelivered and running. e3: failed,
	// then redelivered and delivered. e4 (another account, in the list by
	// a broken query): must be ignored.
	e1 := f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runDone, status: failed, attr: delivery.StatusFailed})
	e2old := f.add(t, seed{account: "acme", eventID: "e2", subID: sub1, runID: runDone, status: failed, attr: delivery.StatusFailed})
	e2new := f.add(t, seed{account: "acme", eventID: "e2", subID: sub1, runID: runOpen, status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, attr: delivery.StatusRetrying})
	e3old := f.add(t, seed{account: "acme", eventID: "e3", subID: sub1, runID: runDone, status: failed, attr: delivery.StatusFailed})
	f.add(t, seed{account: "acme", eventID: "e3", subID: sub1, runID: runOpen, status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, attr: delivery.StatusDelivered})
	e4 := f.add(t, seed{account: "globex", eventID: "e4", subID: sub1, runID: runDone, status: failed, attr: delivery.StatusFailed})
	f.listResp = func(req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		if len(req.GetNextPageToken()) == 0 {
			return &workflowservice.ListWorkflowExecutionsResponse{
				Executions:    []*workflowpb.WorkflowExecutionInfo{e2new.info, e1.info, e2old.info},
				NextPageToken: []byte("2"),
			}, nil
		}
		return &workflowservice.ListWorkflowExecutionsResponse{Executions: []*workflowpb.WorkflowExecutionInfo{e3old.info, e4.info, e1.info}}, nil
	}
	svc := deliveries.New(f, deliveries.Options{})
	since := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

	res, err := svc.Recover(ctx, "acme", sub1, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Redelivered) != 1 || res.Redelivered[0].EventID != "e1" || res.Redelivered[0].RedeliveryOf != runDone {
		t.Errorf("redelivered %+v, want e1 only", res.Redelivered)
	}
	if res.AlreadyRunning != 1 {
		t.Errorf("AlreadyRunning = %d, want 1 (e2)", res.AlreadyRunning)
	}
	if len(f.starts) != 1 {
		t.Errorf("%d runs started, want 1", len(f.starts))
	}
	q := f.lists[0].GetQuery()
	for _, want := range []string{"UserhooksAccountID = 'acme'", "UserhooksSubscriptionID = '" + sub1 + "'",
		"StartTime >= '2026-11-23T00:00:00Z'", "ExecutionStatus = 'Failed'", "ExecutionStatus = 'Running'"} {
		if !strings.Contains(q, want) {
			t.Errorf("recover query %q lacks %q", q, want)
		}
	}

	// Again: e1's redelivery now runs, so nothing new starts.
	res, err = svc.Recover(ctx, "acme", sub1, since)
	if err != nil || len(res.Redelivered) != 0 || res.AlreadyRunning != 2 || len(f.starts) != 1 {
		t.Errorf("second Recover = %+v, %v (%d starts); want nothing redelivered, 2 running", res, err, len(f.starts))
	}

	for _, bad := range []struct{ account, sub string }{{"acme", ""}, {"acme", "x' OR '1'='1"}, {"", sub1}} {
		if _, err := svc.Recover(ctx, bad.account, bad.sub, since); !errors.Is(err, deliveries.ErrInvalidFilter) {
			t.Errorf("Recover(%q, %q): %v, want ErrInvalidFilter", bad.account, bad.sub, err)
		}
	}
}

func TestRedeliver_ConcurrentCallsThatSawTheSameRunStartOneRun(t *testing.T) {
	f := newFake(t, converter.GetDefaultDataConverter())
	f.add(t, seed{account: "acme", eventID: "e1", subID: sub1, runID: runDone, status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, attr: delivery.StatusDelivered})
	// Both callers look at the delivery before either starts a run, and
	// the first new run is over before the second start arrives: only the
	// request ID can tell the second start that it is a repeat.
	f.startGate, f.closeAtOnce = 2, true
	svc := deliveries.New(f, deliveries.Options{})
	k := deliveries.Key{EventID: "e1", SubscriptionID: sub1}

	var wg sync.WaitGroup
	results := make([]deliveries.Delivery, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = svc.Redeliver(ctx, "acme", k)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || results[0].RunID != results[1].RunID {
		t.Errorf("concurrent redeliveries = %+v (%v), %+v (%v); want both to return the same new run", results[0], errs[0], results[1], errs[1])
	}
	if n := len(f.runs["delivery/e1/"+sub1]); n != 2 {
		t.Errorf("%d runs, want 2 (the original and one redelivery)", n)
	}

	// A later call sees the redelivery, closed, and redelivers it in turn.
	d, err := svc.Redeliver(ctx, "acme", k)
	if err != nil || d.RedeliveryOf != results[0].RunID {
		t.Errorf("sequential redelivery = %+v, %v; want a run redelivering %s", d, err, results[0].RunID)
	}
}
