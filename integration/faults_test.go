package integration

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/devserver"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/temporalconn"
	"github.com/userhooks/userhooks/workflows"
)

// The fault suite: receivers and infrastructure that misbehave, against a
// real server. Each test checks what the receiver saw and what history
// holds. The tests run in parallel: most of their time is spent waiting.

// wantAttempt is what a test expects of one attempt record in history.
type wantAttempt struct {
	status int
	class  delivery.ErrorClass
}

// checkAttempts compares a delivery's attempt records with want.
func checkAttempts(t *testing.T, id string, got []delivery.Attempt, want ...wantAttempt) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("history of %s holds %d attempts, want %d: %+v", id, len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Number != i+1 || got[i].StatusCode != w.status || got[i].Class != w.class {
			t.Errorf("attempt %d in history = %+v, want number %d, status %d, class %q", i+1, got[i], i+1, w.status, w.class)
		}
	}
}

// deliveryFailure returns the result a failed delivery workflow ended with.
func (e *env) deliveryFailure(id string) workflows.DeliveryResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := e.client.GetWorkflow(ctx, id, "").Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeDeliveryFailed {
		e.t.Fatalf("delivery %s ended with %v, want %s", id, err, workflows.ErrTypeDeliveryFailed)
	}
	var res workflows.DeliveryResult
	if err := appErr.Details(&res); err != nil {
		e.t.Fatalf("details of %s: %v", id, err)
	}
	return res
}

// attemptDuration is how long an attempt took, as history records it.
func attemptDuration(a delivery.Attempt) time.Duration {
	return time.Duration(a.DurationMs) * time.Millisecond
}

func TestFault_ServerErrorIsRetriedUntilTheScheduleIsExhausted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rc := newFaultReceiver(t, answer(500, nil), answer(500, nil), answer(500, nil))
	sub, _ := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, schedule(time.Minute, time.Second, 2*time.Second))

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum != (workflows.Summary{Subscriptions: 1, Failed: 1}) {
		t.Fatalf("event workflow: %+v, %v; want one failed delivery", sum, err)
	}
	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3 (the schedule's attempts, no more)", len(got))
	}
	for i, wantGap := range []time.Duration{time.Second, 2 * time.Second} {
		if gap := got[i+1].At.Sub(got[i].At); gap < wantGap {
			t.Errorf("attempt %d came %s after attempt %d, want at least the scheduled %s", i+2, gap, i+1, wantGap)
		}
		if got[i+1].WebhookID != got[0].WebhookID {
			t.Errorf("attempt %d has webhook-id %q, want the first one's %q", i+2, got[i+1].WebhookID, got[0].WebhookID)
		}
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	atts := e.attempts(id)
	checkAttempts(t, id, atts, wantAttempt{500, delivery.ClassServerError}, wantAttempt{500, delivery.ClassServerError}, wantAttempt{500, delivery.ClassServerError})
	for i, a := range atts {
		if a.Error != "HTTP 500 Internal Server Error" || a.ResponseExcerpt != `{"answer":500}` {
			t.Errorf("attempt %d: error %q, excerpt %q; want the status and the receiver's body", i+1, a.Error, a.ResponseExcerpt)
		}
	}
	if tm := e.timers(id); len(tm) != 2 || tm[0] != time.Second || tm[1] != 2*time.Second {
		t.Errorf("timers in history = %v, want [1s 2s] as scheduled", tm)
	}
	if res := e.deliveryFailure(id); res.Status != delivery.StatusFailed || res.Attempts != 3 || res.Last.Class != delivery.ClassServerError {
		t.Errorf("delivery result = %+v, want failed after 3 attempts, last ServerError", res)
	}
}

func TestFault_HungReceiverTimesOutAndIsRetried(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	e := newEnvWithSender(t, activities.NewSender(loopback, timeout))
	rc := newFaultReceiver(t, hang)
	sub, _ := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	got := rc.waitDone(2, time.Minute)
	if len(got) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(got))
	}
	if !got[0].Result.ClientGone {
		t.Errorf("the sender never hung up on the hung request (step result %+v): the connection leaks", got[0].Result)
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	atts := e.attempts(id)
	checkAttempts(t, id, atts, wantAttempt{0, delivery.ClassTimeout}, wantAttempt{200, ""})
	// Under the default timeout, the sender's own, it would have waited
	// longer.
	if d := attemptDuration(atts[0]); d < timeout || d >= activities.DefaultRequestTimeout {
		t.Errorf("the timed-out attempt took %s, want the request timeout %s (or a little more)", d, timeout)
	}
}

func TestFault_ConnectionResetIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := rawResponse(200, `{"ok":true}`)
	rc := newFaultReceiver(t,
		resetAfter(""), // nothing at all
		resetAfter("HTTP/1.1 200 OK\r\nContent-Type: appl"), // part of the head
		resetAfter(ok[:len(ok)-6]),                          // the head of a 200 and part of its body
	)
	sub, _ := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	atts := e.attempts(id)
	// A reset after a complete 2xx head still delivers: the receiver had
	// accepted the event. The record says the body was cut short.
	checkAttempts(t, id, atts, wantAttempt{0, delivery.ClassConnection}, wantAttempt{0, delivery.ClassConnection}, wantAttempt{200, ""})
	for i := range 2 {
		if !strings.Contains(atts[i].Error, "reset") && !strings.Contains(atts[i].Error, "EOF") {
			t.Errorf("attempt %d error = %q, want it to name the reset", i+1, atts[i].Error)
		}
	}
	if !strings.Contains(atts[2].Error, "response body not read completely") {
		t.Errorf("attempt 3 error = %q, want a note that the body was cut short", atts[2].Error)
	}
}

func TestFault_SlowByteByByteAnswerTimesOutUnlessInTime(t *testing.T) {
	t.Parallel()
	const timeout = 5 * time.Second
	e := newEnvWithSender(t, activities.NewSender(loopback, timeout))
	resp := rawResponse(200, `{"ok":true}`) // about 100 bytes
	const fastByte = 5 * time.Millisecond
	// Byte by byte, the whole answer takes about 10 s, then about 0.5 s.
	slow := newFaultReceiver(t, trickle("", resp, 100*time.Millisecond), trickle("", resp, fastByte))
	// The head at once, then a body that outlasts the timeout.
	slowBody := newFaultReceiver(t, trickle(resp[:len(resp)-11], resp[len(resp)-11:], time.Second))
	subSlow, _ := e.subscribe("acct-"+t.Name(), slow.srv.URL, nil, fast)
	subSlowBody, _ := e.subscribe("acct-"+t.Name(), slowBody.srv.URL, nil, fast)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Delivered != 2 {
		t.Fatalf("event workflow: %+v, %v; want two delivered", sum, err)
	}

	got := slow.waitDone(2, time.Minute)
	if !got[0].Result.ClientGone || got[0].Result.Written >= int64(len(resp)) {
		t.Errorf("over-long answer: step result %+v, want the sender gone before all %d bytes", got[0].Result, len(resp))
	}
	if got[1].Result.ClientGone || got[1].Result.Written != int64(len(resp)) {
		t.Errorf("in-time answer: step result %+v, want all %d bytes written", got[1].Result, len(resp))
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, subSlow.ID)
	atts := e.attempts(id)
	checkAttempts(t, id, atts, wantAttempt{0, delivery.ClassTimeout}, wantAttempt{200, ""})
	if d := attemptDuration(atts[0]); d < timeout || d >= activities.DefaultRequestTimeout {
		t.Errorf("the timed-out attempt took %s, want the request timeout %s (or a little more)", d, timeout)
	}
	if d, least := attemptDuration(atts[1]), time.Duration(len(resp)-1)*fastByte; d >= timeout || d < least {
		t.Errorf("the slow in-time attempt took %s, want between the trickle's %s and the timeout", d, least)
	}
	if atts[1].Error != "" || atts[1].ResponseExcerpt != `{"ok":true}` {
		t.Errorf("the slow in-time attempt: error %q, excerpt %q; want no error and the whole body", atts[1].Error, atts[1].ResponseExcerpt)
	}

	// A 2xx whose body outlasts the timeout counts: the receiver accepted
	// the event when it sent its status line.
	id = workflows.DeliveryWorkflowID(r.Event.ID, subSlowBody.ID)
	atts = e.attempts(id)
	checkAttempts(t, id, atts, wantAttempt{200, ""})
	if !strings.Contains(atts[0].Error, "response body not read completely") {
		t.Errorf("slow-body attempt error = %q, want a note that the body was cut short", atts[0].Error)
	}
	if d := attemptDuration(atts[0]); d < timeout || d >= activities.DefaultRequestTimeout {
		t.Errorf("the slow-body attempt took %s, want the request timeout %s (or a little more)", d, timeout)
	}
}

func TestFault_HugeResponseBodyIsReadOnlyUpToTheCap(t *testing.T) {
	t.Parallel()
	// Far more than the socket buffers on both ends can hold (tens of MB
	// at most), which is what the receiver can write to a sender that
	// stopped reading.
	const size = 256 << 20
	e := newEnv(t)
	rc := newFaultReceiver(t, flood(http.StatusInternalServerError, size), flood(http.StatusOK, size))
	sub, _ := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	for i, g := range rc.waitDone(2, time.Minute) {
		if !g.Result.ClientGone || g.Result.Written > size/4 {
			t.Errorf("request %d: the receiver wrote %d of %d bytes before the sender hung up (gone: %t), want the sender to stop reading early",
				i+1, g.Result.Written, size, g.Result.ClientGone)
		}
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	atts := e.attempts(id)
	checkAttempts(t, id, atts, wantAttempt{500, delivery.ClassServerError}, wantAttempt{200, ""})
	want := strings.Repeat(hugePattern, activities.ResponseExcerptBytes/len(hugePattern))
	for i, a := range atts {
		if a.ResponseExcerpt != want {
			t.Errorf("attempt %d: the excerpt in history is %d bytes, want the body's first %d", i+1, len(a.ResponseExcerpt), activities.ResponseExcerptBytes)
		}
	}
}

func TestFault_RetryAfterIsHonouredWithinBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	account := "acct-" + t.Name()
	retryAfter := func(v func() string) func(http.Header) {
		return func(h http.Header) { h.Set("Retry-After", v()) }
	}
	cases := []struct {
		name          string
		status        int
		class         delivery.ErrorClass
		value         func() string
		maxRetryAfter time.Duration
		// minRA, maxRA bound the Retry-After that history records.
		minRA, maxRA time.Duration
		// timer is the wait that history records; 0 means the recorded
		// Retry-After.
		timer time.Duration
	}{
		{"429 seconds", 429, delivery.ClassRetryableStatus, func() string { return "3" },
			time.Minute, 3 * time.Second, 3 * time.Second, 3 * time.Second},
		// An HTTP date 3 to 4 s ahead (whole seconds); the sender reads it
		// a little later.
		{"503 HTTP date", 503, delivery.ClassServerError, func() string { return time.Now().Add(4 * time.Second).UTC().Format(http.TimeFormat) },
			time.Minute, 2 * time.Second, 4 * time.Second, 0},
		// Absurd values: recorded as the longest delay, waited for no
		// longer than the schedule's MaxRetryAfter.
		{"429 absurd seconds", 429, delivery.ClassRetryableStatus, func() string { return "999999999999" },
			3 * time.Second, delivery.MaxDelay, delivery.MaxDelay, 3 * time.Second},
		{"503 absurd date", 503, delivery.ClassServerError, func() string { return "Fri, 31 Dec 9999 23:59:59 GMT" },
			2 * time.Second, delivery.MaxDelay, delivery.MaxDelay, 2 * time.Second},
	}
	receivers := make([]*faultReceiver, len(cases))
	subIDs := make([]string, len(cases))
	for i, c := range cases {
		receivers[i] = newFaultReceiver(t, answer(c.status, retryAfter(c.value)))
		sub, _ := e.subscribe(account, receivers[i].srv.URL, nil, schedule(c.maxRetryAfter, time.Second))
		subIDs[i] = sub.ID
	}

	r, sum, err := e.publishAndWait(userCreated(account, "u_1"))
	if err != nil || sum.Delivered != len(cases) {
		t.Fatalf("event workflow: %+v, %v; want %d delivered", sum, err, len(cases))
	}
	for i, c := range cases {
		id := workflows.DeliveryWorkflowID(r.Event.ID, subIDs[i])
		atts := e.attempts(id)
		checkAttempts(t, id, atts, wantAttempt{c.status, c.class}, wantAttempt{200, ""})
		ra := time.Duration(atts[0].RetryAfter)
		if ra < c.minRA || ra > c.maxRA {
			t.Errorf("%s: Retry-After in history = %s, want between %s and %s", c.name, ra, c.minRA, c.maxRA)
		}
		want := c.timer
		if want == 0 {
			want = ra
		}
		if tm := e.timers(id); len(tm) != 1 || tm[0] != want {
			t.Errorf("%s: timers in history = %v, want [%s]", c.name, tm, want)
		}
		got := receivers[i].requests()
		if len(got) != 2 {
			t.Errorf("%s: receiver got %d requests, want 2", c.name, len(got))
		} else if gap := got[1].At.Sub(got[0].At); gap < want {
			t.Errorf("%s: the second attempt came %s after the first, want at least %s", c.name, gap, want)
		}
	}
}

func TestFault_RedirectToPrivateAddressIsNeverFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // loopback is allowed: a followed redirect would reach target
	target := newFaultReceiver(t)
	rc := newFaultReceiver(t,
		answer(http.StatusFound, func(h http.Header) { h.Set("Location", target.srv.URL+"/internal") }),
		answer(http.StatusTemporaryRedirect, func(h http.Header) { h.Set("Location", "http://169.254.169.254/latest/meta-data/") }),
	)
	sub, _ := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)

	r, sum, err := e.publishAndWait(userCreated("acct-"+t.Name(), "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("redirecting receiver got %d requests, want 3", n)
	}
	if n := target.connections(); n != 0 {
		t.Errorf("redirect target got %d connections, want none", n)
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	checkAttempts(t, id, e.attempts(id), wantAttempt{302, delivery.ClassRedirect}, wantAttempt{307, delivery.ClassRedirect}, wantAttempt{200, ""})
}

func TestFault_BlockedAddressIsFinalAndNothingIsSent(t *testing.T) {
	t.Parallel()
	// No private address allowed, as in production (plain http so that
	// the test receiver could answer if the policy let a request through).
	e := newEnvWithSender(t, activities.NewSender(egress.Policy{AllowHTTP: true}, 5*time.Second))
	rc := newFaultReceiver(t)
	port := rc.srv.URL[strings.LastIndex(rc.srv.URL, ":")+1:]
	account := "acct-" + t.Name()
	urls := map[string]string{
		"name resolving to loopback": "http://localhost:" + port + "/hook", // refused when dialled
		"loopback":                   "http://127.0.0.1:" + port + "/hook", // refused before dialling
		"IPv6 loopback":              "http://[::1]:" + port + "/hook",
		"IPv4-mapped IPv6 loopback":  "http://[::ffff:127.0.0.1]:" + port + "/hook",
		"cloud metadata":             "http://169.254.169.254/latest/meta-data/",
	}
	subs := map[string]string{}
	for name, u := range urls {
		sub, _ := e.subscribe(account, u, nil, fast) // the store does not check URLs; the API does
		subs[name] = sub.ID
	}

	r, sum, err := e.publishAndWait(userCreated(account, "u_1"))
	if err != nil || sum != (workflows.Summary{Subscriptions: len(urls), Failed: len(urls)}) {
		t.Fatalf("event workflow: %+v, %v; want %d failed deliveries", sum, err, len(urls))
	}
	if n := rc.connections(); n != 0 {
		t.Errorf("receiver got %d connections, want none", n)
	}
	for name, subID := range subs {
		id := workflows.DeliveryWorkflowID(r.Event.ID, subID)
		atts := e.attempts(id)
		if len(atts) != 1 || atts[0].Class != delivery.ClassBlockedAddress || atts[0].StatusCode != 0 {
			t.Errorf("%s: attempts in history = %+v, want one, BlockedAddress", name, atts)
			continue
		}
		if !strings.Contains(atts[0].Error, "is blocked") {
			t.Errorf("%s: error %q, want it to say the address is blocked", name, atts[0].Error)
		}
		if res := e.deliveryFailure(id); res.Attempts != 1 || res.Status != delivery.StatusFailed {
			t.Errorf("%s: delivery result %+v, want failed after one attempt", name, res)
		}
	}
}

func TestFault_WorkerKilledMidDeliveryAnotherWorkerFinishesIt(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	e := newEnvWithoutWorker(t, server.GetDefaultClient())
	rc := newFaultReceiver(t, hang)
	sub, _ := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, fast)

	// Worker A, the only one at first, is a separate process. Its request
	// timeout is long: the hung request must end with A, not time out.
	a := startWorkerProc(t, bin, "-temporal-address", server.GetFrontendHostPort(), "-namespace", server.GetDefaultNamespace(),
		"-task-queue", e.taskQueue, "-store", e.storePath, "-allow-cidrs", "127.0.0.0/8", "-allow-http",
		"-plaintext-history", "-metrics-addr=", "-request-timeout", "10m")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := e.publisher.Publish(ctx, userCreated("acct-"+t.Name(), "u_1"))
	if err != nil {
		t.Fatal(err)
	}
	rc.waitArrived(1, 2*time.Minute) // A is sending, and the receiver hangs

	e.worker = e.startWorker() // worker B, in this process
	a.kill()
	if got := rc.waitDone(1, time.Minute); !got[0].Result.ClientGone {
		t.Errorf("the request in flight did not end with worker A: %+v", got[0].Result)
	}

	var sum workflows.Summary
	if err := e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &sum); err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	got := rc.requests()
	if len(got) != 2 || got[1].WebhookID != got[0].WebhookID {
		t.Fatalf("receiver got %+v, want the killed request and one more with the same webhook-id", got)
	}
	// The lost attempt is not an attempt of the schedule. Deliver runs as
	// a local activity, inside worker A's workflow task: killed, A never
	// completed that task, which timed out, and worker B, taking the
	// workflow task over, ran Deliver again. History records one outcome,
	// B's: one Deliver marker, delivered, in a workflow task B completed.
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	checkAttempts(t, id, e.attempts(id), wantAttempt{200, ""})
	h := e.history(id)
	markers, err := localActivityMarkers(h, converter.GetDefaultDataConverter(), "Deliver")
	if err != nil {
		t.Fatal(err)
	}
	if len(markers) != 1 {
		t.Fatalf("history of %s holds %d Deliver markers, want 1", id, len(markers))
	}
	m := markers[0]
	var rec delivery.Attempt
	if err := converter.GetDefaultDataConverter().FromPayloads(m.result(), &rec); err != nil || m.failure() != nil || rec.StatusCode != 200 {
		t.Errorf("the Deliver marker holds %+v (failure %v, decode error %v), want a success with status 200", rec, m.failure(), err)
	}
	lost := slices.IndexFunc(h, func(ev *historypb.HistoryEvent) bool {
		return ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT || ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED
	})
	if lost < 0 || h[lost].GetEventId() > m.event.GetEventId() {
		t.Errorf("history of %s has no workflow task timed out or failed before the Deliver marker (event %d): A's task was not lost", id, m.event.GetEventId())
	}
	if b, by := strconv.Itoa(os.Getpid())+"@", completedBy(h, m); !strings.HasPrefix(by, b) {
		t.Errorf("the workflow task that recorded the Deliver marker was completed by %q, want worker B (identity %s…)", by, b)
	}
}

func TestFault_DeliveryCompletesAcrossTemporalServerRestart(t *testing.T) {
	t.Parallel()
	serverLog := &syncBuffer{}
	opts := devserver.Options{
		BinDir:           filepath.Dir(findTemporalCLI(t, "the server restart test runs `temporal server start-dev`")),
		DBFile:           filepath.Join(t.TempDir(), "temporal.db"),
		Port:             freePort(t),
		UIPort:           -1,
		SearchAttributes: workflows.SearchAttributes(),
		Log:              serverLog,
	}
	var srv *devserver.Server
	startServer := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var err error
		if srv, err = devserver.Start(ctx, opts); err != nil {
			t.Fatalf("start the Temporal dev server: %v\n%s", err, serverLog)
		}
	}
	// Registered first, so it runs last: after the worker and client stop.
	t.Cleanup(func() {
		if srv != nil {
			srv.Stop()
		}
		if t.Failed() {
			t.Logf("Temporal dev server log:\n%s", serverLog)
		}
	})
	startServer()
	c, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: "default",
		Logger: temporalconn.NewLogger(zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := newEnvWithClient(t, c)
	rc := newFaultReceiver(t, answer(500, nil), answer(500, nil))
	const firstWait = 15 * time.Second // far longer than a stop takes
	sub, _ := e.subscribe("acct-"+t.Name(), rc.srv.URL, nil, schedule(time.Minute, firstWait, time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := e.publisher.Publish(ctx, userCreated("acct-"+t.Name(), "u_1"))
	if err != nil {
		t.Fatal(err)
	}
	id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	timer := e.waitHistoryEvent(id, enumspb.EVENT_TYPE_TIMER_STARTED, 2*time.Minute)
	due := timer.GetEventTime().AsTime().Add(timer.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration())

	srv.Stop() // the delivery waits for its second attempt, on a timer in the file
	<-srv.Done()
	stopped := time.Now()
	before := len(rc.requests())
	if stopped.Before(due) && before != 1 {
		t.Fatalf("receiver got %d requests before the server stopped, want 1", before)
	}
	if !stopped.Before(due) {
		t.Logf("the server stopped at %s, after the timer was due (%s): the retry may have run before the stop", stopped, due)
	}
	startServer()

	var sum workflows.Summary
	if err := c.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &sum); err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow %s after the restart: %+v, %v; want one delivered", r.RunID, sum, err)
	}
	got := rc.requests()
	if len(got) != 3 {
		t.Errorf("receiver got %d requests, want 3", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].WebhookID != got[0].WebhookID {
			t.Errorf("request %d has webhook-id %q, want %q", i+1, got[i].WebhookID, got[0].WebhookID)
		}
	}
	if len(got) > 1 && got[1].At.Before(due) {
		t.Errorf("the second attempt came at %s, before its timer was due at %s", got[1].At, due)
	}
	checkAttempts(t, id, e.attempts(id), wantAttempt{500, delivery.ClassServerError}, wantAttempt{500, delivery.ClassServerError}, wantAttempt{200, ""})
	if tm := e.timers(id); len(tm) != 2 || tm[0] != firstWait || tm[1] != time.Second {
		t.Errorf("timers in history = %v, want [%s 1s]", tm, firstWait)
	}
}
