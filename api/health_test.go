package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// healthAnswer is the health of a subscription as the API answers it.
type healthAnswer struct {
	LastSuccessAt  *time.Time `json:"last_success_at"`
	FailingSince   *time.Time `json:"failing_since"`
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
}

// healthOf fetches a subscription through the API and returns its enabled
// state and health; it fails unless every health field is present.
func (h *harness) healthOf(id string) (bool, healthAnswer) {
	h.t.Helper()
	r := h.get(h.acme, "/v1/subscriptions/"+id).want(h.t, http.StatusOK)
	return decodeHealth(h.t, r)
}

func decodeHealth(t testing.TB, r response) (bool, healthAnswer) {
	t.Helper()
	var raw struct {
		Enabled bool                       `json:"enabled"`
		Health  map[string]json.RawMessage `json:"health"`
	}
	r.decode(t, &raw)
	for _, k := range []string{"last_success_at", "failing_since", "disabled_reason", "disabled_at"} {
		if _, ok := raw.Health[k]; !ok {
			t.Fatalf("health has no %s (unset fields are null, never left out): %s", k, r.body)
		}
	}
	var a struct {
		Health healthAnswer `json:"health"`
	}
	r.decode(t, &a)
	return raw.Enabled, a.Health
}

func sameTime(got *time.Time, want time.Time) bool { return got != nil && got.Equal(want) }

func sameHealth(a, b healthAnswer) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestSubscriptionHealth_IsShownAndEnablingResetsTheFailureClock(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	id, _ := h.createSubscription(h.acme, validSubscription)

	if enabled, got := h.healthOf(id); !enabled || got != (healthAnswer{}) {
		t.Fatalf("new subscription: enabled %t, health %+v; want enabled and every field null", enabled, got)
	}

	success := time.Date(2026, 11, 18, 9, 0, 0, 0, time.UTC)
	failing := success.Add(time.Hour)
	disabledAt := failing.Add(5 * 24 * time.Hour)
	const reason = "no successful delivery for at least 5 days, and a delivery used up its retry schedule"
	if err := h.subs.RecordAttempt(ctx, id, true, success); err != nil {
		t.Fatal(err)
	}
	if err := h.subs.RecordAttempt(ctx, id, false, failing); err != nil {
		t.Fatal(err)
	}
	if enabled, got := h.healthOf(id); !enabled || !sameTime(got.LastSuccessAt, success) || !sameTime(got.FailingSince, failing) ||
		got.DisabledReason != nil || got.DisabledAt != nil {
		t.Errorf("failing subscription: enabled %t, health %+v; want last success %v, failing since %v, not disabled", enabled, got, success, failing)
	}
	if changed, err := h.subs.DisableIfFailing(ctx, id, reason, failing, disabledAt); err != nil || !changed {
		t.Fatalf("DisableIfFailing = %t, %v", changed, err)
	}
	enabled, got := h.healthOf(id)
	if enabled || !sameTime(got.LastSuccessAt, success) || !sameTime(got.FailingSince, failing) ||
		got.DisabledReason == nil || *got.DisabledReason != reason || !sameTime(got.DisabledAt, disabledAt) {
		t.Errorf("disabled by userhooks: enabled %t, health %+v; want disabled at %v for %q", enabled, got, disabledAt, reason)
	}
	var list struct {
		Subscriptions []json.RawMessage `json:"subscriptions"`
	}
	h.get(h.acme, "/v1/subscriptions").want(t, http.StatusOK).decode(t, &list)
	if len(list.Subscriptions) != 1 {
		t.Fatalf("list holds %d subscriptions, want 1", len(list.Subscriptions))
	}
	if _, inList := decodeHealth(t, response{body: list.Subscriptions[0]}); !sameHealth(inList, got) {
		t.Errorf("list shows health %+v, want %+v as GET does", inList, got)
	}

	// One API call enables it again and restarts the failure clock; the
	// last success stays.
	r := h.post(h.acme, "/v1/subscriptions/"+id+"/enable", "").want(t, http.StatusOK)
	enabled, got = decodeHealth(t, r)
	if want := (healthAnswer{LastSuccessAt: &success}); !enabled || !sameTime(got.LastSuccessAt, success) ||
		got.FailingSince != nil || got.DisabledReason != nil || got.DisabledAt != nil {
		t.Errorf("after enable: enabled %t, health %+v; want enabled, %+v", enabled, got, want)
	}
	stored := h.stored(id).Health
	if !stored.LastSuccessAt.Equal(success) || stored.Failing() || stored.DisabledReason != "" || !stored.DisabledAt.IsZero() {
		t.Errorf("stored health after enable = %+v, want the failure clock and the disable cleared", stored)
	}
	// The clock restarted: a failure a minute from now is the new start,
	// although the endpoint had been failing since long before.
	again := time.Now().UTC().Add(time.Minute).Truncate(time.Microsecond)
	if err := h.subs.RecordAttempt(ctx, id, false, again); err != nil {
		t.Fatal(err)
	}
	if _, got := h.healthOf(id); !sameTime(got.FailingSince, again) {
		t.Errorf("failure after enabling: failing_since = %v, want %v", got.FailingSince, again)
	}
	if changed, err := h.subs.DisableIfFailing(ctx, id, reason, failing.Add(24*time.Hour), time.Now()); err != nil || changed {
		t.Errorf("DisableIfFailing measuring from before the enable = %t, %v; want no change", changed, err)
	}

	// Paused by its owner: a time, no reason.
	before := time.Now().Add(-time.Second)
	r = h.post(h.acme, "/v1/subscriptions/"+id+"/disable", "").want(t, http.StatusOK)
	enabled, got = decodeHealth(t, r)
	if enabled || got.DisabledReason != nil || got.DisabledAt == nil || got.DisabledAt.Before(before) || !sameTime(got.FailingSince, again) {
		t.Errorf("after disable through the API: enabled %t, health %+v; want disabled now, no reason, failing_since kept", enabled, got)
	}
}
