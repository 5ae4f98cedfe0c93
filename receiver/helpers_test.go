package receiver_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver for SQLDedup tests

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/signature"
)

// now is the receiver's clock in these tests.
var now = time.Unix(1_800_000_000, 0)

func fixedNow() time.Time { return now }

func mustGenerate(t testing.TB) signature.Secret {
	t.Helper()
	s, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testEvent returns a valid user.created event with the given id.
func testEvent(id string) event.Event {
	return event.Event{
		ID:        id,
		Type:      event.TypeUserCreated,
		Timestamp: now.Add(-time.Minute).UTC(),
		AccountID: "acme",
		Data:      event.Data{User: event.User{ID: "u_42", Email: "ada@example.com", Name: "Ada"}},
	}
}

func marshal(t testing.TB, e event.Event) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signed returns the Standard Webhooks headers for body, signed at ts.
func signed(id string, ts time.Time, body []byte, secrets ...signature.Secret) http.Header {
	h := http.Header{}
	signature.SetHeaders(h, id, ts, body, secrets...)
	return h
}

// response is what a test client got back.
type response struct {
	status int
	body   string
}

// post sends body with headers to url and returns the answer. A transport
// error (the server dropped the connection) is status 0.
func post(t testing.TB, url string, h http.Header, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(b)}
}

// outcomes collects what OnOutcome reports.
type outcomes struct {
	ch chan receiver.Outcome
}

func newOutcomes() *outcomes { return &outcomes{ch: make(chan receiver.Outcome, 1000)} }

func (o *outcomes) record(_ *http.Request, out receiver.Outcome) { o.ch <- out }

// next returns the next reported outcome, failing the test if none comes.
func (o *outcomes) next(t testing.TB) receiver.Outcome {
	t.Helper()
	select {
	case out := <-o.ch:
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome reported")
		return receiver.Outcome{}
	}
}

// serve starts a real HTTP server running h and returns its URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	// Handlers that panic on purpose would print stack traces.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// counter counts handler calls safely.
type counter struct {
	mu sync.Mutex
	n  int
	ev []event.Event
}

func (c *counter) add(e event.Event) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.ev = append(c.ev, e)
	return c.n
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// openSQLite opens a SQLite database file in a temporary directory, as a
// receiver would: WAL, and a busy timeout so concurrent writers wait.
func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)"}}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSQLDedup(t testing.TB, opts receiver.SQLDedupOptions) *receiver.SQLDedup {
	t.Helper()
	db := openSQLite(t, filepath.Join(t.TempDir(), "dedup.db"))
	s, err := receiver.OpenSQLDedup(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dedupStores are the DedupStore implementations every de-duplication test
// runs against.
var dedupStores = []struct {
	name string
	open func(t testing.TB) receiver.DedupStore
}{
	{"memory", func(testing.TB) receiver.DedupStore { return receiver.NewMemoryDedup(0) }},
	{"sqlite", func(t testing.TB) receiver.DedupStore { return newSQLDedup(t, receiver.SQLDedupOptions{}) }},
}

// unix formats a time as a webhook-timestamp.
func unix(ts time.Time) string { return strconv.FormatInt(ts.Unix(), 10) }
