package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/apiserver"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/devserver"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/ops"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/receiver/usersync"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/subscription/stores"
	"github.com/userhooks/userhooks/temporalconn"
	"github.com/userhooks/userhooks/workflows"
)

// devConfig configures `worker dev`.
type devConfig struct {
	dataDir      string
	binDir       string
	port, uiPort int
	receiverAddr string
	account      string
	apiAddr      string
}

func (d *devConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&d.dataDir, "data-dir", ".userhooks", "where the dev server and the store keep their files")
	fs.StringVar(&d.binDir, "bin-dir", "bin", "where to find (or install) the temporal CLI")
	fs.IntVar(&d.port, "port", 7233, "Temporal frontend port")
	fs.IntVar(&d.uiPort, "ui-port", 8233, "Temporal Web UI port")
	fs.StringVar(&d.receiverAddr, "receiver-addr", "127.0.0.1:9000", "address of the demo receiver")
	fs.StringVar(&d.account, "demo-account", "acme", "account that the demo subscriptions and the API key belong to")
	fs.StringVar(&d.apiAddr, "api-addr", "127.0.0.1:8000", "address of the HTTP API")
}

// runDev runs a whole local installation: a Temporal dev server persisted
// to a file with its Web UI, a demo receiver with two subscriptions, and a
// worker, until ctx ends.
func runDev(ctx context.Context, cfg config) error {
	log, err := temporalconn.NewZapLogger(cfg.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do on exit
	d := cfg.dev
	if err := os.MkdirAll(d.dataDir, 0o755); err != nil {
		return err
	}
	serverLog, err := os.OpenFile(filepath.Join(d.dataDir, "temporal.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer serverLog.Close()

	// Payloads are encrypted in dev as in production, with a key made on
	// first run and kept beside the server's database, so that recorded
	// histories stay readable across restarts.
	if cfg.temporal.CodecKeys == "" && cfg.temporal.CodecKeysFile == "" && !cfg.temporal.PlaintextHistory {
		cfg.temporal.CodecKeysFile = filepath.Join(d.dataDir, "codec.keys")
		if _, err := payloadcodec.EnsureKeyringFile(cfg.temporal.CodecKeysFile, "dev1"); err != nil {
			return err
		}
	}
	keys, err := cfg.temporal.Keyring()
	if err != nil {
		return err
	}
	uiOrigins := []string{fmt.Sprintf("http://127.0.0.1:%d", d.uiPort), fmt.Sprintf("http://localhost:%d", d.uiPort)}
	codec, err := startCodecServer(cfg, keys, uiOrigins)
	if err != nil {
		return err
	}
	codecURL := ""
	if codec != nil {
		defer codec.Close()
		codecURL = codec.URL()
	}

	fmt.Println("Starting the Temporal dev server (log:", serverLog.Name()+")…")
	srv, err := devserver.Start(ctx, devserver.Options{
		UICodecEndpoint:  codecURL,
		BinDir:           d.binDir,
		DBFile:           filepath.Join(d.dataDir, "temporal.db"),
		Port:             d.port,
		UIPort:           d.uiPort,
		SearchAttributes: workflows.SearchAttributes(),
		Log:              serverLog,
		Progress:         os.Stdout,
	})
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg.temporal.Address = srv.Address

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

	// The demo receiver runs on loopback, which deliveries may not reach by
	// default: parseConfig allowed it, and plain http, for this process
	// (allowDemoReceiver).
	operatorSecret, err := ensureDevSecret(filepath.Join(d.dataDir, "operator-webhook-secret"))
	if err != nil {
		return fmt.Errorf("operator webhook secret: %w", err)
	}
	recv, err := startDemoReceiver(ctx, d, store, operatorSecret)
	if err != nil {
		return err
	}
	defer recv.Close()
	if cfg.operator == nil {
		cfg.operator = &activities.OperatorWebhook{URL: "http://" + d.receiverAddr + "/operator", Secret: operatorSecret}
	}

	apiSrv, apiKeyFile, err := startDevAPI(ctx, cfg, c, store, log)
	if err != nil {
		return err
	}
	defer apiSrv.Close()

	fmt.Printf(`
userhooks is running.
  Temporal Web UI   %s/namespaces/%s/workflows
  Temporal gRPC     %s
  Demo receiver     http://%s  (subscriptions of account %q: /webhooks, and /flaky which fails twice first)
  Operator webhook  %s
                    (subscribe http://%s/gone to watch a subscription being disabled)
  %s
  Metrics, health   %s
  HTTP API          http://%s/v1  (API key of account %q in %s; OpenAPI at /v1/openapi.json)

Publish an event from another shell:
  go run ./cmd/userhooks publish --account %s --type user.created --user-id u_42 --email ada@example.com
or through the API:
  curl -H "Authorization: Bearer $(cat %s)" -H 'Content-Type: application/json' \
    -d '{"type":"user.created","data":{"user":{"id":"u_43","email":"grace@example.com"}}}' http://%s/v1/events

Press Ctrl-C to stop.

`, srv.UIURL, cfg.temporal.Namespace, srv.Address, d.receiverAddr, d.account, operatorLine(cfg, d), d.receiverAddr, codecLine(codecURL, cfg.temporal), opsLine(opsSrv),
		apiSrv.Addr(), d.account, apiKeyFile, d.account, apiKeyFile, apiSrv.Addr())

	workerErr := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { workerErr <- runWorker(wctx, cfg, c, store, log) }()
	select {
	case err := <-workerErr:
		return err
	case <-srv.Done():
		cancel()
		<-workerErr
		return errors.New("the Temporal dev server stopped; see " + serverLog.Name())
	case <-ctx.Done():
		cancel()
		return <-workerErr
	}
}

// startDevAPI serves the HTTP API on d.apiAddr, with an API key of the demo
// account kept in .userhooks/api-key (made on first run, reused after).
func startDevAPI(ctx context.Context, cfg config, c client.Client, store subscription.Store, log *zap.Logger) (*devAPI, string, error) {
	d := cfg.dev
	keys, err := apiserver.OpenKeys(ctx, cfg.store)
	if err != nil {
		return nil, "", err
	}
	keyFile := filepath.Join(d.dataDir, "api-key")
	if err := ensureDevAPIKey(ctx, keys, keyFile, d.account); err != nil {
		keys.Close()
		return nil, "", err
	}
	dc, err := cfg.temporal.DataConverter()
	if err != nil {
		keys.Close()
		return nil, "", err
	}
	policy, _ := cfg.policy() // validated by parseConfig
	h, err := apiserver.New(apiserver.Options{
		Client: c, DataConverter: dc, Namespace: cfg.temporal.Namespace, TaskQueue: cfg.temporal.TaskQueue,
		Subscriptions: store, Keys: keys, Policy: policy, Logger: log,
	})
	if err != nil {
		keys.Close()
		return nil, "", err
	}
	srv, err := apiserver.Start(d.apiAddr, h)
	if err != nil {
		keys.Close()
		return nil, "", err
	}
	return &devAPI{srv, keys}, keyFile, nil
}

// devAPI is the API server of `worker dev` and the key store it owns.
type devAPI struct {
	*apiserver.Server
	keys io.Closer
}

// Close lets running requests finish, then closes the key store.
func (a *devAPI) Close() error {
	return errors.Join(a.Shutdown(5*time.Second), a.keys.Close())
}

// ensureDevAPIKey keeps a working API key of account in file: the one
// there if it still authenticates, else a new one.
func ensureDevAPIKey(ctx context.Context, keys apikey.Store, file, account string) error {
	if b, err := os.ReadFile(file); err == nil {
		if k, err := keys.Authenticate(ctx, strings.TrimSpace(string(b))); err == nil && k.AccountID == account {
			return nil
		}
	}
	_, plaintext, err := keys.Create(ctx, account, "worker dev")
	if err != nil {
		return fmt.Errorf("create the dev API key: %w", err)
	}
	if err := os.WriteFile(file, []byte(plaintext+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the dev API key: %w", err)
	}
	return nil
}

// operatorLine says where subscription.disabled events go, for the
// start-up banner.
func operatorLine(cfg config, d devConfig) string {
	if u := "http://" + d.receiverAddr + "/operator"; cfg.operator.URL == u {
		return u + "  (subscription.disabled events; secret in " + filepath.Join(d.dataDir, "operator-webhook-secret") + ")"
	}
	return activities.DisplayEndpoint(cfg.operator.URL) + "  (subscription.disabled events; -operator-webhook-url)"
}

// ensureDevSecret keeps a whsec_ secret in file (mode 0600): the one there
// if it parses, else a new one. It returns the secret.
func ensureDevSecret(file string) (signature.Secret, error) {
	if b, err := os.ReadFile(file); err == nil {
		if s, err := signature.ParseSecret(strings.TrimSpace(string(b))); err == nil {
			return s, nil
		}
	}
	s, err := signature.GenerateSecret()
	if err != nil {
		return s, err
	}
	if err := os.WriteFile(file, []byte(s.Reveal()+"\n"), 0o600); err != nil {
		return s, fmt.Errorf("write %s: %w", file, err)
	}
	// WriteFile keeps the mode of a file that exists.
	if err := os.Chmod(file, 0o600); err != nil {
		return s, err
	}
	return s, nil
}

// opsLine says where the metrics and probes are, for the start-up banner.
func opsLine(s *ops.Server) string {
	if s == nil {
		return "off (-metrics-addr)"
	}
	return fmt.Sprintf("http://%s/metrics, /livez, /readyz", s.Addr())
}

// codecLine says how payloads are stored, for the start-up banner.
func codecLine(codecURL string, tc temporalconn.Config) string {
	switch {
	case tc.PlaintextHistory:
		return "Payloads          stored unencrypted (-plaintext-history)"
	case codecURL == "":
		return "Codec server      off: the Web UI shows payloads encrypted"
	}
	return "Codec server      " + codecURL + "  (payloads are encrypted in history; the Web UI decrypts them through it)"
}

// demoReceiver is the demo endpoint of `worker dev`. /webhooks is the
// reference receiver (receiver/usersync): it verifies, de-duplicates and
// mirrors users into .userhooks/usersync.db. /flaky verifies and answers
// 503 to the first two attempts of every message, to show retries in the
// Web UI. /operator is the operator webhook: it verifies and prints the
// subscription.disabled events. /gone answers 410 Gone, which disables a
// subscription to it.
type demoReceiver struct {
	mirror   *usersync.Mirror
	flaky    signature.Verifier
	operator *operatorReceiver
	mu       sync.Mutex
	seen     map[string]int
	srv      *http.Server
}

func startDemoReceiver(ctx context.Context, d devConfig, store subscription.Store, operatorSecret signature.Secret) (io.Closer, error) {
	r := &demoReceiver{seen: map[string]int{}, operator: &operatorReceiver{
		verifier: signature.Verifier{Secrets: []signature.Secret{operatorSecret}},
		out:      os.Stdout,
	}}
	fast := &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(2 * time.Second), delivery.Duration(5 * time.Second), delivery.Duration(10 * time.Second)}}
	secrets := map[string][]signature.Secret{}
	for _, path := range []string{"/webhooks", "/flaky"} {
		url := "http://" + d.receiverAddr + path
		sub, err := ensureSubscription(ctx, store, d.account, url, map[string]*delivery.Schedule{"/flaky": fast}[path])
		if err != nil {
			return nil, err
		}
		secrets[path] = sub.ActiveSecrets(time.Now())
	}
	r.flaky = signature.Verifier{Secrets: secrets["/flaky"]}
	mirror, err := usersync.Open(filepath.Join(d.dataDir, "usersync.db"), usersync.Options{
		Secrets:  secrets["/webhooks"],
		OnResult: printMirrorResult,
	})
	if err != nil {
		return nil, fmt.Errorf("demo receiver: %w", err)
	}
	r.mirror = mirror
	ln, err := net.Listen("tcp", d.receiverAddr)
	if err != nil {
		mirror.Close()
		return nil, fmt.Errorf("demo receiver: %w", err)
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln) //nolint:errcheck // ends with Close
	return r, nil
}

// Close stops the receiver and closes the mirror's database.
func (r *demoReceiver) Close() error {
	return errors.Join(r.srv.Close(), r.mirror.Close())
}

// printMirrorResult prints what the reference receiver did with a request.
func printMirrorResult(res usersync.Result) {
	switch {
	case res.Err != nil:
		fmt.Printf("demo receiver /webhooks: %d %s: %v\n", res.Status, res.Action, res.Err)
	default:
		fmt.Printf("demo receiver /webhooks: verified %s %s, user %s %s in .userhooks/usersync.db (signature ok)\n",
			res.EventType, res.EventID, res.UserID, res.Action)
	}
}

func (r *demoReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == "/webhooks":
		r.mirror.ServeHTTP(w, req)
		return
	case req.URL.Path == "/operator":
		r.operator.ServeHTTP(w, req)
		return
	case req.URL.Path == "/gone":
		// Subscribe it to watch a subscription being disabled.
		fmt.Printf("demo receiver /gone: answering 410 Gone on purpose to %s\n", req.Header.Get(signature.HeaderID))
		http.Error(w, "gone on purpose", http.StatusGone)
		return
	case req.URL.Path != "/flaky" || req.Method != http.MethodPost:
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, event.MaxBodyBytes))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := r.flaky.Verify(req.Header, body); err != nil {
		fmt.Printf("demo receiver /flaky: REJECTED: %v\n", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := req.Header.Get(signature.HeaderID)
	r.mu.Lock()
	r.seen[id]++
	n := r.seen[id]
	r.mu.Unlock()
	if n <= 2 {
		fmt.Printf("demo receiver /flaky: verified %s, answering 503 on purpose (attempt %d)\n", id, n)
		http.Error(w, "flaky on purpose", http.StatusServiceUnavailable)
		return
	}
	e, err := event.Decode(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Printf("demo receiver /flaky: verified %s %s for user %s (signature ok)\n", e.Type, e.ID, e.Data.User.ID)
	w.WriteHeader(http.StatusNoContent)
}

// ensureSubscription returns the account's subscription to url, creating it
// (with a new secret) if absent.
func ensureSubscription(ctx context.Context, store subscription.Store, account, url string, sched *delivery.Schedule) (subscription.Subscription, error) {
	for after := ""; ; {
		page, err := store.List(ctx, account, after, 100)
		if err != nil {
			return subscription.Subscription{}, err
		}
		for _, s := range page {
			if s.URL == url {
				return s, nil
			}
		}
		if len(page) < 100 {
			break
		}
		after = page[len(page)-1].ID
	}
	secret, err := signature.GenerateSecret()
	if err != nil {
		return subscription.Subscription{}, err
	}
	s := subscription.Subscription{
		AccountID:   account,
		URL:         url,
		Description: "demo receiver of `worker dev`",
		Enabled:     true,
		Secrets:     []subscription.Secret{{Key: secret}},
		Schedule:    sched,
	}
	if err := store.Create(ctx, &s); err != nil {
		return s, fmt.Errorf("create demo subscription: %w", err)
	}
	return s, nil
}

// operatorReceiver is the demo operator webhook: it verifies the signature
// of each operational event and prints it to out. A real one would page
// someone, or tell the subscription's owner.
type operatorReceiver struct {
	verifier signature.Verifier
	out      io.Writer
}

func (o *operatorReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, event.MaxBodyBytes))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := o.verifier.Verify(req.Header, body); err != nil {
		fmt.Fprintf(o.out, "demo receiver /operator: REJECTED: %v\n", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var e activities.OperatorEvent
	if err := json.Unmarshal(body, &e); err != nil || e.ID != req.Header.Get(signature.HeaderID) {
		fmt.Fprintf(o.out, "demo receiver /operator: verified, but not an operational event: %v\n", err)
		http.Error(w, "not an operational event", http.StatusBadRequest)
		return
	}
	if e.Type != activities.EventSubscriptionDisabled {
		fmt.Fprintf(o.out, "demo receiver /operator: verified %s %s (ignored)\n", e.Type, e.ID)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	fmt.Fprintf(o.out, "demo receiver /operator: verified %s %s: subscription %s of account %q (%s) was disabled: %s (signature ok)\n"+
		"  re-enable it with: go run ./cmd/userhooks subscriptions enable --id %s\n",
		e.Type, e.ID, e.Data.SubscriptionID, e.AccountID, e.Data.Endpoint, e.Data.Reason, e.Data.SubscriptionID)
	w.WriteHeader(http.StatusNoContent)
}
