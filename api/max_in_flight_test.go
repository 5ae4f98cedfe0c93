package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// maxInFlightAnswer is the part of a subscription answer these tests read.
type maxInFlightAnswer struct {
	ID          string `json:"id"`
	MaxInFlight *int   `json:"max_in_flight"`
}

func TestSubscriptionMaxInFlight_IsSetAtCreationAndShown(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, body string
		want       int
	}{
		{"left out", `{"url": "https://r.example/"}`, 0},
		{"set", `{"url": "https://r.example/", "max_in_flight": 5}`, 5},
		{"largest", `{"url": "https://r.example/", "max_in_flight": 1000}`, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var created, got maxInFlightAnswer
			h.post(h.acme, "/v1/subscriptions", tt.body).want(t, http.StatusCreated).decode(t, &created)
			h.get(h.acme, "/v1/subscriptions/"+created.ID).want(t, http.StatusOK).decode(t, &got)
			for what, a := range map[string]maxInFlightAnswer{"POST": created, "GET": got} {
				if a.MaxInFlight == nil || *a.MaxInFlight != tt.want {
					t.Errorf("%s answers max_in_flight %v, want %d", what, a.MaxInFlight, tt.want)
				}
			}
			if s := h.stored(created.ID); s.MaxInFlight != tt.want {
				t.Errorf("stored MaxInFlight %d, want %d", s.MaxInFlight, tt.want)
			}
		})
	}
}

func TestSubscriptionMaxInFlight_IsPatchedAndNullRemovesIt(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, `{"url": "https://r.example/", "max_in_flight": 2}`)
	for _, step := range []struct {
		patch string
		want  int
	}{
		{`{"max_in_flight": 7}`, 7},
		{`{"description": "only this"}`, 7},
		{`{"max_in_flight": null}`, 0},
		{`{"max_in_flight": 1}`, 1},
		{`{"max_in_flight": 0}`, 0},
	} {
		var a maxInFlightAnswer
		h.patch(h.acme, "/v1/subscriptions/"+id, step.patch).want(t, http.StatusOK).decode(t, &a)
		if a.MaxInFlight == nil || *a.MaxInFlight != step.want {
			t.Errorf("after %s, max_in_flight = %v, want %d", step.patch, a.MaxInFlight, step.want)
		}
		if s := h.stored(id); s.MaxInFlight != step.want {
			t.Errorf("after %s, stored MaxInFlight %d, want %d", step.patch, s.MaxInFlight, step.want)
		}
	}
}

func TestSubscriptionMaxInFlight_RefusalsChangeNothing(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, `{"url": "https://r.example/", "max_in_flight": 4}`)
	before := h.stored(id)
	tests := []struct {
		name, body string
		status     int
		problem    string
	}{
		{"over the limit", `{"max_in_flight": 1001}`, 422, "max_in_flight is 1001, want 0 (no limit) to 1000"},
		{"negative", `{"max_in_flight": -1}`, 422, "max_in_flight is -1"},
		{"not a number", `{"max_in_flight": "3"}`, 400, "max_in_flight"},
		{"not whole", `{"max_in_flight": 2.5}`, 400, "max_in_flight"},
	}
	for _, tt := range tests {
		t.Run("create/"+tt.name, func(t *testing.T) {
			body := `{"url": "https://r.example/", ` + strings.TrimPrefix(tt.body, "{")
			text := h.post(h.acme, "/v1/subscriptions", body).want(t, tt.status).problemText(t)
			if !strings.Contains(text, tt.problem) {
				t.Errorf("problem %q lacks %q", text, tt.problem)
			}
		})
		t.Run("patch/"+tt.name, func(t *testing.T) {
			text := h.patch(h.acme, "/v1/subscriptions/"+id, tt.body).want(t, tt.status).problemText(t)
			if !strings.Contains(text, tt.problem) {
				t.Errorf("problem %q lacks %q", text, tt.problem)
			}
		})
	}
	if n := h.storedCount("acme"); n != 1 {
		t.Errorf("%d subscriptions stored, want only the first", n)
	}
	if after := h.stored(id); after.MaxInFlight != before.MaxInFlight || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("refused patches changed the subscription: MaxInFlight %d → %d", before.MaxInFlight, after.MaxInFlight)
	}
}
