// Package integration runs userhooks end to end against a real Temporal
// server (in-process, go.temporal.io/server/temporaltest), real HTTP
// receivers (httptest) and a real SQLite store. It is the only package that
// links the Temporal server: keep server-backed tests here.
package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/workflows"
)

// server is shared by every test of the package: starting one takes a few
// seconds, and tests isolate themselves by task queue, store and IDs.
var server *temporaltest.TestServer

func TestMain(m *testing.M) {
	server = temporaltest.NewServer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := workflows.RegisterSearchAttributes(ctx, server.GetDefaultClient(), server.GetDefaultNamespace())
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "register search attributes:", err)
		server.Stop()
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// env is one test's installation: a store, a worker on its own task queue
// and a publisher.
type env struct {
	t         *testing.T
	client    client.Client
	store     *subscription.SQLiteStore
	taskQueue string
	publisher *starter.Publisher
	worker    worker.Worker
	// storePath is the store's SQLite file, for a worker of another
	// process.
	storePath string
	// sender is what startWorker's workers deliver with; nil means the
	// loopback policy with a 5 s request timeout.
	sender *activities.Sender
	// tune, when set, adjusts the activities of startWorker's workers
	// (endpoint health settings, say) before they start.
	tune func(*activities.Activities)
}

// loopback lets deliveries reach httptest receivers, which the default
// egress policy blocks.
var loopback = egress.Policy{AllowHTTP: true, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWithClient(t, server.GetDefaultClient())
}

// newEnvWithClient is newEnv with the worker and publisher using c, such as
// a client whose data converter encrypts payloads.
func newEnvWithClient(t *testing.T, c client.Client) *env {
	t.Helper()
	e := newEnvWithoutWorker(t, c)
	e.worker = e.startWorker()
	return e
}

// newEnvWithoutWorker is newEnvWithClient without a worker, for tests that
// start their own (with another sender, or in another process).
func newEnvWithoutWorker(t *testing.T, c client.Client) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "subs.db")
	store, err := subscription.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, client: c, store: store, storePath: path, taskQueue: "tq-" + t.Name()}
	e.publisher = starter.New(e.client, starter.Options{TaskQueue: e.taskQueue})
	return e
}

// startWorker starts a worker like the worker main does; the test stops it
// at the end unless the test stopped it before.
func (e *env) startWorker() worker.Worker {
	e.t.Helper()
	sender := e.sender
	if sender == nil {
		sender = activities.NewSender(loopback, 5*time.Second)
	}
	w := worker.New(e.client, e.taskQueue, worker.Options{})
	acts := &activities.Activities{
		Store:  e.store,
		Sender: sender,
		Logger: zaptest.NewLogger(e.t),
	}
	if e.tune != nil {
		e.tune(acts)
	}
	workflows.Register(w, acts)
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	var once sync.Once
	e.t.Cleanup(func() { once.Do(w.Stop) })
	return stopOnce{w, &once}
}

type stopOnce struct {
	worker.Worker
	once *sync.Once
}

func (s stopOnce) Stop() { s.once.Do(s.Worker.Stop) }

// fast is a retry schedule for tests: three attempts a second apart.
var fast = &delivery.Schedule{
	Delays:        []delivery.Duration{delivery.Duration(time.Second), delivery.Duration(time.Second)},
	MaxRetryAfter: delivery.Duration(time.Minute),
}

// subscribe creates an enabled subscription to url and returns it with its
// secret.
func (e *env) subscribe(account, url string, types []string, sched *delivery.Schedule) (subscription.Subscription, signature.Secret) {
	e.t.Helper()
	secret, err := signature.GenerateSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	s := subscription.Subscription{AccountID: account, URL: url, EventTypes: types, Enabled: true,
		Secrets: []subscription.Secret{{Key: secret}}, Schedule: sched}
	if err := e.store.Create(context.Background(), &s); err != nil {
		e.t.Fatal(err)
	}
	return s, secret
}

func userCreated(account, userID string) event.Event {
	return event.Event{Type: event.TypeUserCreated, AccountID: account,
		Data: event.Data{User: event.User{ID: userID, Email: userID + "@example.com", Name: "Ada Lovelace"}}}
}

// publishAndWait publishes an event and waits up to two minutes for its
// workflow to end.
func (e *env) publishAndWait(ev event.Event) (starter.Receipt, workflows.Summary, error) {
	e.t.Helper()
	return e.publishAndWaitWithin(ev, 2*time.Minute)
}

// publishAndWaitWithin is publishAndWait with another deadline, for tests
// whose workflows take long on a loaded machine.
func (e *env) publishAndWaitWithin(ev event.Event, within time.Duration) (starter.Receipt, workflows.Summary, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	r, err := e.publisher.Publish(ctx, ev)
	if err != nil {
		e.t.Fatalf("publish: %v", err)
	}
	var sum workflows.Summary
	err = e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &sum)
	return r, sum, err
}

// receiver is a real HTTP endpoint that answers from a script and records
// what it received, after checking the signature with the official
// Standard Webhooks library.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	secret  string
	script  []int // status codes to answer, in order; 200 once exhausted
	header  http.Header
	got     []received
	changed chan struct{} // closed and replaced on every request
}

type received struct {
	At       time.Time
	Header   http.Header
	Body     []byte
	Verified error
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{t: t, script: script, header: http.Header{}, changed: make(chan struct{})}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

// verifyWith sets the secret the receiver checks signatures with.
func (r *receiver) verifyWith(s signature.Secret) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s.Reveal()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := received{At: time.Now(), Header: req.Header.Clone(), Body: body, Verified: errors.New("no secret given")}
	if wh, err := standardwebhooks.NewWebhook(r.secret); err == nil && r.secret != "" {
		rec.Verified = wh.Verify(body, req.Header)
	}
	r.got = append(r.got, rec)
	close(r.changed)
	r.changed = make(chan struct{})
	code := http.StatusOK
	if len(r.script) > 0 {
		code, r.script = r.script[0], r.script[1:]
	}
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"answer":%d}`, code)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// waitRequests waits until the receiver has seen n requests.
func (r *receiver) waitRequests(n int, within time.Duration) []received {
	r.t.Helper()
	timeout := time.After(within)
	for {
		r.mu.Lock()
		got, changed := append([]received(nil), r.got...), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-timeout:
			r.t.Fatalf("receiver got %d requests within %s, want %d", len(got), within, n)
		}
	}
}

// history returns every event of a workflow's latest run.
func (e *env) history(workflowID string) []*historypb.HistoryEvent {
	e.t.Helper()
	h, err := e.tryHistory(workflowID)
	if err != nil {
		e.t.Fatalf("history of %s: %v", workflowID, err)
	}
	return h
}

func (e *env) tryHistory(workflowID string) ([]*historypb.HistoryEvent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := e.client.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// attempts extracts the attempt records of a delivery from its history, in
// order (see deliverOutcomes): the result of each Deliver that succeeded,
// the details of each that failed with a record. A workflow that does not
// exist yet has none.
func (e *env) attempts(workflowID string) []delivery.Attempt {
	e.t.Helper()
	h, err := e.tryHistory(workflowID)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("history of %s: %v", workflowID, err)
	}
	outcomes, err := deliverOutcomes(h, converter.GetDefaultDataConverter())
	if err != nil {
		e.t.Fatalf("history of %s: %v", workflowID, err)
	}
	var out []delivery.Attempt
	for _, o := range outcomes {
		if o.record == nil {
			continue // a fault on our side outlasted the retries: no record
		}
		var a delivery.Attempt
		if err := converter.GetDefaultDataConverter().FromPayloads(o.record, &a); err != nil {
			e.t.Fatalf("history of %s, event %d: decode the attempt record: %v", workflowID, o.event.GetEventId(), err)
		}
		out = append(out, a)
	}
	return out
}

// localActivityMarkerName is the MarkerName under which the Go SDK records
// a local activity's outcome; version markers have another name.
const localActivityMarkerName = "LocalActivity"

// localActivityMarker is one LocalActivity marker: the outcome of one run
// of a local activity, in the workflow task that ran it.
type localActivityMarker struct {
	event *historypb.HistoryEvent
	// backoff is, after a failed try, how long Temporal waits before the
	// next one (a fault on our side, retried). It is positive only then:
	// the SDK records -1 after a failure it does not retry, 0 otherwise.
	backoff time.Duration
}

func (m localActivityMarker) attrs() *historypb.MarkerRecordedEventAttributes {
	return m.event.GetMarkerRecordedEventAttributes()
}

// result is what the activity returned; nil after a failure.
func (m localActivityMarker) result() *commonpb.Payloads { return m.attrs().GetDetails()["result"] }

// failure is how the activity failed; nil after a success.
func (m localActivityMarker) failure() *failurepb.Failure { return m.attrs().GetFailure() }

// final reports whether the marker is the activity's outcome: a success, or
// a failure that Temporal does not try again. A cancellation is final too.
func (m localActivityMarker) final() bool { return m.failure() == nil || m.backoff <= 0 }

// localActivityMarkers returns the LocalActivity markers of activityType
// ("Deliver", "MatchSubscriptions", "RequestPermit") in a history, in
// order. dc decodes the markers' data, as it did for the worker that
// recorded them.
func localActivityMarkers(h []*historypb.HistoryEvent, dc converter.DataConverter, activityType string) ([]localActivityMarker, error) {
	var out []localActivityMarker
	for _, ev := range h {
		a := ev.GetMarkerRecordedEventAttributes()
		if a == nil || a.GetMarkerName() != localActivityMarkerName {
			continue
		}
		// The SDK's marker data, in part: ActivityID, ReplayTime and
		// Attempt (the local activity's try) are not needed here.
		var data struct {
			ActivityType string
			Backoff      time.Duration
		}
		if err := dc.FromPayloads(a.GetDetails()["data"], &data); err != nil {
			return nil, fmt.Errorf("event %d: decode the local activity marker's data: %w", ev.GetEventId(), err)
		}
		if data.ActivityType == activityType {
			out = append(out, localActivityMarker{event: ev, backoff: data.Backoff})
		}
	}
	return out, nil
}

// completedBy returns the identity of the worker that completed the
// workflow task whose commands recorded marker m: the worker that ran the
// local activity to that outcome.
func completedBy(h []*historypb.HistoryEvent, m localActivityMarker) string {
	id := m.attrs().GetWorkflowTaskCompletedEventId()
	for _, ev := range h {
		if ev.GetEventId() == id {
			return ev.GetWorkflowTaskCompletedEventAttributes().GetIdentity()
		}
	}
	return ""
}

// deliverOutcome is how one Deliver attempt ended, as history records it.
type deliverOutcome struct {
	event *historypb.HistoryEvent
	// record is the attempt's delivery.Attempt: the result, or the
	// failure's details; nil for a failure without one (a fault on our
	// side that outlasted the retries).
	record *commonpb.Payloads
	// failure is nil when Deliver succeeded.
	failure *failurepb.Failure
}

// deliverOutcomes returns the outcomes of the Deliver attempts in a
// delivery's history, in order, in both shapes history holds them:
// ActivityTaskCompleted and ActivityTaskFailed events of Deliver activities
// (runs from before the workflows' local-deliver change), and Deliver
// LocalActivity markers (runs since). A marker of a failed try that
// Temporal retries, or of a cancellation, is not an outcome. dc decodes
// the markers' data.
func deliverOutcomes(h []*historypb.HistoryEvent, dc converter.DataConverter) ([]deliverOutcome, error) {
	markers, err := localActivityMarkers(h, dc, "Deliver")
	if err != nil {
		return nil, err
	}
	byEvent := map[int64]localActivityMarker{}
	for _, m := range markers {
		byEvent[m.event.GetEventId()] = m
	}
	deliver := map[int64]bool{} // IDs of the ActivityTaskScheduled events of Deliver
	var out []deliverOutcome
	for _, ev := range h {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "Deliver" {
			deliver[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && deliver[a.GetScheduledEventId()] {
			out = append(out, deliverOutcome{event: ev, record: a.GetResult()})
		}
		if a := ev.GetActivityTaskFailedEventAttributes(); a != nil && deliver[a.GetScheduledEventId()] {
			out = append(out, deliverOutcome{event: ev, record: recordOf(a.GetFailure()), failure: a.GetFailure()})
		}
		m, ok := byEvent[ev.GetEventId()]
		switch {
		case !ok || !m.final() || m.failure().GetCanceledFailureInfo() != nil:
		case m.failure() == nil:
			out = append(out, deliverOutcome{event: ev, record: m.result()})
		default:
			out = append(out, deliverOutcome{event: ev, record: recordOf(m.failure()), failure: m.failure()})
		}
	}
	return out, nil
}

// recordOf returns the attempt record a failed Deliver carries as its
// application failure's details, or nil.
func recordOf(f *failurepb.Failure) *commonpb.Payloads {
	if d := f.GetApplicationFailureInfo().GetDetails(); len(d.GetPayloads()) > 0 {
		return d
	}
	return nil
}

// describe returns a workflow's status and search attributes.
func (e *env) status(workflowID string) enumspb.WorkflowExecutionStatus {
	e.t.Helper()
	d, err := e.client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if err != nil {
		e.t.Fatalf("describe %s: %v", workflowID, err)
	}
	return d.GetWorkflowExecutionInfo().GetStatus()
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// marshalHistory encodes a history in the JSON form that `temporal
// workflow show --output json` prints and the SDK's replayer reads.
func marshalHistory(events []*historypb.HistoryEvent) ([]byte, error) {
	return protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
}
