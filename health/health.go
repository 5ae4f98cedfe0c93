// Package health serves the liveness and readiness probes of a userhooks
// process: /livez answers 200 while the process can answer at all;
// /readyz answers 200 only when every dependency it needs (the Temporal
// frontend, the subscription store) answers, and 503 naming the failing
// checks otherwise.
//
// The bodies are JSON. They name checks and say "ok", "failed" or
// "timeout", never an error's text (which may name hosts or users); the
// text goes to the Logger.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
)

// Check is one dependency /readyz asks about. Func returns nil when the
// dependency answers; it must return soon after ctx ends.
type Check struct {
	// Name identifies the check in the response body and logs, e.g.
	// "temporal". Names must be unique within a Health.
	Name string
	Func func(ctx context.Context) error
}

// TemporalChecker asks a Temporal frontend whether it serves.
// client.Client implements it.
type TemporalChecker interface {
	CheckHealth(ctx context.Context, req *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

// Pinger is a dependency that answers a cheap query, such as a store
// running SELECT 1.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingerFunc adapts a function to Pinger.
type PingerFunc func(ctx context.Context) error

// Ping calls f.
func (f PingerFunc) Ping(ctx context.Context) error { return f(ctx) }

// Temporal is the check named "temporal": the frontend answers the gRPC
// health check as serving.
func Temporal(c TemporalChecker) Check {
	return Check{Name: "temporal", Func: func(ctx context.Context) error {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}}
}

// Store is the check named "store": the subscription store answers a ping.
func Store(p Pinger) Check {
	return Check{Name: "store", Func: p.Ping}
}

// DefaultTimeout bounds every check of one /readyz request.
const DefaultTimeout = 2 * time.Second

// Check results as the body shows them.
const (
	StatusOK          = "ok"
	StatusFailed      = "failed"
	StatusTimeout     = "timeout"
	StatusUnavailable = "unavailable"
)

// Health answers the probes. Build it with New; it is safe for concurrent
// use.
type Health struct {
	checks  []Check
	timeout time.Duration
	log     *zap.Logger
}

// New returns probes that run checks on every /readyz request, all at once,
// each bounded by timeout (DefaultTimeout when zero). A nil logger means no
// logs. It fails on a check without a name or function, or on a repeated
// name.
func New(timeout time.Duration, log *zap.Logger, checks ...Check) (*Health, error) {
	if timeout < 0 {
		return nil, fmt.Errorf("health: timeout %s must be positive", timeout)
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	seen := map[string]bool{}
	for i, c := range checks {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("health: check %d has no name", i)
		case c.Func == nil:
			return nil, fmt.Errorf("health: check %q has no function", c.Name)
		case seen[c.Name]:
			return nil, fmt.Errorf("health: check %q is listed twice", c.Name)
		}
		seen[c.Name] = true
	}
	return &Health{checks: checks, timeout: timeout, log: log}, nil
}

// Report is the body of /readyz (and, without Checks, of /livez).
type Report struct {
	// Status is StatusOK or StatusUnavailable.
	Status string `json:"status"`
	// Checks maps each check's name to StatusOK, StatusFailed or
	// StatusTimeout.
	Checks map[string]string `json:"checks,omitempty"`
	// Failing lists the names of the checks that did not pass, sorted.
	Failing []string `json:"failing,omitempty"`
}

// Ready runs every check and reports. It returns once every check has
// answered or the timeout has passed, whichever is first, even when a
// check ignores its context.
func (h *Health) Ready(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	// Buffered, so a check that outlives the request does not block.
	results := make(chan result, len(h.checks))
	for _, c := range h.checks {
		go func() { results <- result{c.Name, c.Func(ctx)} }()
	}

	rep := Report{Status: StatusOK, Checks: make(map[string]string, len(h.checks))}
	for _, c := range h.checks {
		rep.Checks[c.Name] = StatusTimeout
	}
	collect := func(r result) {
		switch {
		case r.err == nil:
			rep.Checks[r.name] = StatusOK
		case ctx.Err() != nil:
			h.log.Warn("readiness check timed out", zap.String("check", r.name), zap.Error(r.err))
		default:
			rep.Checks[r.name] = StatusFailed
			h.log.Warn("readiness check failed", zap.String("check", r.name), zap.Error(r.err))
		}
	}
	pending := len(h.checks)
wait:
	for pending > 0 {
		select {
		case r := <-results:
			collect(r)
			pending--
		case <-ctx.Done():
			break wait
		}
	}
	// Results that arrived together with the deadline still count.
	for ; pending > 0 && len(results) > 0; pending-- {
		collect(<-results)
	}
	for name, st := range rep.Checks {
		if st != StatusOK {
			rep.Failing = append(rep.Failing, name)
		}
	}
	if len(rep.Failing) > 0 {
		sort.Strings(rep.Failing)
		rep.Status = StatusUnavailable
	}
	return rep
}

// Livez answers 200 {"status":"ok"} to GET and HEAD: the process is up and
// serving HTTP. It checks no dependency, so an outage of Temporal or the
// store never gets the process restarted.
func (h *Health) Livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		writeJSON(w, http.StatusOK, Report{Status: StatusOK})
	})
}

// Readyz answers GET and HEAD with 200 and the Report when every check
// passes, 503 and the Report otherwise.
func (h *Health) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		rep := h.Ready(r.Context())
		code := http.StatusOK
		if rep.Status != StatusOK {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rep)
	})
}

// Register mounts Livez at /livez and Readyz at /readyz.
func (h *Health) Register(mux *http.ServeMux) {
	mux.Handle("/livez", h.Livez())
	mux.Handle("/readyz", h.Readyz())
}

func allowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, code int, rep Report) {
	body, err := json.Marshal(rep)
	if err != nil { // a Report always encodes
		http.Error(w, "encode report", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
