// Package integration runs userhooks end to end against a real Temporal
// server (in-process, go.temporal.io/server/temporaltest), real HTTP
// receivers (httptest) and a real SQLite store. It is the only package that
// links the Temporal server: keep server-backed tests here.
package integration

import (
	"context"
	"encoding/json"
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
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
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

// attempts extracts the attempt records of a delivery from its history:
// the results of completed Deliver activities and the details of failed
// ones, in order. A workflow that does not exist yet has none.
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
	var out []delivery.Attempt
	for _, ev := range h {
		var payload []byte
		switch {
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			payload = ev.GetActivityTaskCompletedEventAttributes().GetResult().GetPayloads()[0].GetData()
		case ev.GetActivityTaskFailedEventAttributes() != nil:
			f := ev.GetActivityTaskFailedEventAttributes().GetFailure().GetApplicationFailureInfo()
			if f == nil || len(f.GetDetails().GetPayloads()) == 0 {
				continue
			}
			payload = f.GetDetails().GetPayloads()[0].GetData()
		default:
			continue
		}
		var a delivery.Attempt
		if err := json.Unmarshal(payload, &a); err != nil || a.Number == 0 {
			continue // not a Deliver result (e.g. MatchSubscriptions)
		}
		out = append(out, a)
	}
	return out
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
