package workflows_test

import (
	"io"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uber-go/tally/v4"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/workflows"
)

// newEnvWithMetrics is newEnv with the SDK's metrics going to a tally test
// scope, whose snapshot the test reads.
func newEnvWithMetrics(t *testing.T) (*testsuite.TestWorkflowEnvironment, tally.TestScope) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	scope := tally.NewTestScope("", nil)
	suite.SetMetricsHandler(sdktally.NewMetricsHandler(scope))
	env := suite.NewTestWorkflowEnvironment()
	workflows.Register(env, &activities.Activities{})
	return env, scope
}

// userhooksCounters sums the userhooks_* counters of a snapshot by name and
// by the labels named, ignoring the SDK's own labels (namespace, task
// queue, workflow type), as "name{k=v,...}".
func userhooksCounters(scope tally.TestScope, labels ...string) map[string]int64 {
	got := map[string]int64{}
	for _, c := range scope.Snapshot().Counters() {
		if !strings.HasPrefix(c.Name(), "userhooks_") {
			continue
		}
		var kv []string
		for _, l := range labels {
			if v, ok := c.Tags()[l]; ok {
				kv = append(kv, l+"="+v)
			}
		}
		sort.Strings(kv)
		got[c.Name()+"{"+strings.Join(kv, ",")+"}"] += c.Value()
	}
	return got
}

func TestDeliveryWorkflow_EmitsOneDeliveryCountAndOneCountPerAttempt(t *testing.T) {
	const (
		deliveries = workflows.MetricDeliveries
		attempts   = workflows.MetricDeliveryAttempts
	)
	tests := []struct {
		name   string
		script []outcome
		cancel bool
		want   map[string]int64
	}{
		{
			name:   "delivered after two server errors",
			script: []outcome{answer(500), answer(503), answer(200)},
			want: map[string]int64{
				deliveries + "{event_type=user.created,outcome=delivered}": 1,
				attempts + "{event_type=user.created,result=ServerError}":  2,
				attempts + "{event_type=user.created,result=success}":      1,
			},
		},
		{
			name:   "final client error",
			script: []outcome{answer(400)},
			want: map[string]int64{
				deliveries + "{event_type=user.created,outcome=failed}":   1,
				attempts + "{event_type=user.created,result=ClientError}": 1,
			},
		},
		{
			name:   "schedule exhausted",
			script: []outcome{answer(429)},
			want: map[string]int64{
				deliveries + "{event_type=user.created,outcome=failed}":       1,
				attempts + "{event_type=user.created,result=RetryableStatus}": 3,
			},
		},
		{
			name:   "skipped",
			script: []outcome{skipped},
			want: map[string]int64{
				deliveries + "{event_type=user.created,outcome=skipped}": 1,
				attempts + "{event_type=user.created,result=skipped}":    1,
			},
		},
		{
			name:   "fault on our side outlasts the activity's retries",
			script: []outcome{storeDown},
			want: map[string]int64{
				deliveries + "{event_type=user.created,outcome=failed}":     1,
				attempts + "{event_type=user.created,result=InternalError}": 3,
			},
		},
		{
			name:   "canceled while waiting",
			script: []outcome{answer(500)},
			cancel: true,
			want: map[string]int64{
				deliveries + "{event_type=user.created,outcome=canceled}": 1,
				attempts + "{event_type=user.created,result=ServerError}": 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, scope := newEnvWithMetrics(t)
			mockDeliver(env, tt.script...)
			if tt.cancel {
				env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)
			}

			env.ExecuteWorkflow(workflows.DeliveryWorkflow, deliveryInput(schedule(time.Hour, time.Hour)))

			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			got := userhooksCounters(scope, workflows.TagOutcome, workflows.TagEventType, activities.TagResult)
			if !maps.Equal(got, tt.want) {
				t.Errorf("userhooks counters = %v\nwant %v", got, tt.want)
			}
		})
	}
}
