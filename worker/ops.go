package main

import (
	"context"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/ops"
	"github.com/userhooks/userhooks/subscription"
)

// startOps starts the operations listener on cfg.metricsAddr; nil when it
// is empty.
func startOps(ctx context.Context, cfg config, c client.Client, store subscription.Store, m *metrics.Metrics, log *zap.Logger) (*ops.Server, error) {
	if cfg.metricsAddr == "" {
		return nil, nil
	}
	return ops.Start(ctx, cfg.metricsAddr, cfg.temporal.Namespace, c, store, m, log)
}
