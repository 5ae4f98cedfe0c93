package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/userhooks/userhooks/metrics"
	"github.com/userhooks/userhooks/workflows"
)

// frontend is a Temporal frontend that answers only CountWorkflowExecutions,
// served over real gRPC on a loopback port.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer

	mu       sync.Mutex
	requests []*workflowservice.CountWorkflowExecutionsRequest
	count    int64
	err      error
}

func (f *frontend) CountWorkflowExecutions(_ context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	if f.err != nil {
		return nil, f.err
	}
	return &workflowservice.CountWorkflowExecutionsResponse{Count: f.count}, nil
}

func (f *frontend) set(count int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count, f.err = count, err
}

func (f *frontend) Requests() []*workflowservice.CountWorkflowExecutionsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*workflowservice.CountWorkflowExecutionsRequest(nil), f.requests...)
}

// dialFrontend starts f and returns an SDK client of namespace "hooks-test"
// connected to it, whose own metrics go to h.
func dialFrontend(t *testing.T, f *frontend, h client.MetricsHandler) client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	c, err := client.NewLazyClient(client.Options{
		HostPort:       lis.Addr().String(),
		Namespace:      "hooks-test",
		MetricsHandler: h,
		Logger:         log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// disabledCount is a DisabledCounter with a scripted answer that signals
// each call on calls (when set).
type disabledCount struct {
	mu    sync.Mutex
	n     int
	err   error
	calls chan struct{}
}

func (d *disabledCount) CountDisabled(ctx context.Context) (int, error) {
	d.mu.Lock()
	n, err := d.n, d.err
	d.mu.Unlock()
	if d.calls != nil {
		select {
		case d.calls <- struct{}{}:
		case <-ctx.Done():
		}
	}
	return n, err
}

func (d *disabledCount) set(n int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n, d.err = n, err
}

// client.Client is what the worker hands the Collector.
var _ metrics.WorkflowCounter = client.Client(nil)

func TestCollector_PollSetsBothGaugesFromVisibilityAndStore(t *testing.T) {
	m, err := metrics.New(metrics.Options{ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fe := &frontend{count: 7}
	col := &metrics.Collector{
		Handler:       m.SDKHandler(),
		Workflows:     dialFrontend(t, fe, m.SDKHandler()),
		Subscriptions: &disabledCount{n: 3},
	}

	if err := col.Poll(context.Background()); err != nil {
		t.Fatalf("Poll: %v", err)
	}
	m.Close()

	reqs := fe.Requests()
	if len(reqs) != 1 {
		t.Fatalf("frontend got %d count requests, want 1", len(reqs))
	}
	const wantQuery = "WorkflowType='DeliveryWorkflow' AND UserhooksDeliveryStatus='retrying' AND ExecutionStatus='Running'"
	if reqs[0].GetQuery() != wantQuery || reqs[0].GetNamespace() != "hooks-test" {
		t.Errorf("count request = namespace %q query %q, want namespace hooks-test query %q", reqs[0].GetNamespace(), reqs[0].GetQuery(), wantQuery)
	}
	fams := scrape(t, m)
	if got := values(t, fams, metrics.GaugeDeliveriesWaitingRetry, dto.MetricType_GAUGE); !equal(got, map[string]float64{"": 7}) {
		t.Errorf("%s = %v, want 7", metrics.GaugeDeliveriesWaitingRetry, got)
	}
	if got := values(t, fams, metrics.GaugeSubscriptionsDisabled, dto.MetricType_GAUGE); !equal(got, map[string]float64{"": 3}) {
		t.Errorf("%s = %v, want 3", metrics.GaugeSubscriptionsDisabled, got)
	}
	// The SDK client's own request metrics reach the same registry.
	if got := values(t, fams, "temporal_request_total", dto.MetricType_COUNTER, "operation", "namespace"); got["namespace=hooks-test,operation=CountWorkflowExecutions"] != 1 {
		t.Errorf("temporal_request_total = %v, want one CountWorkflowExecutions in hooks-test", got)
	}
}

func TestCollector_FailedPollKeepsTheLastValueAndCountsTheError(t *testing.T) {
	m, err := metrics.New(metrics.Options{ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fe := &frontend{count: 5}
	store := &disabledCount{n: 2}
	col := &metrics.Collector{Handler: m.SDKHandler(), Workflows: dialFrontend(t, fe, client.MetricsNopHandler), Subscriptions: store}
	if err := col.Poll(context.Background()); err != nil {
		t.Fatalf("first Poll: %v", err)
	}

	fe.set(99, status.Error(codes.InvalidArgument, "invalid query: unknown search attribute UserhooksDeliveryStatus"))
	store.set(99, errors.New("database is locked"))
	err = col.Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), "deliveries waiting to retry") || !strings.Contains(err.Error(), "disabled subscriptions") {
		t.Fatalf("second Poll error = %v, want both failures named", err)
	}
	m.Close()

	fams := scrape(t, m)
	if got := values(t, fams, metrics.GaugeDeliveriesWaitingRetry, dto.MetricType_GAUGE); !equal(got, map[string]float64{"": 5}) {
		t.Errorf("%s = %v, want the last good value 5", metrics.GaugeDeliveriesWaitingRetry, got)
	}
	if got := values(t, fams, metrics.GaugeSubscriptionsDisabled, dto.MetricType_GAUGE); !equal(got, map[string]float64{"": 2}) {
		t.Errorf("%s = %v, want the last good value 2", metrics.GaugeSubscriptionsDisabled, got)
	}
	if got, want := values(t, fams, metrics.CounterCollectorErrors, dto.MetricType_COUNTER),
		map[string]float64{"source=temporal": 1, "source=store": 1}; !equal(got, want) {
		t.Errorf("%s = %v, want %v", metrics.CounterCollectorErrors, got, want)
	}
}

func TestCollector_RunPollsAtOnceThenEveryIntervalUntilCanceled(t *testing.T) {
	m, err := metrics.New(metrics.Options{ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	store := &disabledCount{n: 1, calls: make(chan struct{})}
	col := &metrics.Collector{Handler: m.SDKHandler(), Subscriptions: store, Interval: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()

	for i := range 3 {
		select {
		case <-store.calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("poll %d did not happen", i+1)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
}

func TestCollector_RunRejectsAMissingHandlerAndANegativeInterval(t *testing.T) {
	for _, col := range []*metrics.Collector{
		{},
		{Handler: client.MetricsNopHandler, Interval: -time.Second},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a Run that started anyway would return at once
		if err := col.Run(ctx); err == nil {
			t.Errorf("Run(%+v) = nil, want an error", col)
		}
	}
}

// The query names the workflow type as the SDK registers it: after the
// function's name.
func TestWaitingRetryQuery_NamesTheRegisteredWorkflowType(t *testing.T) {
	fn := runtime.FuncForPC(reflect.ValueOf(workflows.DeliveryWorkflow).Pointer()).Name()
	name := fn[strings.LastIndex(fn, ".")+1:]
	if !strings.HasPrefix(metrics.WaitingRetryQuery, "WorkflowType='"+name+"' ") {
		t.Errorf("WaitingRetryQuery = %q, want it to start with WorkflowType='%s'", metrics.WaitingRetryQuery, name)
	}
}
