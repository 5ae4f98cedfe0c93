// Package metrics exports what a userhooks process measures to Prometheus:
// the Temporal SDK's own metrics (task latencies, pollers, workflow and
// activity counts) and the delivery metrics that DeliveryWorkflow and the
// Deliver activity emit through the SDK's metrics handler, plus gauges that
// a Collector computes from Temporal visibility and the subscription store.
//
// Everything goes through one tally scope (go.temporal.io/sdk/contrib/tally)
// and tally's Prometheus reporter into a registry of its own, served by
// Metrics.Handler at /metrics.
//
// Names as Prometheus shows them: counters end in _total and timers in
// _seconds (the contrib package's naming scope adds the suffix when a name
// lacks it); every timer is a histogram with DefaultTimerBuckets. Metric
// and label names keep only [a-zA-Z0-9_]; label values keep every printable
// ASCII character, so event_type reads "user.created", not "user_created".
package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.uber.org/zap"
)

// DefaultTimerBuckets are the histogram buckets, in seconds, of every timer
// exported: from 5 ms to 30 s, which spans a webhook receiver that answers
// at once up to one that outlasts the default 15 s request timeout. The
// SDK's own timers (task latencies) share them; anything slower lands in
// the +Inf bucket.
var DefaultTimerBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30}

// DefaultReportInterval is how often counters and gauges move from the
// tally scope into the Prometheus registry. Timers are recorded at once.
const DefaultReportInterval = time.Second

// Options configures New. The zero value is usable.
type Options struct {
	// ReportInterval is how often buffered counters and gauges are
	// published to the registry; DefaultReportInterval when zero. A scrape
	// sees a counter at most this late.
	ReportInterval time.Duration
	// TimerBuckets overrides DefaultTimerBuckets; they must be increasing.
	TimerBuckets []float64
	// Logger receives conflicts the Prometheus registry reports (a metric
	// name used with two different label sets: that series is dropped),
	// each distinct one once. Nil means no logs.
	Logger *zap.Logger
}

// Metrics is a Prometheus registry fed by a tally scope. Build it with New
// and Close it when the process stops. It is safe for concurrent use.
type Metrics struct {
	registry *prom.Registry
	scope    tally.Scope
	closer   io.Closer
	handler  client.MetricsHandler
}

// sanitizeOptions keep metric and label names to what Prometheus accepts
// and label values to printable ASCII, so that values such as event types
// ("user.created") and task queue names read as they were written.
var sanitizeOptions = tally.SanitizeOptions{
	NameCharacters:       tally.ValidCharacters{Ranges: tally.AlphanumericRange, Characters: tally.UnderscoreCharacters},
	KeyCharacters:        tally.ValidCharacters{Ranges: tally.AlphanumericRange, Characters: tally.UnderscoreCharacters},
	ValueCharacters:      tally.ValidCharacters{Ranges: []tally.SanitizeRange{{' ', '~'}}},
	ReplacementCharacter: tally.DefaultReplacementCharacter,
}

// New returns Metrics with a fresh registry holding the Go runtime and
// process collectors. It starts a goroutine that publishes buffered values
// every ReportInterval until Close.
func New(opts Options) (*Metrics, error) {
	interval := opts.ReportInterval
	if interval == 0 {
		interval = DefaultReportInterval
	}
	if interval < 0 {
		return nil, fmt.Errorf("metrics: report interval %s must be positive", interval)
	}
	buckets := opts.TimerBuckets
	if buckets == nil {
		buckets = DefaultTimerBuckets
	}
	if err := checkBuckets(buckets); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}

	reg := prom.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("metrics: register Go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("metrics: register process collector: %w", err)
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		Gatherer:                reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: buckets,
		// The reporter panics on a registration conflict by default; a
		// metric that cannot be exported must not stop deliveries.
		OnRegisterError: onceLogger(log),
	})
	root, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sanitizeOptions,
		// tally's own series-count gauges would only add noise to /metrics.
		OmitCardinalityMetrics: true,
	}, interval)
	scope := sdktally.NewPrometheusNamingScope(root)
	return &Metrics{
		registry: reg,
		scope:    scope,
		closer:   closer,
		handler:  sdktally.NewMetricsHandler(scope),
	}, nil
}

func checkBuckets(b []float64) error {
	if len(b) == 0 {
		return errors.New("metrics: timer buckets are empty")
	}
	for i := range b {
		if b[i] <= 0 || (i > 0 && b[i] <= b[i-1]) {
			return fmt.Errorf("metrics: timer buckets %v must be positive and increasing", b)
		}
	}
	return nil
}

// onceLogger logs each distinct registration error once: the reporter
// reports a conflict every time a scope allocates the metric.
func onceLogger(log *zap.Logger) func(error) {
	var seen sync.Map
	return func(err error) {
		if _, dup := seen.LoadOrStore(err.Error(), true); !dup {
			log.Warn("metric dropped: Prometheus registry refused it", zap.Error(err))
		}
	}
}

// SDKHandler is the handler to set as client.Options.MetricsHandler: the
// SDK's metrics, and what workflows and activities emit through
// workflow.GetMetricsHandler and activity.GetMetricsHandler, then reach
// the registry. The Collector takes it too.
func (m *Metrics) SDKHandler() client.MetricsHandler { return m.handler }

// ClientOption sets the SDK handler on client options, for
// temporalconn.Config.Dial.
func (m *Metrics) ClientOption() func(*client.Options) {
	return func(o *client.Options) { o.MetricsHandler = m.handler }
}

// Handler serves the registry in the Prometheus text format; mount it at
// /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the Prometheus registry behind Handler, for collectors of
// the process's own (an HTTP server's request metrics, say).
func (m *Metrics) Registry() *prom.Registry { return m.registry }

// Close publishes buffered values a last time and stops the reporting
// goroutine. The registry can still be scraped afterwards; later updates
// are not published. It is idempotent.
func (m *Metrics) Close() error {
	if err := m.closer.Close(); err != nil {
		return fmt.Errorf("metrics: close tally scope: %w", err)
	}
	return nil
}
