// Package ops serves what operators' tooling scrapes and probes on a
// listener of its own — Prometheus /metrics, /livez and /readyz — and keeps
// the system-wide gauges fresh. The worker and the API server both run it.
package ops

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/health"
	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/subscription"
)

// Server is a running operations listener.
type Server struct {
	srv  *http.Server
	addr string
}

// Start serves /metrics from m and the probes (Temporal through c, the
// store) on addr, and runs the collector of the system-wide gauges until
// ctx ends. It is separate from the API and the codec server, which
// authenticate their callers.
func Start(ctx context.Context, addr, namespace string, c client.Client, store subscription.Store, m *metrics.Metrics, log *zap.Logger) (*Server, error) {
	probes, err := health.New(0, log, health.Temporal(c), health.Store(store))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	probes.Register(mux)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second},
		addr: ln.Addr().String(),
	}
	go s.srv.Serve(ln) //nolint:errcheck // ends with Close
	col := &metrics.Collector{
		Handler:       m.SDKHandler(),
		Workflows:     c,
		Namespace:     namespace,
		Subscriptions: store,
		Logger:        log,
	}
	go col.Run(ctx) //nolint:errcheck // returns nil when ctx ends
	log.Info("metrics and health endpoints started", zap.String("addr", s.addr))
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.addr }

// Close stops the listener. It is safe on a nil Server.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	return s.srv.Close()
}
