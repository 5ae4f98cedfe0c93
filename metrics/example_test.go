package metrics_test

import (
	"context"
	"net/http"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/health"
	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/subscription"
)

// How a worker process wires metrics and probes: the SDK handler goes into
// the client options, one HTTP listener serves /metrics, /livez and /readyz,
// and a Collector keeps the system-wide gauges fresh. (Compiled, not run:
// it needs a Temporal server.)
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := zap.NewNop()

	m, err := metrics.New(metrics.Options{Logger: log})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	c, err := client.Dial(client.Options{HostPort: "localhost:7233", Namespace: "default", MetricsHandler: m.SDKHandler()})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	store, err := subscription.OpenSQLite("userhooks.db")
	if err != nil {
		panic(err)
	}
	defer store.Close()

	probes, err := health.New(0, log, health.Temporal(c), health.Store(store))
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	probes.Register(mux)
	go http.ListenAndServe(":9090", mux) //nolint:errcheck // example

	col := &metrics.Collector{
		Handler:       m.SDKHandler(),
		Workflows:     c,
		Subscriptions: store,
		Logger:        log,
	}
	go col.Run(ctx) //nolint:errcheck // returns nil when ctx ends

	// ... start the worker with c, then wait for ctx.
	<-ctx.Done()
}
