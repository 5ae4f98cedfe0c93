package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/userhooks/userhooks/health"
)

// get serves h on a real HTTP server and returns the status and decoded
// body of method path.
func get(t *testing.T, h *health.Health, method, path string) (int, health.Report, string) {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var rep health.Report
	if resp.StatusCode != http.StatusMethodNotAllowed && method != http.MethodHead {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s Content-Type = %q, want application/json", method, path, ct)
		}
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("%s %s body %q: %v", method, path, body, err)
		}
	}
	return resp.StatusCode, rep, string(body)
}

func pinger(err error) health.Pinger {
	return health.PingerFunc(func(context.Context) error { return err })
}

func newHealth(t *testing.T, timeout time.Duration, log *zap.Logger, checks ...health.Check) *health.Health {
	t.Helper()
	h, err := health.New(timeout, log, checks...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReadyz_ReportsEachCheck(t *testing.T) {
	secretish := errors.New("dial postgres://userhooks@db.internal:5432: connection refused")
	tests := []struct {
		name        string
		temporal    error
		store       error
		wantCode    int
		wantFailing []string
	}{
		{"all answer", nil, nil, http.StatusOK, nil},
		{"store down", nil, secretish, http.StatusServiceUnavailable, []string{"store"}},
		{"temporal down", errors.New("health check error: unavailable"), nil, http.StatusServiceUnavailable, []string{"temporal"}},
		{"both down", errors.New("unavailable"), secretish, http.StatusServiceUnavailable, []string{"store", "temporal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			h := newHealth(t, time.Second, zap.New(core),
				health.Check{Name: "temporal", Func: pinger(tt.temporal).Ping},
				health.Store(pinger(tt.store)))

			code, rep, body := get(t, h, http.MethodGet, "/readyz")

			if code != tt.wantCode {
				t.Errorf("status %d, want %d (body %s)", code, tt.wantCode, body)
			}
			if !slices.Equal(rep.Failing, tt.wantFailing) {
				t.Errorf("failing = %v, want %v", rep.Failing, tt.wantFailing)
			}
			for _, name := range []string{"temporal", "store"} {
				want := health.StatusOK
				if slices.Contains(tt.wantFailing, name) {
					want = health.StatusFailed
				}
				if rep.Checks[name] != want {
					t.Errorf("check %s = %q, want %q", name, rep.Checks[name], want)
				}
			}
			wantStatus := health.StatusOK
			if tt.wantFailing != nil {
				wantStatus = health.StatusUnavailable
			}
			if rep.Status != wantStatus {
				t.Errorf("status field = %q, want %q", rep.Status, wantStatus)
			}
			// Error texts go to the log, never to the unauthenticated body.
			if strings.Contains(body, "postgres") || strings.Contains(body, "unavailable:") {
				t.Errorf("body leaks an error's text: %s", body)
			}
			if n := logs.FilterField(zap.String("check", "store")).Len(); (tt.store != nil) != (n == 1) {
				t.Errorf("logged %d store failures, want %d", n, map[bool]int{true: 1}[tt.store != nil])
			}
		})
	}
}

func TestLivez_AnswersOKEvenWhenDependenciesFail(t *testing.T) {
	h := newHealth(t, 0, nil, health.Store(pinger(errors.New("down"))))
	code, rep, _ := get(t, h, http.MethodGet, "/livez")
	if code != http.StatusOK || rep.Status != health.StatusOK || rep.Checks != nil {
		t.Errorf("/livez = %d %+v, want 200 {status: ok} and no checks", code, rep)
	}
}

func TestReadyz_ASlowCheckTimesOutWithoutHoldingTheAnswer(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := newHealth(t, 50*time.Millisecond, nil,
		// Honours its context.
		health.Check{Name: "slow", Func: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		// Ignores it: the answer must not wait for it either.
		health.Check{Name: "stuck", Func: func(context.Context) error { <-release; return nil }},
		health.Store(pinger(nil)))

	start := time.Now()
	code, rep, _ := get(t, h, http.MethodGet, "/readyz")

	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("/readyz took %s with a 50ms timeout", took)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", code)
	}
	want := map[string]string{"slow": health.StatusTimeout, "stuck": health.StatusTimeout, "store": health.StatusOK}
	for name, st := range want {
		if rep.Checks[name] != st {
			t.Errorf("check %s = %q, want %q", name, rep.Checks[name], st)
		}
	}
	if !slices.Equal(rep.Failing, []string{"slow", "stuck"}) {
		t.Errorf("failing = %v, want [slow stuck]", rep.Failing)
	}
}

func TestProbes_AnswerHeadAndRefuseOtherMethods(t *testing.T) {
	h := newHealth(t, 0, nil, health.Store(pinger(nil)))
	for _, path := range []string{"/livez", "/readyz"} {
		if code, _, _ := get(t, h, http.MethodHead, path); code != http.StatusOK {
			t.Errorf("HEAD %s = %d, want 200", path, code)
		}
		if code, _, _ := get(t, h, http.MethodPost, path); code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 405", path, code)
		}
	}
}

func TestNew_RejectsBadChecks(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name    string
		timeout time.Duration
		checks  []health.Check
	}{
		{"no name", 0, []health.Check{{Func: ok}}},
		{"no function", 0, []health.Check{{Name: "store"}}},
		{"same name twice", 0, []health.Check{{Name: "store", Func: ok}, {Name: "store", Func: ok}}},
		{"negative timeout", -time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := health.New(tt.timeout, nil, tt.checks...); err == nil {
				t.Errorf("New = %v, want an error", h)
			}
		})
	}
}

// TestTemporal_AsksTheFrontendsGRPCHealthService runs the check through a
// real SDK client against a real gRPC health server.
func TestTemporal_AsksTheFrontendsGRPCHealthService(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	// The SDK client asks the frontend for its capabilities before any
	// call; a frontend that does not implement that is accepted.
	workflowservice.RegisterWorkflowServiceServer(srv, workflowservice.UnimplementedWorkflowServiceServer{})
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	defer srv.Stop()
	c, err := client.NewLazyClient(client.Options{
		HostPort: lis.Addr().String(),
		Logger:   log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := newHealth(t, 5*time.Second, nil, health.Temporal(c))

	const service = "temporal.api.workflowservice.v1.WorkflowService"
	for _, tt := range []struct {
		serving  healthpb.HealthCheckResponse_ServingStatus
		wantCode int
	}{
		{healthpb.HealthCheckResponse_SERVING, http.StatusOK},
		{healthpb.HealthCheckResponse_NOT_SERVING, http.StatusServiceUnavailable},
		{healthpb.HealthCheckResponse_SERVING, http.StatusOK},
	} {
		hs.SetServingStatus(service, tt.serving)
		code, rep, _ := get(t, h, http.MethodGet, "/readyz")
		if code != tt.wantCode {
			t.Errorf("frontend %s: /readyz = %d %+v, want %d", tt.serving, code, rep, tt.wantCode)
		}
	}

	// A frontend that is gone: the client keeps retrying until the check's
	// deadline, which the report calls a timeout.
	srv.Stop()
	h = newHealth(t, 300*time.Millisecond, nil, health.Temporal(c))
	code, rep, _ := get(t, h, http.MethodGet, "/readyz")
	if code != http.StatusServiceUnavailable || rep.Checks["temporal"] == health.StatusOK {
		t.Errorf("frontend stopped: /readyz = %d %+v, want 503 with temporal not ok", code, rep)
	}
}
