package metrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/workflows"
)

// Gauges set by the Collector. They describe the whole system, not the
// process that exports them: every worker running a Collector reports the
// same value, so aggregate them with max, never sum.
const (
	// GaugeDeliveriesWaitingRetry is the number of running deliveries whose
	// status is retrying: at least one attempt failed and another is due.
	GaugeDeliveriesWaitingRetry = "userhooks_deliveries_waiting_retry"
	// GaugeSubscriptionsDisabled is the number of disabled subscriptions
	// (paused by their owner, or disabled after 410 Gone).
	GaugeSubscriptionsDisabled = "userhooks_subscriptions_disabled"
	// CounterCollectorErrors counts polls that failed, by source
	// ("temporal" or "store"); while it grows, the gauges are stale.
	CounterCollectorErrors = "userhooks_collector_errors_total"
	// TagSource is the label of CounterCollectorErrors.
	TagSource = "source"
)

// deliveryWorkflowType is the registered name of workflows.DeliveryWorkflow
// (the SDK names a workflow after its function).
const deliveryWorkflowType = "DeliveryWorkflow"

// WaitingRetryQuery is the visibility query whose count is
// GaugeDeliveriesWaitingRetry. It uses the UserhooksDeliveryStatus search
// attribute, so the namespace must have userhooks' search attributes.
var WaitingRetryQuery = fmt.Sprintf("WorkflowType='%s' AND %s='%s' AND ExecutionStatus='Running'",
	deliveryWorkflowType, workflows.AttrDeliveryStatus.GetName(), delivery.StatusRetrying)

// WorkflowCounter counts workflow executions that match a visibility
// query. client.Client implements it.
type WorkflowCounter interface {
	CountWorkflow(ctx context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
}

// DisabledCounter counts disabled subscriptions across all accounts. The
// subscription store will implement it; it must be cheap (one indexed
// COUNT).
type DisabledCounter interface {
	CountDisabled(ctx context.Context) (int, error)
}

// DefaultCollectInterval is how often a Collector polls by default.
const DefaultCollectInterval = 30 * time.Second

// Collector polls Temporal visibility and the subscription store and sets
// the gauges GaugeDeliveriesWaitingRetry and GaugeSubscriptionsDisabled.
// Each poll costs one count query to each. Set the fields, then call Run;
// do not change them afterwards.
type Collector struct {
	// Handler receives the gauges: Metrics.SDKHandler, or any SDK metrics
	// handler. Required.
	Handler client.MetricsHandler
	// Workflows answers the visibility count. Nil leaves
	// GaugeDeliveriesWaitingRetry unset.
	Workflows WorkflowCounter
	// Namespace is the Temporal namespace to count in; "" is the client's.
	Namespace string
	// Subscriptions answers the disabled count. Nil leaves
	// GaugeSubscriptionsDisabled unset.
	Subscriptions DisabledCounter
	// Interval between polls; DefaultCollectInterval when zero.
	Interval time.Duration
	// Timeout bounds each poll; the smaller of Interval and 10 s when zero.
	Timeout time.Duration
	// Logger receives failed polls. Nil means no logs.
	Logger *zap.Logger
}

// Run polls at once, then every Interval, until ctx ends; then it returns
// nil. A failed poll leaves the gauge at its last value, counts in
// CounterCollectorErrors and is logged; it does not stop Run.
func (c *Collector) Run(ctx context.Context) error {
	if c.Handler == nil {
		return errors.New("metrics collector: Handler is required")
	}
	interval := c.Interval
	if interval == 0 {
		interval = DefaultCollectInterval
	}
	if interval < 0 {
		return fmt.Errorf("metrics collector: interval %s must be positive", interval)
	}
	log := c.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if err := c.Poll(ctx); err != nil && ctx.Err() == nil {
			log.Warn("metrics collector: poll failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// Poll updates both gauges once and returns what failed, if anything. Run
// calls it; it is exported for tests and for one-off refreshes.
func (c *Collector) Poll(ctx context.Context) error {
	if c.Handler == nil {
		return errors.New("metrics collector: Handler is required")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = min(c.Interval, 10*time.Second)
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var errs []error
	if c.Workflows != nil {
		resp, err := c.Workflows.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: c.Namespace,
			Query:     WaitingRetryQuery,
		})
		if err != nil {
			c.Handler.WithTags(map[string]string{TagSource: "temporal"}).Counter(CounterCollectorErrors).Inc(1)
			errs = append(errs, fmt.Errorf("count deliveries waiting to retry: %w", err))
		} else {
			c.Handler.Gauge(GaugeDeliveriesWaitingRetry).Update(float64(resp.GetCount()))
		}
	}
	if c.Subscriptions != nil {
		n, err := c.Subscriptions.CountDisabled(ctx)
		if err != nil {
			c.Handler.WithTags(map[string]string{TagSource: "store"}).Counter(CounterCollectorErrors).Inc(1)
			errs = append(errs, fmt.Errorf("count disabled subscriptions: %w", err))
		} else {
			c.Handler.Gauge(GaugeSubscriptionsDisabled).Update(float64(n))
		}
	}
	return errors.Join(errs...)
}
