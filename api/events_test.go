package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/event"
)

const userCreated = `{
	"id": "evt_0001",
	"type": "user.created",
	"timestamp": "2026-11-23T08:59:00.123Z",
	"account_id": "acme",
	"data": {"user": {"id": "u_42", "email": "ada@example.com", "attributes": {"seats": 12345678901234567890}}}
}`

type publishAnswer struct {
	EventID    string          `json:"event_id"`
	WorkflowID string          `json:"workflow_id"`
	RunID      string          `json:"run_id"`
	Duplicate  bool            `json:"duplicate"`
	Event      json.RawMessage `json:"event"`
}

func TestPublish_FirstIs202AndTheSameIDAgainIs200WithTheOriginalRun(t *testing.T) {
	h := newHarness(t)
	var first, again publishAnswer
	h.post(h.acme, "/v1/events", userCreated).want(t, http.StatusAccepted).decode(t, &first)
	if first.EventID != "evt_0001" || first.WorkflowID != "event/evt_0001" || first.RunID == "" || first.Duplicate {
		t.Errorf("first publish = %+v", first)
	}
	e, err := event.Decode(first.Event)
	if err != nil {
		t.Fatalf("answer's event does not decode: %v", err)
	}
	if e.ID != "evt_0001" || e.AccountID != "acme" || string(e.Data.User.Attributes["seats"]) != "12345678901234567890" {
		t.Errorf("answer's event = %+v", e)
	}

	h.post(h.acme, "/v1/events", userCreated).want(t, http.StatusOK).decode(t, &again)
	if !again.Duplicate || again.RunID != first.RunID || again.EventID != first.EventID {
		t.Errorf("second publish = %+v, want duplicate of run %s", again, first.RunID)
	}
	if n := h.pub.count(); n != 1 {
		t.Errorf("%d runs started, want 1", n)
	}
}

func TestPublish_FillsInIDTimestampAndTheKeysAccount(t *testing.T) {
	h := newHarness(t)
	var a publishAnswer
	h.post(h.acme, "/v1/events", `{"type": "user.deleted", "data": {"user": {"id": "u_7"}}}`).
		want(t, http.StatusAccepted).decode(t, &a)
	got := h.pub.first()
	if got.AccountID != "acme" || got.ID == "" || got.ID != a.EventID || !got.Timestamp.Equal(t0) {
		t.Errorf("published %+v; want account acme, an assigned ID (%s) and timestamp %v", got, a.EventID, t0)
	}
	// Without an ID, every publish is a new event.
	h.post(h.acme, "/v1/events", `{"type": "user.deleted", "data": {"user": {"id": "u_7"}}}`).want(t, http.StatusAccepted)
	if n := h.pub.count(); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
}

func TestPublish_AnotherAccountIs422AndPublishesNothing(t *testing.T) {
	h := newHarness(t)
	for _, account := range []string{"globex", "no-such-account", "not valid!"} {
		body := strings.Replace(userCreated, `"account_id": "acme"`, `"account_id": "`+account+`"`, 1)
		r := h.post(h.acme, "/v1/events", body).want(t, http.StatusUnprocessableEntity)
		if text := r.problemText(t); !strings.Contains(text, "account_id does not match the API key's account") || strings.Contains(text, "acme") {
			t.Errorf("account %s: %s", account, text)
		}
	}
	// The answer for an existing account and a made-up one is the same.
	a := h.post(h.acme, "/v1/events", strings.Replace(userCreated, `"acme"`, `"globex"`, 1))
	b := h.post(h.acme, "/v1/events", strings.Replace(userCreated, `"acme"`, `"initech"`, 1))
	if string(a.body) != string(b.body) {
		t.Errorf("existing account: %s\nunknown account: %s", a.body, b.body)
	}
	if n := h.pub.count(); n != 0 {
		t.Errorf("%d events published", n)
	}
}

func TestPublish_InvalidEventsAre422ListingEveryProblem(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, body string
		problems   []string
	}{
		{"several problems", `{"id": "bad id", "type": "user.exploded", "data": {"user": {}}}`,
			[]string{`id "bad id" may only contain`, `type "user.exploded" is unknown`, "data.user.id is required"}},
		{"updated without previous attributes", `{"type": "user.updated", "data": {"user": {"id": "u_1"}}}`,
			[]string{"data.previous_attributes is required"}},
		{"previous attributes on created", `{"type": "user.created", "data": {"user": {"id": "u_1"}, "previous_attributes": {"email": null}}}`,
			[]string{"only allowed on user.updated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := h.post(h.acme, "/v1/events", tt.body).want(t, http.StatusUnprocessableEntity).problemText(t)
			for _, p := range tt.problems {
				if !strings.Contains(text, p) {
					t.Errorf("problems %q lack %q", text, p)
				}
			}
		})
	}
	if n := h.pub.count(); n != 0 {
		t.Errorf("%d events published", n)
	}
}

func TestPublish_MalformedBodiesAre400(t *testing.T) {
	h := newHarness(t)
	tests := []struct{ name, body, problem string }{
		{"unknown field", `{"type": "user.created", "data": {"user": {"id": "u_1"}}, "acount_id": "acme"}`, `unknown field "acount_id"`},
		{"unknown nested field", `{"type": "user.created", "data": {"user": {"id": "u_1", "mail": "x"}}}`, `unknown field "mail"`},
		{"wrong type", `{"type": "user.created", "data": {"user": {"id": 42}}}`, "data.user.id must be a string, not number"},
		{"bad timestamp", `{"type": "user.created", "timestamp": "yesterday", "data": {"user": {"id": "u_1"}}}`, "yesterday"},
		{"two objects", `{"type": "user.created", "data": {"user": {"id": "u_1"}}}{}`, "after the JSON object"},
		{"truncated", `{"type": "user.created", "data": {"user": {"id": "u_1"}}`, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := h.post(h.acme, "/v1/events", tt.body).want(t, http.StatusBadRequest).problemText(t)
			if !strings.Contains(text, tt.problem) {
				t.Errorf("problem %q lacks %q", text, tt.problem)
			}
		})
	}
	if n := h.pub.count(); n != 0 {
		t.Errorf("%d events published", n)
	}
}

func TestPublish_BodiesUpToMaxBodyBytesAreAcceptedAndLargerOnes413(t *testing.T) {
	h := newHarness(t)
	small := `{"type": "user.created", "data": {"user": {"id": "u_1"}}}`
	pad := func(n int) string { return small + strings.Repeat(" ", n-len(small)) }
	h.post(h.acme, "/v1/events", pad(event.MaxBodyBytes)).want(t, http.StatusAccepted)
	r := h.post(h.acme, "/v1/events", pad(event.MaxBodyBytes+1)).want(t, http.StatusRequestEntityTooLarge)
	if !strings.Contains(r.problemText(t), "65536") {
		t.Errorf("413 does not name the limit: %s", r.body)
	}
	if n := h.pub.count(); n != 1 {
		t.Errorf("%d events published, want 1", n)
	}
}

func TestPublish_PublisherFailureIs503(t *testing.T) {
	h := newHarness(t)
	h.pub.setErr(errors.New("temporal: deadline exceeded"))
	r := h.post(h.acme, "/v1/events", userCreated).want(t, http.StatusServiceUnavailable)
	if strings.Contains(string(r.body), "deadline") {
		t.Errorf("503 shows the internal error: %s", r.body)
	}
	logged := h.logs.AllUntimed()
	if len(logged) != 1 || !strings.Contains(logged[0].ContextMap()["error"].(string), "deadline exceeded") {
		t.Errorf("log = %v, want the publisher's error", logged)
	}
}

func TestPublish_TimestampsAreKeptInUTCMilliseconds(t *testing.T) {
	h := newHarness(t)
	h.post(h.acme, "/v1/events", `{"type": "user.created", "timestamp": "2026-11-23T10:00:00.123456+01:00", "data": {"user": {"id": "u_1"}}}`).
		want(t, http.StatusAccepted)
	want := time.Date(2026, 11, 23, 9, 0, 0, 123e6, time.UTC)
	if got := h.pub.first().Timestamp; !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("timestamp = %v, want %v", got, want)
	}
}
