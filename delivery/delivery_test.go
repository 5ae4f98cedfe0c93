package delivery_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/delivery"
)

func TestClassifyStatus(t *testing.T) {
	tests := []struct {
		code      int
		want      delivery.ErrorClass
		retryable bool
	}{
		{200, "", false}, {204, "", false}, {299, "", false},
		{301, delivery.ClassRedirect, true}, {302, delivery.ClassRedirect, true},
		{400, delivery.ClassClientError, false}, {401, delivery.ClassClientError, false}, {404, delivery.ClassClientError, false},
		{408, delivery.ClassRetryableStatus, true}, {425, delivery.ClassRetryableStatus, true}, {429, delivery.ClassRetryableStatus, true},
		{410, delivery.ClassGone, false},
		{500, delivery.ClassServerError, true}, {503, delivery.ClassServerError, true}, {599, delivery.ClassServerError, true},
		{100, delivery.ClassServerError, true}, {0, delivery.ClassServerError, true},
	}
	for _, tt := range tests {
		got := delivery.ClassifyStatus(tt.code)
		if got != tt.want {
			t.Errorf("ClassifyStatus(%d) = %q, want %q", tt.code, got, tt.want)
		}
		if got != "" && got.Retryable() != tt.retryable {
			t.Errorf("ClassifyStatus(%d).Retryable() = %v, want %v", tt.code, got.Retryable(), tt.retryable)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"abc", 0}, {"1.5", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"99999999999999999", delivery.MaxDelay},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := delivery.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDefaultSchedule_SpansAboutThreeDays(t *testing.T) {
	s := delivery.DefaultSchedule()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if total := s.Total(); total < 60*time.Hour || total > 84*time.Hour {
		t.Errorf("default schedule spans %s, want about 3 days", total)
	}
	for i := 1; i < len(s.Delays)-1; i++ {
		if s.Delays[i] < s.Delays[i-1] && i < len(s.Delays)-1 {
			t.Errorf("delay %d (%s) shorter than delay %d (%s): intervals should grow", i+1, time.Duration(s.Delays[i]), i, time.Duration(s.Delays[i-1]))
		}
	}
}

func TestNextDelay_JitterIsBoundedAndDeterministic(t *testing.T) {
	s := delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Minute)}, Jitter: 0.2}
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		seed := "delivery/evt/" + strings.Repeat("x", i)
		d, ok := s.NextDelay(1, 0, seed)
		if !ok || d < 48*time.Second || d > 72*time.Second {
			t.Fatalf("NextDelay = %s, %v; want 60 s ± 20 %%", d, ok)
		}
		if again, _ := s.NextDelay(1, 0, seed); again != d {
			t.Fatalf("NextDelay not deterministic for seed %q: %s then %s", seed, d, again)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("jitter produced only %d distinct delays over 200 seeds", len(seen))
	}
}

func TestNextDelay_RetryAfterLengthensButNeverShortensTheWait(t *testing.T) {
	s := delivery.Schedule{
		Delays:        []delivery.Duration{delivery.Duration(time.Minute), delivery.Duration(time.Minute)},
		MaxRetryAfter: delivery.Duration(time.Hour),
	}
	noCap := delivery.Schedule{Delays: s.Delays}
	for _, tt := range []struct {
		name             string
		s                delivery.Schedule
		retryAfter, want time.Duration
	}{
		{"longer than scheduled", s, 30 * time.Minute, 30 * time.Minute},
		{"shorter than scheduled", s, time.Second, time.Minute},
		{"over the cap", s, 48 * time.Hour, time.Hour},
		{"no cap set: default cap", noCap, 48 * time.Hour, delivery.DefaultMaxRetryAfter},
		{"no cap set: honoured below it", noCap, 90 * time.Second, 90 * time.Second},
	} {
		if got, ok := tt.s.NextDelay(1, tt.retryAfter, "seed"); !ok || got != tt.want {
			t.Errorf("%s: NextDelay with Retry-After %s = %s, %v; want %s", tt.name, tt.retryAfter, got, ok, tt.want)
		}
	}
	if _, ok := s.NextDelay(3, 0, "seed"); ok {
		t.Error("NextDelay after the last attempt should report the schedule exhausted")
	}
	if _, ok := s.NextDelay(3, time.Second, "seed"); ok {
		t.Error("Retry-After must not extend an exhausted schedule")
	}
}

func TestSchedule_ValidateRejectsAbuse(t *testing.T) {
	d := func(v time.Duration) delivery.Duration { return delivery.Duration(v) }
	tests := map[string]delivery.Schedule{
		"delay too short":    {Delays: []delivery.Duration{d(time.Millisecond)}},
		"delay too long":     {Delays: []delivery.Duration{d(30 * 24 * time.Hour)}},
		"too many delays":    {Delays: make([]delivery.Duration, delivery.MaxDelays+1)},
		"spans too long":     {Delays: []delivery.Duration{d(7 * 24 * time.Hour), d(7 * 24 * time.Hour), d(time.Hour)}},
		"negative jitter":    {Jitter: -0.1},
		"jitter too big":     {Jitter: 0.9},
		"negative max retry": {MaxRetryAfter: d(-time.Minute)},
		"max retry too big":  {MaxRetryAfter: d(30 * 24 * time.Hour)},
	}
	for name, s := range tests {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
}

func TestDuration_JSON(t *testing.T) {
	var s delivery.Schedule
	if err := json.Unmarshal([]byte(`{"delays":["5s","1m30s",1000000000],"jitter":0.1}`), &s); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{5 * time.Second, 90 * time.Second, time.Second}
	for i, w := range want {
		if time.Duration(s.Delays[i]) != w {
			t.Errorf("delay %d = %s, want %s", i, time.Duration(s.Delays[i]), w)
		}
	}
	out, _ := json.Marshal(s)
	if !strings.Contains(string(out), `"delays":["5s","1m30s","1s"]`) {
		t.Errorf("marshalled schedule %s, want durations as strings", out)
	}
	for _, bad := range []string{`"5 parsecs"`, `true`, `{}`} {
		var d delivery.Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Duration accepted %s", bad)
		}
	}
}
