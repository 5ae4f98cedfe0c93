package main

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

// opsServer serves what operators' tooling scrapes and probes: /metrics,
// /livez and /readyz. It is separate from the codec server, which guards
// decrypted payloads behind a token.
type opsServer struct {
	srv  *http.Server
	addr string
}

// startOps starts the operations listener on cfg.metricsAddr (nothing when
// it is empty) and the collector of the system-wide gauges, both until ctx
// ends.
func startOps(ctx context.Context, cfg config, c client.Client, store subscription.Store, m *metrics.Metrics, log *zap.Logger) (*opsServer, error) {
	if cfg.metricsAddr == "" {
		return nil, nil
	}
	probes, err := health.New(0, log, health.Temporal(c), health.Store(store))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	probes.Register(mux)
	ln, err := net.Listen("tcp", cfg.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	s := &opsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second},
		addr: ln.Addr().String(),
	}
	go s.srv.Serve(ln) //nolint:errcheck // ends with Close
	col := &metrics.Collector{
		Handler:       m.SDKHandler(),
		Workflows:     c,
		Namespace:     cfg.temporal.Namespace,
		Subscriptions: store,
		Logger:        log,
	}
	go col.Run(ctx) //nolint:errcheck // returns nil when ctx ends
	log.Info("metrics and health endpoints started", zap.String("addr", s.addr))
	return s, nil
}

// Close stops the listener.
func (s *opsServer) Close() error {
	if s == nil {
		return nil
	}
	return s.srv.Close()
}
