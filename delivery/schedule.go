package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("5s", "1h30m"), so schedules are readable in API bodies and in
// workflow history. It also accepts a number of nanoseconds when decoding.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "90s"-style strings and integer nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"30s\"", b)
	}
	*d = Duration(n)
	return nil
}

// Schedule is a retry schedule declared as data. Attempt 1 happens at once;
// attempt n+1 happens Delays[n-1] (± Jitter) after attempt n failed. A
// schedule with k delays therefore allows k+1 attempts in all.
//
// A Retry-After header on a retryable answer can lengthen the scheduled
// delay, up to MaxRetryAfter, never shorten it: a receiver that always asks
// for one second cannot burn through the schedule in seconds.
type Schedule struct {
	// Delays between attempts, in order.
	Delays []Duration `json:"delays"`
	// Jitter spreads each delay by up to ± this fraction (0 ≤ Jitter ≤ 0.5),
	// so that endpoints recovering from an outage are not hit in lockstep.
	Jitter float64 `json:"jitter"`
	// MaxRetryAfter caps how far a receiver's Retry-After may push the next
	// attempt out; zero means DefaultMaxRetryAfter.
	MaxRetryAfter Duration `json:"max_retry_after,omitempty"`
}

// Limits on schedules accepted from users, so that one subscription cannot
// make a delivery workflow run for months or retry in a tight loop.
const (
	MaxDelays     = 50
	MinDelay      = time.Second
	MaxDelay      = 7 * 24 * time.Hour
	MaxTotalDelay = 14 * 24 * time.Hour
	// DefaultMaxRetryAfter caps Retry-After when a schedule sets no cap.
	DefaultMaxRetryAfter = 6 * time.Hour
)

// DefaultSchedule is the schedule used when a subscription sets none: 12
// attempts over about 3 days with growing intervals and ±20 % jitter,
// modelled on the published schedules of Svix (about 1 day) and Stripe (up to
// 3 days).
func DefaultSchedule() Schedule {
	return Schedule{
		Delays: []Duration{
			Duration(5 * time.Second),
			Duration(time.Minute),
			Duration(5 * time.Minute),
			Duration(30 * time.Minute),
			Duration(time.Hour),
			Duration(2 * time.Hour),
			Duration(4 * time.Hour),
			Duration(8 * time.Hour),
			Duration(12 * time.Hour),
			Duration(24 * time.Hour),
			Duration(20 * time.Hour),
		},
		Jitter:        0.2,
		MaxRetryAfter: Duration(DefaultMaxRetryAfter),
	}
}

// MaxAttempts is the number of attempts the schedule allows.
func (s Schedule) MaxAttempts() int { return len(s.Delays) + 1 }

// Total is the sum of all delays without jitter: roughly how long a delivery
// to an endpoint that never recovers keeps trying.
func (s Schedule) Total() time.Duration {
	var t time.Duration
	for _, d := range s.Delays {
		t += time.Duration(d)
	}
	return t
}

// Validate reports the first reason the schedule cannot be used.
func (s Schedule) Validate() error {
	if len(s.Delays) > MaxDelays {
		return fmt.Errorf("retry schedule has %d delays, at most %d allowed", len(s.Delays), MaxDelays)
	}
	for i, d := range s.Delays {
		if time.Duration(d) < MinDelay || time.Duration(d) > MaxDelay {
			return fmt.Errorf("retry schedule delay %d is %s, want between %s and %s", i+1, time.Duration(d), MinDelay, MaxDelay)
		}
	}
	if t := s.Total(); t > MaxTotalDelay {
		return fmt.Errorf("retry schedule spans %s, at most %s allowed", t, MaxTotalDelay)
	}
	if s.Jitter < 0 || s.Jitter > 0.5 {
		return fmt.Errorf("retry schedule jitter is %g, want between 0 and 0.5", s.Jitter)
	}
	if s.MaxRetryAfter < 0 {
		return errors.New("retry schedule max_retry_after must not be negative")
	}
	if time.Duration(s.MaxRetryAfter) > MaxDelay {
		return fmt.Errorf("retry schedule max_retry_after is %s, at most %s allowed", time.Duration(s.MaxRetryAfter), MaxDelay)
	}
	return nil
}

// NextDelay returns how long to wait after the failed attempt number
// `attempt` (1-based) before the next one, and false when the schedule is
// exhausted. retryAfter is the receiver's Retry-After (0 when absent): the
// wait is the later of the jittered scheduled delay and retryAfter capped
// at MaxRetryAfter.
//
// The result is a pure function of its inputs: jitter is derived from seed
// (the workflow ID) and the attempt number, so workflow code may call it and
// stay deterministic on replay.
func (s Schedule) NextDelay(attempt int, retryAfter time.Duration, seed string) (time.Duration, bool) {
	if attempt < 1 || attempt > len(s.Delays) {
		return 0, false
	}
	delay := time.Duration(s.Delays[attempt-1])
	if s.Jitter != 0 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s#%d", seed, attempt)
		// Map the hash onto [-1, 1) and scale it by the jitter fraction.
		unit := float64(h.Sum64()>>11)/float64(1<<53)*2 - 1
		delay += time.Duration(unit * s.Jitter * float64(delay))
	}
	if retryAfter > 0 {
		maxRA := time.Duration(s.MaxRetryAfter)
		if maxRA == 0 {
			maxRA = DefaultMaxRetryAfter
		}
		delay = max(delay, min(retryAfter, maxRA))
	}
	return delay, true
}
