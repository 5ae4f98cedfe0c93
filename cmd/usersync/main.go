// Command usersync runs the reference receiver (package
// receiver/usersync): it verifies userhooks deliveries and mirrors the
// account's users into a SQLite file.
//
//	usersync -addr 127.0.0.1:9100 -db usersync.db -secret whsec_…
//
// Point a subscription at http://<addr><path> (path /webhooks by default).
// Secrets come from -secret, which may be repeated during a rotation, or,
// when no -secret is given, from USERSYNC_SECRETS (several, separated by
// spaces or commas) and USERSYNC_SECRET. Prefer the environment: command
// lines are visible to other users of the machine.
//
// It logs one JSON line per request (applied, ignored, rejected, failed)
// with the event and user IDs, never other personal data or a secret.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/userhooks/userhooks/receiver/usersync"
	"github.com/userhooks/userhooks/signature"
)

// Environment variables that hold secrets. They have no flag default shown
// in -help, so their values never reach a terminal.
const (
	envSecret  = "USERSYNC_SECRET"
	envSecrets = "USERSYNC_SECRETS"
)

// config is everything the command needs.
type config struct {
	addr      string
	db        string
	path      string
	secrets   []signature.Secret
	onDelete  usersync.DeleteMode
	tolerance time.Duration
	logLevel  string
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "usersync:", err)
		os.Exit(2)
	}
	log, err := newLogger(cfg.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "usersync:", err)
		os.Exit(2)
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do on exit
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", cfg.addr)
	if err == nil {
		err = serve(ctx, cfg, ln, log)
	}
	if err != nil {
		log.Error("usersync stopped", zap.Error(err))
		os.Exit(1)
	}
}

// parseConfig reads flags and the environment. Errors never quote a secret.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	cfg := config{}
	fs := flag.NewFlagSet("usersync", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:9100", "address to listen on")
	fs.StringVar(&cfg.db, "db", "usersync.db", "SQLite file of the mirror (created, mode 0600, if missing)")
	fs.StringVar(&cfg.path, "path", "/webhooks", "URL path that receives deliveries")
	var rawSecrets []string
	// Collected as text and parsed below: the flag package would quote a
	// malformed value, a secret with a typo, in its error.
	fs.Func("secret", "webhook secret whsec_…; repeat during a rotation (default: "+envSecrets+", "+envSecret+")", func(s string) error {
		rawSecrets = append(rawSecrets, s)
		return nil
	})
	onDelete := fs.String("on-delete", "deactivate", "what user.deleted does: deactivate (keep the account, inactive) or erase (wipe its profile)")
	fs.DurationVar(&cfg.tolerance, "tolerance", signature.DefaultTolerance, "how far webhook-timestamp may be from this clock")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !strings.HasPrefix(cfg.path, "/") {
		return cfg, fmt.Errorf("-path %q must start with /", cfg.path)
	}
	if cfg.tolerance <= 0 {
		return cfg, fmt.Errorf("-tolerance %s must be positive", cfg.tolerance)
	}
	var err error
	if cfg.onDelete, err = usersync.ParseDeleteMode(*onDelete); err != nil {
		return cfg, fmt.Errorf("-on-delete: %w", err)
	}
	source := "-secret"
	if len(rawSecrets) == 0 {
		source = envSecrets + "/" + envSecret
		rawSecrets = strings.FieldsFunc(getenv(envSecrets)+" "+getenv(envSecret), func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\n'
		})
	}
	if len(rawSecrets) == 0 {
		return cfg, fmt.Errorf("no secret: give -secret whsec_… or set %s", envSecret)
	}
	for i, raw := range rawSecrets {
		s, err := signature.ParseSecret(raw)
		if err != nil {
			return cfg, fmt.Errorf("%s: secret %d of %d: %w", source, i+1, len(rawSecrets), err)
		}
		cfg.secrets = append(cfg.secrets, s)
	}
	return cfg, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}

// shutdownGrace is how long requests in flight may finish on SIGTERM.
const shutdownGrace = 10 * time.Second

// serve runs the mirror on ln until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg config, ln net.Listener, log *zap.Logger) error {
	m, err := usersync.Open(cfg.db, usersync.Options{
		Secrets:   cfg.secrets,
		Tolerance: cfg.tolerance,
		OnDelete:  cfg.onDelete,
		OnResult:  usersync.LogResults(log),
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer m.Close()
	mux := http.NewServeMux()
	mux.Handle("POST "+cfg.path, m)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}

	log.Info("usersync listening", zap.String("url", "http://"+ln.Addr().String()+cfg.path),
		zap.String("db", cfg.db), zap.Int("secrets", len(cfg.secrets)), zap.Stringer("on_delete", cfg.onDelete))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	log.Info("usersync stopped")
	return nil
}
