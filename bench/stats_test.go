package bench_test

import (
	"testing"
	"time"

	"github.com/userhooks/userhooks/bench"
)

func millis(ns ...int) []time.Duration {
	ds := make([]time.Duration, len(ns))
	for i, n := range ns {
		ds[i] = time.Duration(n) * time.Millisecond
	}
	return ds
}

func oneToHundred() []time.Duration {
	ds := make([]time.Duration, 100)
	for i := range ds {
		// Reversed, so Summarize has to sort.
		ds[i] = time.Duration(100-i) * time.Millisecond
	}
	return ds
}

func TestSummarize_NearestRankPercentiles(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want bench.LatencySummary
	}{
		{"empty gives zero", nil, bench.LatencySummary{}},
		{"one sample is every percentile", millis(7), bench.LatencySummary{Count: 1, MinMs: 7, MeanMs: 7, P50Ms: 7, P95Ms: 7, P99Ms: 7, MaxMs: 7}},
		{"1 to 100 ms", oneToHundred(), bench.LatencySummary{Count: 100, MinMs: 1, MeanMs: 50.5, P50Ms: 50, P95Ms: 95, P99Ms: 99, MaxMs: 100}},
		{"ten samples: p95 and p99 are the largest", millis(1, 2, 3, 4, 5, 6, 7, 8, 9, 1000), bench.LatencySummary{Count: 10, MinMs: 1, MeanMs: 104.5, P50Ms: 5, P95Ms: 1000, P99Ms: 1000, MaxMs: 1000}},
		{"sub-millisecond values keep two decimals", []time.Duration{1234 * time.Microsecond}, bench.LatencySummary{Count: 1, MinMs: 1.23, MeanMs: 1.23, P50Ms: 1.23, P95Ms: 1.23, P99Ms: 1.23, MaxMs: 1.23}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bench.Summarize(tt.in); got != tt.want {
				t.Errorf("Summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSummarize_LeavesInputUnsorted(t *testing.T) {
	in := millis(3, 1, 2)
	bench.Summarize(in)
	if in[0] != 3*time.Millisecond || in[1] != time.Millisecond {
		t.Errorf("input reordered: %v", in)
	}
}

func TestPercentile_Bounds(t *testing.T) {
	sorted := millis(10, 20, 30, 40)
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{-5, 10 * time.Millisecond},
		{0, 10 * time.Millisecond},
		{25, 10 * time.Millisecond},
		{26, 20 * time.Millisecond},
		{50, 20 * time.Millisecond},
		{75, 30 * time.Millisecond},
		{100, 40 * time.Millisecond},
		{250, 40 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := bench.Percentile(sorted, tt.p); got != tt.want {
			t.Errorf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := bench.Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile of nothing = %v, want 0", got)
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"20", 20, false},
		{"20/s", 20, false},
		{" 0.5/s ", 0.5, false},
		{"1200/m", 20, false},
		{"1200/min", 20, false},
		{"3600/h", 1, false},
		{"", 0, true},
		{"fast", 0, true},
		{"0/s", 0, true},
		{"-3/s", 0, true},
		{"20/d", 0, true},
		{"NaN/s", 0, true},
		{"Inf", 0, true},
	}
	for _, tt := range tests {
		got, err := bench.ParseRate(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRate(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRate(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
