package deliveries

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/workflows"
)

func TestQuote_EscapesEverythingThatCouldEndTheLiteral(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"acme", `'acme'`},
		{`' OR '1'='1`, `'\' OR \'1\'=\'1'`},
		{`a\`, `'a\\'`},
		{`a\' OR 1=1`, `'a\\\' OR 1=1'`},
		{`"x"`, `'\"x\"'`},
		{"a\x00b\nc\rd", `'a\0b\nc\rd'`},
	} {
		if got := quote(tc.in); got != tc.want {
			t.Errorf("quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestStatusOf_AgreesWithStatusQueries(t *testing.T) {
	// Every (execution status, search attribute) pair a delivery run can
	// show: the workflow upserts its final status in the same workflow task
	// that closes it, and a run closed from outside (terminated, timed
	// out, failed by a bug) keeps the attribute it had while open.
	open := []delivery.Status{delivery.StatusPending, delivery.StatusRetrying}
	runs := map[enumspb.WorkflowExecutionStatus][]delivery.Status{
		enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:    open,
		enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:  {delivery.StatusDelivered, delivery.StatusSkipped},
		enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:     append([]delivery.Status{delivery.StatusFailed}, open...),
		enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:   append([]delivery.Status{delivery.StatusCanceled}, open...),
		enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED: open,
		enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:  open,
	}
	for exec, attrs := range runs {
		for _, attr := range attrs {
			got := statusOf(exec, attr)
			// Evaluate each status query by hand on this run: exactly the
			// query of got must match it.
			for status, q := range statusQueries {
				matches := evalStatusQuery(q, exec, attr)
				if matches != (status == got) {
					t.Errorf("run %s with attribute %s: statusOf = %s, but the query of %s matches = %v", exec, attr, got, status, matches)
				}
			}
		}
	}
	for _, tc := range []struct {
		exec enumspb.WorkflowExecutionStatus
		attr delivery.Status
		want delivery.Status
	}{
		{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, delivery.StatusRetrying, delivery.StatusRetrying},
		{enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, delivery.StatusSkipped, delivery.StatusSkipped},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, delivery.StatusRetrying, delivery.StatusCanceled},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, delivery.StatusRetrying, delivery.StatusFailed},
	} {
		if got := statusOf(tc.exec, tc.attr); got != tc.want {
			t.Errorf("statusOf(%s, %s) = %s, want %s", tc.exec, tc.attr, got, tc.want)
		}
	}
}

// evalStatusQuery evaluates the small language of statusQueries: clauses
// joined by AND, each either `ExecutionStatus = 'X'`, an OR of those in
// parentheses, or `{status} = 'value'`.
func evalStatusQuery(q string, exec enumspb.WorkflowExecutionStatus, attr delivery.Status) bool {
	for _, clause := range strings.Split(q, " AND ") {
		clause = strings.Trim(clause, "()")
		any := false
		for _, alt := range strings.Split(clause, " OR ") {
			name, value, _ := strings.Cut(alt, " = ")
			value = strings.Trim(value, "'")
			switch name {
			case "ExecutionStatus":
				any = any || exec.String() == value
			case "{status}":
				any = any || string(attr) == value
			default:
				panic("unexpected clause " + alt)
			}
		}
		if !any {
			return false
		}
	}
	return true
}

func TestEndpointFromSummary(t *testing.T) {
	for _, tc := range []struct{ summary, want string }{
		{"user.created u_42 → https://crm.example.com", "https://crm.example.com"},
		{"user.created u_42 → http://127.0.0.1:8080 (redelivery of run " + "abc)", "http://127.0.0.1:8080"},
		{"user.created u_42 (redelivery of run abc)", ""},
		{"user.created u_42 → (invalid URL)", ""},
		{"", ""},
	} {
		if got := endpointFromSummary(tc.summary); got != tc.want {
			t.Errorf("endpointFromSummary(%q) = %q, want %q", tc.summary, got, tc.want)
		}
	}
}

func TestPageToken_RoundTripsOnlyForItsFilterAndKey(t *testing.T) {
	svc := New(nil, Options{PageTokenKey: []byte("0123456789abcdef0123456789abcdef")})
	q := "WorkflowType = 'DeliveryWorkflow' AND UserhooksAccountID = 'acme'"
	raw := []byte{0, 1, 2, 0xfe, 0xff, '/', '+', '='}
	s := svc.encodePageToken(q, raw)
	if strings.ContainsAny(s, "/+=") {
		t.Errorf("token %q is not URL-safe", s)
	}
	got, err := svc.decodePageToken(q, s)
	if err != nil || !bytes.Equal(got, raw) {
		t.Errorf("decodePageToken(%q) = %v, %v; want %v", s, got, err, raw)
	}
	if svc.encodePageToken(q, nil) != "" {
		t.Error("an empty Temporal token must give an empty page token (last page)")
	}
	if got, err := svc.decodePageToken(q, ""); err != nil || got != nil {
		t.Errorf("empty page token = %v, %v; want the first page", got, err)
	}

	sameKey := New(nil, Options{PageTokenKey: []byte("0123456789abcdef0123456789abcdef")})
	if _, err := sameKey.decodePageToken(q, s); err != nil {
		t.Errorf("a replica with the same key refused the token: %v", err)
	}
	flipped := []byte(s)
	flipped[2] ^= 1
	for name, tc := range map[string]struct {
		svc   *Service
		query string
		token string
	}{
		"another filter":      {svc, q + " AND UserhooksEventID = 'e1'", s},
		"another key":         {New(nil, Options{PageTokenKey: []byte("another key, another API")}), q, s},
		"a random key":        {New(nil, Options{}), q, s},
		"tampered":            {svc, q, string(flipped)},
		"truncated":           {svc, q, s[:len(s)-2]},
		"Temporal's own":      {svc, q, base64.RawURLEncoding.EncodeToString(raw)},
		"not base64":          {svc, q, "%%%"},
		"padded":              {svc, q, s + "=="},
		"a quote":             {svc, q, "'"},
		"MAC without a token": {svc, q, base64.RawURLEncoding.EncodeToString(svc.pageTokenMAC(q, nil))},
	} {
		if got, err := tc.svc.decodePageToken(tc.query, tc.token); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("%s: decodePageToken = %v, %v; want ErrInvalidFilter", name, got, err)
		}
	}
}

func TestRedeliveryRequestID_IsStablePerRun(t *testing.T) {
	a := redeliveryRequestID("delivery/e/s", run1)
	if a != redeliveryRequestID("delivery/e/s", run1) {
		t.Error("two redeliveries of one run must share a request ID, or Temporal starts two runs")
	}
	if a == redeliveryRequestID("delivery/e/s", run2) || a == redeliveryRequestID("delivery/e/t", run1) {
		t.Error("redeliveries of different runs must not share a request ID")
	}
}

const (
	run1 = "3b5f0c1e-2d4a-4b6c-8d9e-0f1a2b3c4d5e"
	run2 = "7c9a1d2e-3f4b-4c5d-9e6f-a0b1c2d3e4f5"
)

// historyBuilder writes a delivery run's history the way the SDK and the
// server would, encoding payloads with dc.
type historyBuilder struct {
	t      *testing.T
	dc     converter.DataConverter
	events []*historypb.HistoryEvent
	at     time.Time
}

func (h *historyBuilder) add(ev *historypb.HistoryEvent) int64 {
	ev.EventId = int64(len(h.events) + 1)
	h.at = h.at.Add(time.Second)
	ev.EventTime = timestamppb.New(h.at)
	h.events = append(h.events, ev)
	return ev.EventId
}

func (h *historyBuilder) payloads(v any) *commonpb.Payloads {
	p, err := h.dc.ToPayloads(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *historyBuilder) schedule(activity string) int64 {
	return h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
		Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
			ActivityType: &commonpb.ActivityType{Name: activity},
			Input:        h.payloads("the input is not read"),
		}},
	})
}

func (h *historyBuilder) completed(scheduled int64, result any) {
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
		Attributes: &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{
			ScheduledEventId: scheduled, Result: h.payloads(result),
		}},
	})
}

func (h *historyBuilder) failed(scheduled int64, f *failurepb.Failure) {
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
		Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{
			ScheduledEventId: scheduled, Failure: f,
		}},
	})
}

func (h *historyBuilder) appFailure(a delivery.Attempt) *failurepb.Failure {
	return &failurepb.Failure{Message: a.Error, FailureInfo: &failurepb.Failure_ApplicationFailureInfo{ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{
		Type: string(a.Class), NonRetryable: true, Details: h.payloads(a),
	}}}
}

func (h *historyBuilder) timer(id string, d time.Duration) {
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_TIMER_STARTED,
		Attributes: &historypb.HistoryEvent_TimerStartedEventAttributes{TimerStartedEventAttributes: &historypb.TimerStartedEventAttributes{
			TimerId: id, StartToFireTimeout: durationpb.New(d),
		}},
	})
}

func (h *historyBuilder) timerFired(id string) {
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_TIMER_FIRED,
		Attributes: &historypb.HistoryEvent_TimerFiredEventAttributes{TimerFiredEventAttributes: &historypb.TimerFiredEventAttributes{
			TimerId: id,
		}},
	})
}

func (h *historyBuilder) timerCanceled(id string) {
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_TIMER_CANCELED,
		Attributes: &historypb.HistoryEvent_TimerCanceledEventAttributes{TimerCanceledEventAttributes: &historypb.TimerCanceledEventAttributes{
			TimerId: id,
		}},
	})
}

// marker records a marker as the SDK does: a local activity's result
// ("LocalActivity", its data naming the activity) or a version ("Version").
func (h *historyBuilder) marker(name, activityType string) {
	details := map[string]*commonpb.Payloads{}
	if name == localActivityMarker {
		// The SDK's localActivityMarkerData, encoded with the workflow's
		// data converter.
		details["data"] = h.payloads(struct {
			ActivityID   string
			ActivityType string
			ReplayTime   time.Time
			Attempt      int32
		}{"1", activityType, h.at, 1})
	} else {
		details["change-id"] = h.payloads("endpoint-concurrency")
		details["version"] = h.payloads(1)
	}
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_MARKER_RECORDED,
		Attributes: &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{
			MarkerName: name, Details: details,
		}},
	})
}

// noRetry is the backoff the SDK records with a local activity's failure
// when no try follows.
const noRetry = -1

// localDeliver records a Deliver local activity's marker as the SDK does:
// its result, or its failure with the backoff before the next try (noRetry
// when none follows).
func (h *historyBuilder) localDeliver(result any, failure *failurepb.Failure, backoff time.Duration) {
	details := map[string]*commonpb.Payloads{
		"data": h.payloads(struct {
			ActivityID   string
			ActivityType string
			ReplayTime   time.Time
			Attempt      int32
			Backoff      time.Duration
		}{"2", deliverActivityType, h.at, 1, backoff}),
	}
	if failure == nil {
		details["result"] = h.payloads(result)
	}
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_MARKER_RECORDED,
		Attributes: &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{
			MarkerName: localActivityMarker, Details: details, Failure: failure,
		}},
	})
}

func (h *historyBuilder) signaled(name string) {
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{
			SignalName: name, Input: h.payloads(workflows.PermitGrant{RequestID: "r", InFlight: 1, Limit: 1}),
		}},
	})
}

func encryptingConverter(t *testing.T) converter.DataConverter {
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := payloadcodec.NewKeyring("k1", map[string][]byte{"k1": key})
	if err != nil {
		t.Fatal(err)
	}
	return payloadcodec.NewDataConverter(k)
}

// bothConverters are the data converters a delivery log must read through:
// the SDK's default, and one that encrypts, as production's does.
func bothConverters(t *testing.T) map[string]converter.DataConverter {
	return map[string]converter.DataConverter{
		"default converter":    converter.GetDefaultDataConverter(),
		"encrypting converter": encryptingConverter(t),
	}
}

func TestAttemptLog_ReadsEveryDeliverAttemptInOrderThroughTheDataConverter(t *testing.T) {
	for name, dc := range bothConverters(t) {
		t.Run(name, func(t *testing.T) {
			h := &historyBuilder{t: t, dc: dc, at: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
			first := delivery.Attempt{Number: 1, StatusCode: 500, Class: delivery.ClassServerError, Error: "HTTP 500", ResponseExcerpt: `{"answer":500}`}
			second := delivery.Attempt{Number: 2, StatusCode: 503, Class: delivery.ClassServerError, Error: "HTTP 503"}
			third := delivery.Attempt{Number: 4, StatusCode: 204, DurationMs: 12}

			h.failed(h.schedule(deliverActivityType), h.appFailure(first))
			h.timer("t1", 5*time.Second)
			h.timerFired("t1")
			h.failed(h.schedule(deliverActivityType), h.appFailure(second))
			// Another activity of the workflow is not an attempt.
			h.completed(h.schedule("DisableSubscription"), delivery.Attempt{Number: 99})
			// A Deliver whose infra retries ran out: no record, one attempt.
			h.failed(h.schedule(deliverActivityType), &failurepb.Failure{Message: "activity StartToClose timeout",
				FailureInfo: &failurepb.Failure_TimeoutFailureInfo{TimeoutFailureInfo: &failurepb.TimeoutFailureInfo{}}})
			h.completed(h.schedule(deliverActivityType), third)
			h.schedule(deliverActivityType) // in flight: not an attempt yet

			rl, err := attemptLog(dc, h.events)
			if err != nil {
				t.Fatal(err)
			}
			log, next := rl.Attempts, rl.NextAttemptAt
			if !next.IsZero() {
				t.Errorf("next attempt = %s, want none (the only timer fired)", next)
			}
			if len(log) != 4 {
				t.Fatalf("attempt log has %d entries, want 4: %+v", len(log), log)
			}
			if log[0] != first || log[1] != second || log[3] != third {
				t.Errorf("attempt log = %+v, want the records as written", log)
			}
			if log[2].Number != 3 || log[2].Class != delivery.ClassInternal || !strings.Contains(log[2].Error, "timeout") || log[2].StartedAt.IsZero() {
				t.Errorf("attempt 3 = %+v, want attempt 3 as an InternalError with the failure message", log[2])
			}
		})
	}
}

// TestAttemptLog_ReadsLocalActivityAttempts: from the local-deliver change
// on, each attempt is a Deliver local activity, recorded as one marker.
// Runs of both shapes must read alike.
func TestAttemptLog_ReadsLocalActivityAttempts(t *testing.T) {
	for name, dc := range bothConverters(t) {
		t.Run(name, func(t *testing.T) {
			h := &historyBuilder{t: t, dc: dc, at: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
			first := delivery.Attempt{Number: 1, StatusCode: 503, Class: delivery.ClassServerError, Error: "HTTP 503", ResponseExcerpt: "busy"}
			third := delivery.Attempt{Number: 3, StatusCode: 200, DurationMs: 7}
			internal := &failurepb.Failure{Message: "load subscription: database is locked"}

			h.marker("Version", "")
			h.localDeliver(nil, h.appFailure(first), noRetry)
			h.timer("t1", 5*time.Second)
			h.timerFired("t1")
			// A fault on our side with a try to come: not an outcome yet.
			h.localDeliver(nil, internal, 2*time.Second)
			check := func(wantAttempts int) {
				t.Helper()
				rl, err := attemptLog(dc, h.events)
				if err != nil {
					t.Fatal(err)
				}
				if len(rl.Attempts) != wantAttempts {
					t.Fatalf("attempt log has %d entries, want %d: %+v", len(rl.Attempts), wantAttempts, rl.Attempts)
				}
			}
			check(1)
			// Its last try failed too: attempt 2, on our side.
			h.localDeliver(nil, internal, noRetry)
			h.timer("t2", time.Minute)
			h.timerFired("t2")
			h.localDeliver(third, nil, 0)
			// Cancelled with its run: never an attempt.
			h.localDeliver(nil, &failurepb.Failure{Message: "canceled",
				FailureInfo: &failurepb.Failure_CanceledFailureInfo{CanceledFailureInfo: &failurepb.CanceledFailureInfo{}}}, noRetry)

			rl, err := attemptLog(dc, h.events)
			if err != nil {
				t.Fatal(err)
			}
			log := rl.Attempts
			if len(log) != 3 {
				t.Fatalf("attempt log has %d entries, want 3: %+v", len(log), log)
			}
			if log[0] != first || log[2] != third {
				t.Errorf("attempt log = %+v, want the records as written", log)
			}
			if log[1].Number != 2 || log[1].Class != delivery.ClassInternal || log[1].Error != internal.Message {
				t.Errorf("attempt 2 = %+v, want an InternalError with the failure message", log[1])
			}
			if !rl.NextAttemptAt.IsZero() {
				t.Errorf("next attempt at %s, want none (every timer fired)", rl.NextAttemptAt)
			}
		})
	}
}

// TestAttemptLog_ALocalAttemptEndsTheWaitForAPermit: with local
// activities, the attempt's marker is the first sign of it in history.
func TestAttemptLog_ALocalAttemptEndsTheWaitForAPermit(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	h := &historyBuilder{t: t, dc: dc, at: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	h.marker(localActivityMarker, requestPermitActivityType)
	h.timer("1", 10*time.Minute)
	h.signaled(workflows.SignalPermitGrant)
	h.timerCanceled("1")
	h.localDeliver(nil, h.appFailure(delivery.Attempt{Number: 1, StatusCode: 500, Class: delivery.ClassServerError}), noRetry)
	h.timer("2", 5*time.Second)
	rl, err := attemptLog(dc, h.events)
	if err != nil {
		t.Fatal(err)
	}
	if len(rl.Attempts) != 1 || !rl.WaitingForPermitSince.IsZero() || !rl.NextAttemptAt.Equal(h.at.Add(5*time.Second)) {
		t.Errorf("%d attempts, waiting since %s, next at %s; want 1 attempt, not waiting, the retry timer's time",
			len(rl.Attempts), rl.WaitingForPermitSince, rl.NextAttemptAt)
	}
}

func TestAttemptLog_PendingTimerIsTheNextAttempt(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	h := &historyBuilder{t: t, dc: dc, at: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	h.failed(h.schedule(deliverActivityType), h.appFailure(delivery.Attempt{Number: 1, StatusCode: 500, Class: delivery.ClassServerError}))
	h.timer("t1", time.Hour)
	started := h.at
	rl, err := attemptLog(dc, h.events)
	if err != nil {
		t.Fatal(err)
	}
	if want := started.Add(time.Hour); !rl.NextAttemptAt.Equal(want) || !rl.WaitingForPermitSince.IsZero() {
		t.Errorf("next attempt = %s, waiting for a permit since %s; want %s (timer start + 1 h), not waiting", rl.NextAttemptAt, rl.WaitingForPermitSince, want)
	}
}

// TestAttemptLog_AWaitForAPermitIsNotTheNextAttempt: a delivery with a
// concurrency limit waits for its gate's grant on a 10-minute timer before
// it asks again. That timer is no retry: while the run waits, the log says
// since when it waits for a permit, and gives no next attempt time.
func TestAttemptLog_AWaitForAPermitIsNotTheNextAttempt(t *testing.T) {
	for name, dc := range bothConverters(t) {
		t.Run(name, func(t *testing.T) {
			h := &historyBuilder{t: t, dc: dc, at: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
			// want is what the log says once the history holds the events so far.
			type want struct {
				attempts     int
				next         time.Time
				waitingSince time.Time
				events       int // the length of the history then
			}
			var steps []want
			check := func(w want) {
				w.events = len(h.events)
				steps = append(steps, w)
			}
			h.marker("Version", "")
			h.marker(localActivityMarker, requestPermitActivityType) // attempt 1 asks
			asked1 := h.at
			check(want{0, time.Time{}, asked1, 0})
			h.timer("1", 10*time.Minute)
			check(want{0, time.Time{}, asked1, 0})
			h.signaled(workflows.SignalPermitGrant)
			h.timerCanceled("1")
			scheduled := h.schedule(deliverActivityType)
			check(want{0, time.Time{}, time.Time{}, 0})
			h.failed(scheduled, h.appFailure(delivery.Attempt{Number: 1, StatusCode: 500, Class: delivery.ClassServerError}))
			h.timer("2", 5*time.Second) // the retry
			retryAt := h.at.Add(5 * time.Second)
			check(want{1, retryAt, time.Time{}, 0})
			h.timerFired("2")
			h.marker(localActivityMarker, requestPermitActivityType) // attempt 2 asks
			asked2 := h.at
			h.timer("3", 10*time.Minute)
			check(want{1, time.Time{}, asked2, 0})
			h.timerFired("3")
			h.marker(localActivityMarker, requestPermitActivityType) // and asks again
			h.timer("4", 10*time.Minute)
			check(want{1, time.Time{}, asked2, 0}) // waiting since the first request
			h.signaled(workflows.SignalPermitGrant)
			h.timerCanceled("4")
			scheduled = h.schedule(deliverActivityType)
			h.failed(scheduled, h.appFailure(delivery.Attempt{Number: 2, StatusCode: 503, Class: delivery.ClassServerError}))
			h.timer("5", time.Minute)
			check(want{2, h.at.Add(time.Minute), time.Time{}, 0})

			// The log of the history as it stood at each step.
			for _, w := range steps {
				rl, err := attemptLog(dc, h.events[:w.events])
				if err != nil {
					t.Fatalf("after %d events: %v", w.events, err)
				}
				if len(rl.Attempts) != w.attempts || !rl.NextAttemptAt.Equal(w.next) || !rl.WaitingForPermitSince.Equal(w.waitingSince) {
					t.Errorf("after %d events: %d attempts, next attempt at %s, waiting for a permit since %s; want %d, %s, %s",
						w.events, len(rl.Attempts), rl.NextAttemptAt, rl.WaitingForPermitSince, w.attempts, w.next, w.waitingSince)
				}
			}
		})
	}
}

func TestAttemptLog_UndecodablePayloadIsAnErrorNotAMissingAttempt(t *testing.T) {
	// Written encrypted, read by a converter without the key.
	h := &historyBuilder{t: t, dc: encryptingConverter(t)}
	h.completed(h.schedule(deliverActivityType), delivery.Attempt{Number: 1, StatusCode: 200})
	if rl, err := attemptLog(encryptingConverter(t), h.events); err == nil {
		t.Errorf("attemptLog decoded %+v with the wrong key; want an error", rl.Attempts)
	}
}

func TestEncodeSearchAttributes_TypesEveryValue(t *testing.T) {
	attrs, err := encodeSearchAttributes(workflows.AttrEventID.ValueSet("e1"), workflows.AttrAttempts.ValueSet(0))
	if err != nil {
		t.Fatal(err)
	}
	for name, wantType := range map[string]string{"UserhooksEventID": "Keyword", "UserhooksAttempts": "Int"} {
		p := attrs.GetIndexedFields()[name]
		if p == nil || string(p.GetMetadata()["type"]) != wantType {
			t.Errorf("search attribute %s = %v, want type %s", name, p, wantType)
		}
	}
	if got := keyword(attrs.GetIndexedFields(), "UserhooksEventID"); got != "e1" {
		t.Errorf("UserhooksEventID reads back as %q, want e1", got)
	}
	if got := integer(attrs.GetIndexedFields(), "UserhooksAttempts"); got != 0 {
		t.Errorf("UserhooksAttempts reads back as %d, want 0", got)
	}
}

// TestAttemptLog_RecordedHistoriesOfLimitedDeliveries reads histories that
// a real server recorded (the workflows package's replay fixtures, from
// integration/concurrency_test.go) as they stood at moments of the run:
// waiting for the grant on the 10-minute re-request timer, then attempting.
func TestAttemptLog_RecordedHistoriesOfLimitedDeliveries(t *testing.T) {
	tests := []struct {
		fixture string
		events  int   // the history up to this event ID
		since   int64 // the event whose time the wait started at; 0: not waiting
		want    int   // attempts
	}{
		// The permit request's marker (7), then its timer (8): waiting.
		{"delivery-canceled-waiting-permit", 8, 7, 0},
		{"delivery-limited-waited", 8, 7, 0},
		// The grant came (9), the Deliver is scheduled (14): no longer
		// waiting; then it completed.
		{"delivery-limited-waited", 14, 0, 0},
		{"delivery-limited-waited", 26, 0, 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s up to %d", tc.fixture, tc.events), func(t *testing.T) {
			f, err := os.Open(filepath.Join("..", "workflows", "testdata", "histories", "v2", tc.fixture+".json"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{LastEventID: int64(tc.events)})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(h.GetEvents()); n != tc.events {
				t.Fatalf("the fixture has %d events up to %d", n, tc.events)
			}
			var want time.Time
			if tc.since > 0 {
				want = h.GetEvents()[tc.since-1].GetEventTime().AsTime()
				if name := h.GetEvents()[tc.since-1].GetMarkerRecordedEventAttributes().GetMarkerName(); name != localActivityMarker {
					t.Fatalf("event %d is not a local activity's marker: %v", tc.since, h.GetEvents()[tc.since-1])
				}
			}
			rl, err := attemptLog(converter.GetDefaultDataConverter(), h.GetEvents())
			if err != nil {
				t.Fatal(err)
			}
			if !rl.WaitingForPermitSince.Equal(want) || !rl.NextAttemptAt.IsZero() || len(rl.Attempts) != tc.want {
				t.Errorf("waiting for a permit since %s, next attempt at %s, %d attempts; want since %s, no next attempt time, %d attempts",
					rl.WaitingForPermitSince, rl.NextAttemptAt, len(rl.Attempts), want, tc.want)
			}
		})
	}
}
