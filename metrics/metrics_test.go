package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/workflows"
)

// scrape GETs /metrics from a real HTTP server around m.Handler and parses
// the text exposition.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series renders a metric's labels as "k=v,..." sorted, keeping only the
// labels named (all when none are).
func series(m *dto.Metric, only ...string) string {
	var kv []string
	for _, l := range m.GetLabel() {
		if len(only) == 0 || slices.Contains(only, l.GetName()) {
			kv = append(kv, l.GetName()+"="+l.GetValue())
		}
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// values maps each series of a family (labels restricted to only) to its
// value: a counter's or gauge's value, a histogram's sample count.
func values(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, only ...string) map[string]float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Errorf("/metrics has no %s", name)
		return nil
	}
	if f.GetType() != typ {
		t.Errorf("%s is a %s, want a %s", name, f.GetType(), typ)
	}
	got := map[string]float64{}
	for _, m := range f.GetMetric() {
		switch typ {
		case dto.MetricType_COUNTER:
			got[series(m, only...)] += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			got[series(m, only...)] += m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			got[series(m, only...)] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return got
}

func equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestMetrics_DeliveryMetricsReachPrometheusUnderTheirDocumentedNames runs
// a real DeliveryWorkflow and Deliver activity (the SDK's test environment,
// a real receiver, a real SQLite store) with the SDK handler of a Metrics,
// then scrapes /metrics.
func TestMetrics_DeliveryMetricsReachPrometheusUnderTheirDocumentedNames(t *testing.T) {
	m, err := metrics.New(metrics.Options{ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	// The receiver fails once, then accepts.
	var requests atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	store, err := subscription.OpenSQLite(filepath.Join(t.TempDir(), "subs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	sub := subscription.Subscription{AccountID: "acme", URL: rcv.URL + "/hooks", Enabled: true, Secrets: []subscription.Secret{{Key: key}}}
	if err := store.Create(context.Background(), &sub); err != nil {
		t.Fatal(err)
	}
	ev, err := event.Prepare(event.Event{Type: event.TypeUserCreated, AccountID: "acme",
		Data: event.Data{User: event.User{ID: "u_1", Email: "zoe@example.com"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	suite.SetMetricsHandler(m.SDKHandler())
	env := suite.NewTestWorkflowEnvironment()
	workflows.Register(env, &activities.Activities{
		Store:  store,
		Sender: activities.NewSender(egress.Policy{AllowHTTP: true, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, 5*time.Second),
	})
	env.ExecuteWorkflow(workflows.DeliveryWorkflow, workflows.DeliveryInput{
		Event: ev, SubscriptionID: sub.ID,
		Schedule: &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Minute)}},
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("delivery workflow: %v", err)
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("receiver got %d requests, want 2", n)
	}
	// Counters are buffered in the tally scope until a report; Close makes
	// the last one.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	fams := scrape(t, m)

	if got, want := values(t, fams, "userhooks_deliveries_total", dto.MetricType_COUNTER, "outcome", "event_type"),
		map[string]float64{"event_type=user.created,outcome=delivered": 1}; !equal(got, want) {
		t.Errorf("userhooks_deliveries_total = %v, want %v", got, want)
	}
	if got, want := values(t, fams, "userhooks_delivery_attempts_total", dto.MetricType_COUNTER, "result", "event_type"),
		map[string]float64{"event_type=user.created,result=ServerError": 1, "event_type=user.created,result=success": 1}; !equal(got, want) {
		t.Errorf("userhooks_delivery_attempts_total = %v, want %v", got, want)
	}
	if got, want := values(t, fams, "userhooks_attempt_duration_seconds", dto.MetricType_HISTOGRAM, "result"),
		map[string]float64{"result=ServerError": 1, "result=success": 1}; !equal(got, want) {
		t.Errorf("userhooks_attempt_duration_seconds sample counts = %v, want %v", got, want)
	}
	if f := fams["userhooks_attempt_duration_seconds"]; f != nil && len(f.GetMetric()) > 0 {
		var bounds []float64
		for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), +1) {
				bounds = append(bounds, b.GetUpperBound())
			}
		}
		if !slices.Equal(bounds, metrics.DefaultTimerBuckets) {
			t.Errorf("attempt duration buckets = %v, want %v", bounds, metrics.DefaultTimerBuckets)
		}
	}
	// The Go runtime's metrics share the registry. (The SDK's test
	// environment emits none of the SDK's own metrics: the collector test
	// shows a real client's reaching /metrics.)
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("/metrics has no go_goroutines")
	}
}

func TestMetrics_SDKTimersAreSecondsHistograms(t *testing.T) {
	m, err := metrics.New(metrics.Options{ReportInterval: time.Hour, TimerBuckets: []float64{0.1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// A name without the unit gets _seconds, as the SDK's timers do.
	m.SDKHandler().WithTags(map[string]string{"task-queue": "hooks/eu-1"}).Timer("demo_latency").Record(300 * time.Millisecond)
	m.SDKHandler().Counter("demo_events").Inc(2)
	m.Close()

	fams := scrape(t, m)
	f, ok := fams["demo_latency_seconds"]
	if !ok || f.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("demo_latency_seconds = %v, want a histogram", f)
	}
	h := f.GetMetric()[0]
	if got := series(h); got != "task_queue=hooks/eu-1" {
		t.Errorf("labels = %s, want the key sanitized and the value kept: task_queue=hooks/eu-1", got)
	}
	var cum []uint64
	for _, b := range h.GetHistogram().GetBucket() {
		cum = append(cum, b.GetCumulativeCount())
	}
	// Buckets le=0.1, le=1 and +Inf.
	if !slices.Equal(cum, []uint64{0, 1, 1}) || h.GetHistogram().GetSampleSum() != 0.3 {
		t.Errorf("cumulative buckets %v sum %v, want [0 1 1] and 0.3", cum, h.GetHistogram().GetSampleSum())
	}
	if got := values(t, fams, "demo_events_total", dto.MetricType_COUNTER); !equal(got, map[string]float64{"": 2}) {
		t.Errorf("demo_events_total = %v, want 2", got)
	}
}

func TestMetrics_LabelConflictDropsTheSeriesAndLogsOnceInsteadOfPanicking(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	m, err := metrics.New(metrics.Options{ReportInterval: time.Hour, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.SDKHandler()
	h.WithTags(map[string]string{"a": "1"}).Timer("conflict").Record(time.Millisecond)
	for _, v := range []string{"1", "2"} { // two scopes with the same conflicting label set
		h.WithTags(map[string]string{"b": v}).Timer("conflict").Record(time.Millisecond)
	}

	if n := logs.FilterMessageSnippet("metric dropped").Len(); n != 1 {
		t.Errorf("logged the conflict %d times, want once", n)
	}
	fams := scrape(t, m)
	if got := values(t, fams, "conflict_seconds", dto.MetricType_HISTOGRAM); !equal(got, map[string]float64{"a=1": 1}) {
		t.Errorf("conflict_seconds = %v, want only the first label set", got)
	}
}

func TestNew_RejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts metrics.Options
	}{
		{"negative interval", metrics.Options{ReportInterval: -time.Second}},
		{"buckets not increasing", metrics.Options{TimerBuckets: []float64{1, 0.5}}},
		{"zero bucket", metrics.Options{TimerBuckets: []float64{0, 1}}},
		{"empty buckets", metrics.Options{TimerBuckets: []float64{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := metrics.New(tt.opts)
			if err == nil {
				m.Close()
				t.Fatal("New accepted bad options")
			}
		})
	}
}
