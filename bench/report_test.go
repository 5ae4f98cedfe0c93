package bench_test

import (
	"testing"

	"github.com/userhooks/userhooks/bench"
)

// TestEvaluate_LatencyTargetsHoldOnlyAtTheirLoad: the latency targets are
// set at 20 events/s × fan-out 10. Met under a lighter load, they are not
// measured; missed under a lighter load, they are missed.
func TestEvaluate_LatencyTargetsHoldOnlyAtTheirLoad(t *testing.T) {
	tests := []struct {
		rate     float64
		subs     int
		p50      float64
		wantP50  string
		scenario string
	}{
		{20, 10, 40, bench.StatusMet, "at the target's load, within it"},
		{20, 10, 60, bench.StatusMissed, "at the target's load, beyond it"},
		{2, 10, 40, bench.StatusNotMeasured, "a tenth of the rate, within it"},
		{20, 5, 40, bench.StatusNotMeasured, "half the fan-out, within it"},
		{2, 10, 130, bench.StatusMissed, "a tenth of the rate, beyond it"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			r := bench.Report{
				Workload: bench.Workload{Rate: tt.rate, Subscriptions: tt.subs},
				Phases: []bench.PhaseResult{{Name: bench.PhaseUserhooks,
					Receipt: bench.LatencySummary{Count: 100, P50Ms: tt.p50, P99Ms: tt.p50}}},
			}
			r.Evaluate()
			var got string
			for _, c := range r.Targets {
				if c.Name == "publish→receipt p50" {
					got = c.Status
				}
			}
			if got != tt.wantP50 {
				t.Errorf("p50 target status = %q, want %q (targets: %+v)", got, tt.wantP50, r.Targets)
			}
		})
	}
}
