package bench

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LatencySummary describes a set of durations, in milliseconds.
// Percentiles use the nearest-rank method: P95 is the smallest sample
// that at least 95 % of the samples do not exceed.
type LatencySummary struct {
	Count  int     `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summarize returns the summary of ds. It does not modify ds. An empty
// set gives the zero summary.
func Summarize(ds []time.Duration) LatencySummary {
	if len(ds) == 0 {
		return LatencySummary{}
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return LatencySummary{
		Count:  len(sorted),
		MinMs:  ms(sorted[0]),
		MeanMs: ms(sum / time.Duration(len(sorted))),
		P50Ms:  ms(Percentile(sorted, 50)),
		P95Ms:  ms(Percentile(sorted, 95)),
		P99Ms:  ms(Percentile(sorted, 99)),
		MaxMs:  ms(sorted[len(sorted)-1]),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, which must be in ascending order; p ≤ 0 gives the minimum. It
// returns 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*100) / 100
}

// ParseRate reads an event rate: a positive number of events per second
// ("20", "20/s", "0.5/s"), per minute ("1200/m", "1200/min") or per hour
// ("3600/h"). It returns events per second.
func ParseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	per := 1.0
	switch strings.TrimSpace(unit) {
	case "", "s", "sec":
	case "m", "min":
		per = 60
	case "h", "hour":
		per = 3600
	default:
		return 0, fmt.Errorf("rate %q: unit %q is not s, m or h (write e.g. 20/s)", s, unit)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("rate %q: want a number of events per second, e.g. 20/s", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("rate %q: must be positive", s)
	}
	return v / per, nil
}
