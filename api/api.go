// Package api is userhooks' HTTP API: publishing events, managing
// subscriptions and operating deliveries, for callers authenticated by an API
// key (package apikey).
//
//	h, err := api.New(api.Config{Subscriptions: subs, Keys: keys, Publisher: p, Deliveries: d, Logger: log})
//	srv := &http.Server{Addr: ":8080", Handler: h, ReadHeaderTimeout: 10 * time.Second}
//
// Every key belongs to one account and sees nothing of another: another
// account's subscription or delivery answers 404 exactly like an ID that does
// not exist. Bodies are JSON with snake_case fields and RFC 3339 times; errors
// are RFC 9457 problem documents (application/problem+json). The OpenAPI 3.1
// description of every route is served at GET /v1/openapi.json.
//
// The handler builds only on the standard library's ServeMux. It sets no
// timeouts of its own: configure them on the http.Server.
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
)

// Publisher starts the delivery of an event; *starter.Publisher implements
// it. Publish must be idempotent by event ID, as starter.Publisher is: a
// repeated ID returns the original run with Duplicate set.
type Publisher interface {
	Publish(ctx context.Context, e event.Event) (starter.Receipt, error)
}

// Default and maximum secret rotation overlaps: how long the old secrets of
// a subscription keep signing beside a new one.
const (
	DefaultRotationOverlap = 24 * time.Hour
	MaxRotationOverlap     = 30 * 24 * time.Hour
)

// Config holds the API's dependencies. Subscriptions, Keys, Publisher and
// Deliveries are required.
type Config struct {
	// Subscriptions keeps the subscriptions the API manages.
	Subscriptions subscription.Store
	// Keys authenticates callers.
	Keys apikey.Store
	// Publisher starts the delivery of published events.
	Publisher Publisher
	// Deliveries answers questions about deliveries and operates them.
	Deliveries Deliveries
	// Logger gets one line per request; nil logs nothing.
	Logger *zap.Logger
	// Now is the clock for secret expiries and time checks; nil means
	// time.Now.
	Now func() time.Time
	// RotationOverlap is how long old secrets keep signing after a
	// rotation that names no overlap; zero means DefaultRotationOverlap.
	RotationOverlap time.Duration
	// CheckURL, when set, vets a subscription URL before it is stored (an
	// SSRF policy, say); an error refuses the URL with 422 and the error's
	// text, so word it for the API's caller. The URL has already passed
	// subscription.Subscription.Validate. nil accepts every valid URL.
	CheckURL func(ctx context.Context, rawURL string) error
}

// server is the API's handler.
type server struct {
	cfg   Config
	log   *zap.Logger
	mux   *http.ServeMux
	locks keyedMutex
}

// New returns the API's handler. It is safe for concurrent use.
func New(cfg Config) (http.Handler, error) {
	var missing []string
	if cfg.Subscriptions == nil {
		missing = append(missing, "Subscriptions")
	}
	if cfg.Keys == nil {
		missing = append(missing, "Keys")
	}
	if cfg.Publisher == nil {
		missing = append(missing, "Publisher")
	}
	if cfg.Deliveries == nil {
		missing = append(missing, "Deliveries")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("api: config lacks %v", missing)
	}
	if cfg.RotationOverlap < 0 || cfg.RotationOverlap > MaxRotationOverlap {
		return nil, fmt.Errorf("api: RotationOverlap is %s, want 0 to %s", cfg.RotationOverlap, MaxRotationOverlap)
	}
	if cfg.RotationOverlap == 0 {
		cfg.RotationOverlap = DefaultRotationOverlap
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern, rt.handler)
	}
	return s, nil
}

// route is one operation of the API.
type route struct {
	pattern string
	handler http.Handler
}

// routes lists every operation. The OpenAPI document describes exactly
// these (a test checks both ways).
func (s *server) routes() []route {
	return []route{
		{"GET /v1/openapi.json", http.HandlerFunc(s.serveOpenAPI)},

		{"POST /v1/events", s.authed(s.publishEvent)},

		{"POST /v1/subscriptions", s.authed(s.createSubscription)},
		{"GET /v1/subscriptions", s.authed(s.listSubscriptions)},
		{"GET /v1/subscriptions/{id}", s.authed(s.getSubscription)},
		{"PATCH /v1/subscriptions/{id}", s.authed(s.patchSubscription)},
		{"DELETE /v1/subscriptions/{id}", s.authed(s.deleteSubscription)},
		{"POST /v1/subscriptions/{id}/enable", s.authed(s.enableSubscription)},
		{"POST /v1/subscriptions/{id}/disable", s.authed(s.disableSubscription)},
		{"POST /v1/subscriptions/{id}/rotate-secret", s.authed(s.rotateSecret)},
		{"POST /v1/subscriptions/{id}/recover", s.authed(s.recoverDeliveries)},

		{"GET /v1/deliveries", s.authed(s.listDeliveries)},
		{"GET /v1/deliveries/{event_id}/{subscription_id}", s.authed(s.getDelivery)},
		{"POST /v1/deliveries/{event_id}/{subscription_id}/redeliver", s.authed(s.redeliver)},
		{"POST /v1/deliveries/{event_id}/{subscription_id}/cancel", s.authed(s.cancelDelivery)},
		{"POST /v1/deliveries/{event_id}/{subscription_id}/retry", s.authed(s.retryDelivery)},
	}
}

// requestInfo collects what the request's log line reports beyond the
// request itself. Handlers fill it in through the request's context.
type requestInfo struct {
	accountID string
	// err is an internal error behind a 5xx answer; the client saw only a
	// generic problem.
	err error
	// panicked holds a recovered panic's value and stack.
	panicked any
	stack    []byte
}

type requestInfoKey struct{}

func infoOf(r *http.Request) *requestInfo {
	if ri, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// ServeHTTP routes the request, recovers from panics and logs one line.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &requestInfo{}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri))
	rw := &statusWriter{ResponseWriter: w}
	// Responses may hold a one-time secret: never cache any of them.
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("X-Content-Type-Options", "nosniff")

	_, pattern := s.mux.Handler(r)
	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			ri.panicked, ri.stack = v, debug.Stack()
			if !rw.wroteHeader {
				writeProblem(rw, &problem{Status: http.StatusInternalServerError, Detail: "the server failed to handle the request"})
			}
		}
		s.logRequest(r, pattern, rw.status(), time.Since(start), ri)
		if v == http.ErrAbortHandler {
			panic(v)
		}
	}()
	if pattern == "" {
		s.noRoute(rw, r)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// noRoute answers a request that matches no route: 404, or 405 when the path
// exists for other methods, as problem documents.
func (s *server) noRoute(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeProblem(w, &problem{Status: http.StatusMethodNotAllowed,
			Detail: fmt.Sprintf("%s is not allowed here; allowed: %s", r.Method, rec.header.Get("Allow"))})
		return
	}
	writeProblem(w, &problem{Status: http.StatusNotFound, Detail: "no such resource"})
}

// logRequest writes the request's one log line. It never logs headers (the
// Authorization header holds a key), bodies (they may hold secrets and user
// data) or query strings.
func (s *server) logRequest(r *http.Request, pattern string, status int, d time.Duration, ri *requestInfo) {
	if pattern == "" {
		pattern = "(no route)"
	}
	fields := []zap.Field{
		zap.String("method", r.Method),
		zap.String("route", pattern),
		zap.Int("status", status),
		zap.Duration("duration", d),
	}
	if ri.accountID != "" {
		fields = append(fields, zap.String("account_id", ri.accountID))
	}
	switch {
	case ri.panicked != nil:
		fields = append(fields, zap.String("panic", fmt.Sprint(ri.panicked)), zap.ByteString("stack", ri.stack))
		s.log.Error("http request", fields...)
	case status >= 500:
		if ri.err != nil {
			fields = append(fields, zap.Error(ri.err))
		}
		s.log.Error("http request", fields...)
	default:
		s.log.Info("http request", fields...)
	}
}

// handlerFunc is an authenticated operation. A returned *problem is the
// answer; any other error answers 500 and is logged.
type handlerFunc func(w http.ResponseWriter, r *http.Request, key apikey.Key) error

// authed wraps an operation with authentication and error handling.
func (s *server) authed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := s.authenticate(r)
		if err == nil {
			infoOf(r).accountID = key.AccountID
			err = h(w, r, key)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	})
}

// authenticate reads the bearer token and looks it up. A missing, malformed
// or unknown token is a 401 with WWW-Authenticate (RFC 6750).
func (s *server) authenticate(r *http.Request) (apikey.Key, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return apikey.Key{}, &problem{Status: http.StatusUnauthorized, Detail: "send an API key: Authorization: Bearer uhk_…",
			header: http.Header{"Www-Authenticate": {`Bearer realm="userhooks"`}}}
	}
	invalid := &problem{Status: http.StatusUnauthorized, Detail: "the API key is invalid or revoked",
		header: http.Header{"Www-Authenticate": {`Bearer realm="userhooks", error="invalid_token"`}}}
	if len(values) > 1 {
		return apikey.Key{}, invalid
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return apikey.Key{}, invalid
	}
	key, err := s.cfg.Keys.Authenticate(r.Context(), token)
	if errors.Is(err, apikey.ErrInvalid) {
		return apikey.Key{}, invalid
	}
	if err != nil {
		return apikey.Key{}, fmt.Errorf("authenticate: %w", err)
	}
	return key, nil
}

// fail answers with err: a *problem as it is, anything else as a 500 whose
// cause goes to the log only.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *problem
	if errors.As(err, &p) {
		if ri := infoOf(r); p.Status >= 500 && ri.err == nil {
			ri.err = err
		}
		writeProblem(w, p)
		return
	}
	infoOf(r).err = err
	writeProblem(w, &problem{Status: http.StatusInternalServerError, Detail: "the server failed to handle the request"})
}

// now returns the configured clock's time in UTC.
func (s *server) now() time.Time { return s.cfg.Now().UTC() }

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.code
}

// headerRecorder captures the status and headers of the mux's own 404 and
// 405 answers, so that they can be rewritten as problem documents.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	return len(b), nil
}
