// Command userhooks-api serves the userhooks HTTP API (/v1: publishing,
// subscriptions, the delivery log and its operations) against a Temporal
// cluster and the subscription store that the workers use. Run as many
// replicas as you like; give them the same USERHOOKS_API_PAGE_TOKEN_KEY.
//
// Configuration comes from flags, which default to environment variables
// (see -help). `worker dev` serves the same API locally.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/userhooks/userhooks/apiserver"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/ops"
	"github.com/userhooks/userhooks/subscription/stores"
	"github.com/userhooks/userhooks/temporalconn"
	"github.com/userhooks/userhooks/workflows"
)

type config struct {
	temporal      temporalconn.Config
	store         string
	addr          string
	metricsAddr   string
	allowCIDRs    string
	allowHTTP     bool
	logLevel      string
	shutdownGrace time.Duration
	pageTokenKey  []byte
	policy        egress.Policy
}

// envPageTokenKey holds the key that signs delivery-list page tokens
// (base64 of 32 bytes or more); it has no flag, as it is a secret.
const envPageTokenKey = "USERHOOKS_API_PAGE_TOKEN_KEY"

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "userhooks-api:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "userhooks-api:", err)
		os.Exit(1)
	}
}

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("userhooks-api", flag.ContinueOnError)
	cfg := config{temporal: temporalconn.FromEnv(workflows.TaskQueue)}
	cfg.temporal.RegisterFlags(fs)
	fs.StringVar(&cfg.store, "store", os.Getenv("USERHOOKS_STORE"), "subscription store, shared with the workers: "+stores.Supported+" (env USERHOOKS_STORE)")
	fs.StringVar(&cfg.addr, "addr", getenv("USERHOOKS_API_ADDR", ":8000"), "address the API listens on (env USERHOOKS_API_ADDR)")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", getenv("USERHOOKS_METRICS_ADDR", ":9091"), "serve /metrics, /livez and /readyz on this address; empty turns them off (env USERHOOKS_METRICS_ADDR)")
	fs.StringVar(&cfg.allowCIDRs, "allow-cidrs", os.Getenv("USERHOOKS_ALLOW_CIDRS"), "CIDRs that subscription URLs may point to although private; use the workers' value (env USERHOOKS_ALLOW_CIDRS)")
	fs.BoolVar(&cfg.allowHTTP, "allow-http", os.Getenv("USERHOOKS_ALLOW_HTTP") == "true", "accept plain-http subscription URLs; use the workers' value (env USERHOOKS_ALLOW_HTTP=true)")
	fs.StringVar(&cfg.logLevel, "log-level", getenv("USERHOOKS_LOG_LEVEL", "info"), "debug, info, warn or error (env USERHOOKS_LOG_LEVEL)")
	fs.DurationVar(&cfg.shutdownGrace, "shutdown-grace", 15*time.Second, "on SIGTERM, how long running requests may finish")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.store == "" {
		return cfg, errors.New("-store (or USERHOOKS_STORE) is required")
	}
	var err error
	if cfg.policy, err = egress.ParsePolicy(cfg.allowCIDRs, cfg.allowHTTP); err != nil {
		return cfg, fmt.Errorf("-allow-cidrs: %w", err)
	}
	if _, err := cfg.temporal.Keyring(); err != nil {
		return cfg, err
	}
	if v := os.Getenv(envPageTokenKey); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) < 32 {
			return cfg, fmt.Errorf("%s must be the base64 of at least 32 random bytes", envPageTokenKey)
		}
		cfg.pageTokenKey = key
	}
	return cfg, nil
}

func run(ctx context.Context, cfg config) error {
	log, err := temporalconn.NewZapLogger(cfg.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do on exit
	m, err := metrics.New(metrics.Options{Logger: log})
	if err != nil {
		return err
	}
	defer m.Close()
	c, err := cfg.temporal.Dial(log, m.ClientOption())
	if err != nil {
		return err
	}
	defer c.Close()
	dc, err := cfg.temporal.DataConverter()
	if err != nil {
		return err
	}
	store, err := stores.Open(ctx, cfg.store)
	if err != nil {
		return err
	}
	defer store.Close()
	keys, err := apiserver.OpenKeys(ctx, cfg.store)
	if err != nil {
		return err
	}
	defer keys.Close()
	if cfg.metricsAddr != "" {
		opsSrv, err := ops.Start(ctx, cfg.metricsAddr, cfg.temporal.Namespace, c, store, m, log)
		if err != nil {
			return err
		}
		defer opsSrv.Close()
	}
	if cfg.pageTokenKey == nil {
		log.Warn("no " + envPageTokenKey + ": delivery-list page tokens work only with this replica")
	}
	h, err := apiserver.New(apiserver.Options{
		Client: c, DataConverter: dc, Namespace: cfg.temporal.Namespace, TaskQueue: cfg.temporal.TaskQueue,
		Subscriptions: store, Keys: keys, Policy: cfg.policy, PageTokenKey: cfg.pageTokenKey, Logger: log,
	})
	if err != nil {
		return err
	}
	srv, err := apiserver.Start(cfg.addr, h)
	if err != nil {
		return err
	}
	log.Info("API started", zap.String("addr", srv.Addr()), zap.String("temporal", cfg.temporal.Address),
		zap.String("namespace", cfg.temporal.Namespace), zap.String("store", stores.Redacted(cfg.store)))
	select {
	case err := <-srv.Done():
		return err
	case <-ctx.Done():
	}
	log.Info("stopping API", zap.Duration("grace", cfg.shutdownGrace))
	return srv.Shutdown(cfg.shutdownGrace)
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
