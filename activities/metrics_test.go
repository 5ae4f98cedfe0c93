package activities_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/uber-go/tally/v4"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// fixture is a real SQLite store and a real receiver whose answer the test
// picks per path.
type fixture struct {
	store *subscription.SQLiteStore
	srv   *httptest.Server
	event event.Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store, err := subscription.OpenSQLite(filepath.Join(t.TempDir(), "subs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(30 * time.Millisecond) // the receiver's own latency, measured below
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/gone", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e, err := event.Prepare(event.Event{Type: event.TypeUserCreated, AccountID: "acme",
		Data: event.Data{User: event.User{ID: "u_1", Email: "zoe@example.com"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: store, srv: srv, event: e}
}

// subscribe stores a subscription to path on the receiver and returns its ID.
func (f *fixture) subscribe(t *testing.T, path string, enabled bool) string {
	t.Helper()
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	sub := subscription.Subscription{AccountID: "acme", URL: f.srv.URL + path, Enabled: enabled,
		Secrets: []subscription.Secret{{Key: key}}}
	if err := f.store.Create(context.Background(), &sub); err != nil {
		t.Fatal(err)
	}
	return sub.ID
}

// attemptTimers returns the durations recorded under MetricAttemptDuration,
// by result label.
func attemptTimers(scope tally.TestScope) map[string][]time.Duration {
	got := map[string][]time.Duration{}
	for _, tm := range scope.Snapshot().Timers() {
		if tm.Name() == activities.MetricAttemptDuration {
			r := tm.Tags()[activities.TagResult]
			got[r] = append(got[r], tm.Values()...)
		}
	}
	return got
}

func TestDeliver_RecordsAttemptDurationByResultWhenARequestWasSent(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name      string
		path      string
		enabled   bool
		allowHTTP bool
		// wantResult is the label of the one duration recorded, "" for none.
		wantResult string
		atLeast    time.Duration
	}{
		{name: "2xx", path: "/ok", enabled: true, allowHTTP: true, wantResult: activities.ResultSuccess},
		{name: "slow 2xx is timed", path: "/slow", enabled: true, allowHTTP: true, wantResult: activities.ResultSuccess, atLeast: 30 * time.Millisecond},
		{name: "5xx", path: "/down", enabled: true, allowHTTP: true, wantResult: string(delivery.ClassServerError)},
		{name: "410", path: "/gone", enabled: true, allowHTTP: true, wantResult: string(delivery.ClassGone)},
		{name: "disabled subscription sends nothing", path: "/ok", enabled: false, allowHTTP: true},
		{name: "URL refused before sending", path: "/ok", enabled: true, allowHTTP: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var suite testsuite.WorkflowTestSuite
			suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			scope := tally.NewTestScope("", nil)
			suite.SetMetricsHandler(sdktally.NewMetricsHandler(scope))
			env := suite.NewTestActivityEnvironment()
			acts := &activities.Activities{
				Store:  f.store,
				Sender: activities.NewSender(egress.Policy{AllowHTTP: tt.allowHTTP, AllowCIDRs: loopback}, 5*time.Second),
			}
			env.RegisterActivity(acts)

			// Failed attempts come back as errors; only the metric matters here.
			_, _ = env.ExecuteActivity(acts.Deliver, activities.DeliverInput{
				Event: f.event, SubscriptionID: f.subscribe(t, tt.path, tt.enabled), Attempt: 1,
			})

			got := attemptTimers(scope)
			if tt.wantResult == "" {
				if len(got) != 0 {
					t.Fatalf("attempt durations = %v, want none", got)
				}
				return
			}
			if len(got) != 1 || len(got[tt.wantResult]) != 1 {
				t.Fatalf("attempt durations = %v, want one labelled %s", got, tt.wantResult)
			}
			if d := got[tt.wantResult][0]; d <= 0 || d < tt.atLeast || d > 5*time.Second {
				t.Errorf("recorded duration %s, want between %s and the 5s timeout", d, max(tt.atLeast, time.Nanosecond))
			}
		})
	}
}

// Deliver is also called outside an activity (the interop tests do): it
// must not ask for an activity's metrics handler there.
func TestDeliver_OutsideAnActivityRecordsNothingAndDoesNotPanic(t *testing.T) {
	f := newFixture(t)
	acts := &activities.Activities{
		Store:  f.store,
		Sender: activities.NewSender(egress.Policy{AllowHTTP: true, AllowCIDRs: loopback}, 5*time.Second),
	}
	rec, err := acts.Deliver(context.Background(), activities.DeliverInput{Event: f.event, SubscriptionID: f.subscribe(t, "/ok", true), Attempt: 1})
	if err != nil || !rec.Succeeded() {
		t.Fatalf("Deliver = %+v, %v; want delivered", rec, err)
	}
}

func TestAttemptResult_NamesEachKindOfAttempt(t *testing.T) {
	tests := []struct {
		rec  delivery.Attempt
		want string
	}{
		{delivery.Attempt{StatusCode: 204}, activities.ResultSuccess},
		{delivery.Attempt{Skipped: true, Error: "subscription is disabled"}, activities.ResultSkipped},
		{delivery.Attempt{StatusCode: 503, Class: delivery.ClassServerError}, "ServerError"},
		{delivery.Attempt{Class: delivery.ClassTimeout}, "Timeout"},
		// Unclassified and not a 2xx: kept inside the fixed label set.
		{delivery.Attempt{StatusCode: 101}, "InternalError"},
	}
	for _, tt := range tests {
		if got := activities.AttemptResult(tt.rec); got != tt.want {
			t.Errorf("AttemptResult(%+v) = %q, want %q", tt.rec, got, tt.want)
		}
	}
}
