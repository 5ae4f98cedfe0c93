// Command worker runs a userhooks worker: it polls the userhooks task queue
// and executes UserEventWorkflow, DeliveryWorkflow and their activities.
// Run as many as you like against one Temporal cluster; they share the work.
//
//	worker [flags]        run a worker against an existing Temporal cluster
//	worker dev [flags]    run everything locally: a Temporal dev server with
//	                      the Web UI, a worker, and a demo receiver
//
// Configuration comes from flags, which default to environment variables
// (see -help).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/subscription/stores"
	"github.com/userhooks/userhooks/temporalconn"
	"github.com/userhooks/userhooks/workflows"
)

// config is everything a worker process needs.
type config struct {
	temporal       temporalconn.Config
	store          string
	allowCIDRs     string
	allowHTTP      bool
	requestTimeout time.Duration
	registerAttrs  bool
	logLevel       string
	shutdownGrace  time.Duration
	// codecServerAddr, when set, is where the worker serves the codec
	// server that lets the Web UI and CLI decrypt payloads;
	// codecServerOrigins are the Web UI origins allowed to call it.
	codecServerAddr    string
	codecServerOrigins string
	// metricsAddr serves /metrics, /livez and /readyz; empty turns them off.
	metricsAddr string
	// disableAfter is how long an endpoint may fail, with no success,
	// before a delivery that uses up its schedule disables its
	// subscription; 0 turns automatic disabling off.
	disableAfter time.Duration
	// operatorURL receives the subscription.disabled events, signed with
	// the secret of USERHOOKS_OPERATOR_WEBHOOK_SECRET; operator is the two
	// parsed (nil: the events are only logged).
	operatorURL string
	operator    *activities.OperatorWebhook
	// endpointMaxInFlight is the limit on requests in flight to one
	// endpoint for subscriptions that set none; 0 means no limit.
	endpointMaxInFlight int
	// stickyCache is the size of the SDK's workflow cache, for the whole
	// process.
	stickyCache int
	// Set by the dev command only.
	dev devConfig
}

func main() {
	args := os.Args[1:]
	dev := len(args) > 0 && args[0] == "dev"
	if dev {
		args = args[1:]
	}
	cfg, err := parseConfig(args, dev)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dev {
		err = runDev(ctx, cfg)
	} else {
		err = run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func parseConfig(args []string, dev bool) (config, error) {
	name := "worker"
	if dev {
		name = "worker dev"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfg := config{temporal: temporalconn.FromEnv(workflows.TaskQueue)}
	cfg.temporal.RegisterFlags(fs)
	fs.StringVar(&cfg.store, "store", getenv("USERHOOKS_STORE", defaultStore(dev)), "subscription store: "+stores.Supported+" (env USERHOOKS_STORE; put a DSN with a password in the environment, not on the command line)")
	fs.StringVar(&cfg.allowCIDRs, "allow-cidrs", os.Getenv("USERHOOKS_ALLOW_CIDRS"), "comma-separated CIDRs that deliveries may reach although private, e.g. 127.0.0.0/8 for local receivers (env USERHOOKS_ALLOW_CIDRS)")
	fs.BoolVar(&cfg.allowHTTP, "allow-http", os.Getenv("USERHOOKS_ALLOW_HTTP") == "true", "allow plain-http receiver URLs (env USERHOOKS_ALLOW_HTTP=true)")
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", activities.DefaultRequestTimeout, "timeout of one delivery request")
	fs.BoolVar(&cfg.registerAttrs, "register-search-attributes", true, "add userhooks' search attributes to the namespace at start if missing")
	fs.StringVar(&cfg.logLevel, "log-level", getenv("USERHOOKS_LOG_LEVEL", "info"), "debug, info, warn or error (env USERHOOKS_LOG_LEVEL)")
	fs.DurationVar(&cfg.shutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long running activities may finish before the worker exits")
	fs.StringVar(&cfg.codecServerAddr, "codec-server-addr", getenv(envCodecServerAddr, defaultCodecServerAddr(dev)), "serve the codec server (Web UI and CLI decrypt payloads through it) on this host:port; it needs a token in "+envCodecServerToken+" (env "+envCodecServerAddr+")")
	fs.StringVar(&cfg.codecServerOrigins, "codec-server-origins", os.Getenv(envCodecServerOrigins), "comma-separated Web UI origins allowed to call the codec server, e.g. https://temporal-ui.example.com (env "+envCodecServerOrigins+")")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", getenv("USERHOOKS_METRICS_ADDR", defaultMetricsAddr(dev)), "serve Prometheus /metrics and the /livez and /readyz probes on this host:port; empty turns them off (env USERHOOKS_METRICS_ADDR)")
	disableAfter, disableAfterErr := durationEnv(envDisableAfter, activities.DefaultDisableAfter)
	fs.DurationVar(&cfg.disableAfter, "disable-after", disableAfter, "disable a subscription whose endpoint has been failing this long, with no successful delivery, once a delivery to it uses up its retry schedule; 0 turns automatic disabling off (410 Gone still disables) (env "+envDisableAfter+")")
	fs.StringVar(&cfg.operatorURL, "operator-webhook-url", os.Getenv(envOperatorURL), "send subscription.disabled events to this URL, signed (Standard Webhooks) with the whsec_ secret in "+envOperatorSecret+"; without it they are only logged (env "+envOperatorURL+")")
	maxInFlight, maxInFlightErr := intEnv(envEndpointMaxInFlight, 0)
	fs.IntVar(&cfg.endpointMaxInFlight, "endpoint-max-in-flight", maxInFlight, "at most this many requests in flight to one endpoint at once, across all workers, for subscriptions that set no max_in_flight of their own; 0 means no limit (env "+envEndpointMaxInFlight+"; give every worker the same value)")
	stickyCache, stickyCacheErr := intEnv(envStickyCache, defaultStickyCache)
	fs.IntVar(&cfg.stickyCache, "sticky-cache", stickyCache, "workflow executions the worker keeps in memory between their tasks; more saves replays, fewer saves memory (env "+envStickyCache+")")
	if dev {
		cfg.dev.registerFlags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (the only subcommand is dev)", fs.Arg(0))
	}
	if cfg.store == "" {
		return cfg, errors.New("-store (or USERHOOKS_STORE) is required")
	}
	if dev {
		cfg.allowDemoReceiver()
	}
	policy, err := cfg.policy()
	if err != nil {
		return cfg, err
	}
	if disableAfterErr != nil {
		return cfg, disableAfterErr
	}
	if cfg.disableAfter < 0 {
		return cfg, fmt.Errorf("-disable-after %s: want a positive duration, or 0 to turn automatic disabling off", cfg.disableAfter)
	}
	if maxInFlightErr != nil {
		return cfg, maxInFlightErr
	}
	if stickyCacheErr != nil {
		return cfg, stickyCacheErr
	}
	if err := checkStickyCache(cfg.stickyCache); err != nil {
		return cfg, err
	}
	if err := checkEndpointMaxInFlight(cfg.endpointMaxInFlight); err != nil {
		return cfg, err
	}
	// The dev command sends to its demo receiver unless told otherwise.
	if cfg.operator, err = activities.ParseOperatorWebhook(cfg.operatorURL, os.Getenv(envOperatorSecret), policy); err != nil {
		return cfg, fmt.Errorf("%w (-operator-webhook-url or %s, and the secret in %s)", err, envOperatorURL, envOperatorSecret)
	}
	if !dev {
		// The dev command makes its own keys when none are given.
		if _, err := cfg.temporal.Keyring(); err != nil {
			return cfg, err
		}
		if cfg.codecServerAddr != "" && os.Getenv(envCodecServerToken) == "" {
			return cfg, fmt.Errorf("-codec-server-addr needs a bearer token of at least %d characters in %s", payloadcodec.MinTokenLen, envCodecServerToken)
		}
	}
	return cfg, nil
}

// Environment of the codec server. The token has no flag: command lines are
// visible to other users.
const (
	envCodecServerAddr    = "USERHOOKS_CODEC_SERVER_ADDR"
	envCodecServerOrigins = "USERHOOKS_CODEC_SERVER_ORIGINS"
	envCodecServerToken   = "USERHOOKS_CODEC_SERVER_TOKEN"
)

// Environment of endpoint health. The operator webhook's secret has no
// flag, for the same reason as the codec server's token.
const (
	envDisableAfter   = "USERHOOKS_DISABLE_AFTER"
	envOperatorURL    = "USERHOOKS_OPERATOR_WEBHOOK_URL"
	envOperatorSecret = "USERHOOKS_OPERATOR_WEBHOOK_SECRET"
)

// durationEnv returns the duration in the environment variable name, or def
// when it is unset; the error names the variable.
func durationEnv(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: not a duration such as 120h or 30m (0 turns it off)", name, v)
	}
	return d, nil
}

// intEnv returns the default of an integer flag: the value of the
// environment variable name, or def when it is unset. The error names the
// variable.
func intEnv(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: not a whole number", name, v)
	}
	return n, nil
}

func defaultMetricsAddr(dev bool) string {
	if dev {
		return "127.0.0.1:9090"
	}
	return ":9090"
}

func defaultCodecServerAddr(dev bool) string {
	if dev {
		return "127.0.0.1:8081"
	}
	return ""
}

// startCodecServer serves the codec server when cfg asks for one: behind
// the token of USERHOOKS_CODEC_SERVER_TOKEN, or, for the dev command (whose
// Web UI cannot send a token), without one but to loopback peers only. It
// returns nil when no codec server is wanted.
func startCodecServer(cfg config, keys *payloadcodec.Keyring, devOrigins []string) (*payloadcodec.Server, error) {
	if cfg.codecServerAddr == "" || keys == nil {
		return nil, nil
	}
	opts := payloadcodec.HandlerOptions{
		Token:             os.Getenv(envCodecServerToken),
		AllowedNamespaces: []string{cfg.temporal.Namespace},
		AllowedOrigins:    append(splitList(cfg.codecServerOrigins), devOrigins...),
	}
	opts.AllowUnauthenticated = opts.Token == "" && devOrigins != nil
	h, err := payloadcodec.NewHTTPHandler(keys, opts)
	if err != nil {
		return nil, err
	}
	return payloadcodec.StartServer(cfg.codecServerAddr, h)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func defaultStore(dev bool) string {
	if dev {
		return ".userhooks/userhooks.db"
	}
	return ""
}

// allowDemoReceiver lets the dev command's deliveries and operator events
// reach its demo receiver, on loopback over plain http.
func (c *config) allowDemoReceiver() {
	c.allowCIDRs += ",127.0.0.0/8"
	c.allowHTTP = true
}

func (c config) policy() (egress.Policy, error) {
	p, err := egress.ParsePolicy(c.allowCIDRs, c.allowHTTP)
	if err != nil {
		return p, fmt.Errorf("-allow-cidrs: %w", err)
	}
	return p, nil
}

// run runs a worker until ctx ends, then stops it gracefully.
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
	store, err := stores.Open(ctx, cfg.store)
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info("subscription store opened", zap.String("store", stores.Redacted(cfg.store)))
	opsSrv, err := startOps(ctx, cfg, c, store, m, log)
	if err != nil {
		return err
	}
	defer opsSrv.Close()
	keys, err := cfg.temporal.Keyring()
	if err != nil {
		return err
	}
	codec, err := startCodecServer(cfg, keys, nil)
	if err != nil {
		return err
	}
	if codec != nil {
		defer codec.Close()
		log.Info("codec server started", zap.String("url", codec.URL()))
	}
	return runWorker(ctx, cfg, c, store, log)
}

// runWorker registers search attributes if asked, then runs a worker on c
// until ctx ends.
func runWorker(ctx context.Context, cfg config, c client.Client, store subscription.Store, log *zap.Logger) error {
	if cfg.registerAttrs {
		if err := workflows.RegisterSearchAttributes(ctx, c, cfg.temporal.Namespace); err != nil {
			return fmt.Errorf("%w (start with -register-search-attributes=false if an operator manages them)", err)
		}
	}
	policy, _ := cfg.policy() // validated by parseConfig
	acts := &activities.Activities{
		Store:        store,
		Sender:       activities.NewSender(policy, cfg.requestTimeout),
		Logger:       log,
		DisableAfter: cfg.disableAfter,
		Operator:     cfg.operator,
	}
	acts.DefaultMaxInFlight = cfg.endpointMaxInFlight
	operator := "none (subscription.disabled events are only logged)"
	if cfg.operator != nil {
		operator = activities.DisplayEndpoint(cfg.operator.URL)
	}
	log.Info("endpoint health", zap.Duration("disable_after", cfg.disableAfter), zap.Bool("automatic_disabling", cfg.disableAfter > 0),
		zap.String("operator_webhook", operator), zap.Int("endpoint_max_in_flight", cfg.endpointMaxInFlight))
	// The cache is the SDK's, one per process: set it before any worker.
	worker.SetStickyWorkflowCacheSize(cfg.stickyCache)
	w := worker.New(c, cfg.temporal.TaskQueue, worker.Options{WorkerStopTimeout: cfg.shutdownGrace})
	workflows.Register(w, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	log.Info("worker started", zap.String("temporal", cfg.temporal.Address), zap.String("namespace", cfg.temporal.Namespace),
		zap.String("task_queue", cfg.temporal.TaskQueue))
	<-ctx.Done()
	log.Info("stopping worker", zap.Duration("grace", cfg.shutdownGrace))
	w.Stop()
	return nil
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
