package api_test

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// subAnswer is a subscription as the API answers it.
type subAnswer struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id"`
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
	Enabled     bool     `json:"enabled"`
	Schedule    *struct {
		Delays        []string `json:"delays"`
		Jitter        float64  `json:"jitter"`
		MaxRetryAfter *string  `json:"max_retry_after"`
	} `json:"schedule"`
	Secrets []struct {
		Active    bool       `json:"active"`
		ExpiresAt *time.Time `json:"expires_at"`
	} `json:"secrets"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	Health    healthAnswer `json:"health"`
	Secret    string       `json:"secret"`
}

func TestCreateSubscription_ShowsTheSecretOnceAndNeverAgain(t *testing.T) {
	h := newHarness(t)
	r := h.post(h.acme, "/v1/subscriptions", `{
		"url": "https://receiver.example/hooks",
		"event_types": ["user.deleted", "user.created", "user.created"],
		"description": "CRM sync"
	}`).want(t, http.StatusCreated)
	var a subAnswer
	r.decode(t, &a)
	if loc := r.header.Get("Location"); loc != "/v1/subscriptions/"+a.ID {
		t.Errorf("Location = %q", loc)
	}
	if a.AccountID != "acme" || a.URL != "https://receiver.example/hooks" || !a.Enabled || a.Description != "CRM sync" ||
		!reflect.DeepEqual(a.EventTypes, []string{"user.created", "user.deleted"}) || a.Schedule != nil || len(a.Secrets) != 1 ||
		!a.Secrets[0].Active || a.Secrets[0].ExpiresAt != nil {
		t.Errorf("answer = %+v", a)
	}
	secret, err := signature.ParseSecret(a.Secret)
	if err != nil {
		t.Fatalf("secret in the answer: %v", err)
	}
	if stored := h.stored(a.ID); len(stored.Secrets) != 1 || !stored.Secrets[0].Key.Equal(secret) {
		t.Error("the secret shown is not the one stored")
	}
	for _, path := range []string{"/v1/subscriptions/" + a.ID, "/v1/subscriptions"} {
		if body := h.get(h.acme, path).want(t, http.StatusOK).body; strings.Contains(string(body), "whsec_") ||
			strings.Contains(string(body), a.Secret[len("whsec_"):len("whsec_")+8]) {
			t.Errorf("GET %s shows the secret: %s", path, body)
		}
	}
}

func TestCreateSubscription_HonoursEnabledAndSchedule(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, `{"url": "https://r.example/", "enabled": false,
		"schedule": {"delays": ["10s", "1m"], "jitter": 0.1, "max_retry_after": "1h"}}`)
	s := h.stored(id)
	want := &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(10 * time.Second), delivery.Duration(time.Minute)},
		Jitter: 0.1, MaxRetryAfter: delivery.Duration(time.Hour)}
	if s.Enabled || !reflect.DeepEqual(s.Schedule, want) || s.EventTypes != nil {
		t.Errorf("stored %+v, schedule %+v", s, s.Schedule)
	}
}

func TestCreateSubscription_RefusalsStoreNothing(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, body string
		status     int
		problem    string
	}{
		{"no url", `{"event_types": ["user.created"]}`, 422, "url is required"},
		{"relative url", `{"url": "/hooks"}`, 422, "url must be absolute"},
		{"ftp url", `{"url": "ftp://r.example/"}`, 422, `url scheme is "ftp"`},
		{"unknown event type", `{"url": "https://r.example/", "event_types": ["user.exploded"]}`, 422, "event_types[0]"},
		{"long description", `{"url": "https://r.example/", "description": "` + strings.Repeat("é", 1025) + `"}`, 422, "description is 1025 characters"},
		{"schedule too fast", `{"url": "https://r.example/", "schedule": {"delays": ["1ms"]}}`, 422, "schedule"},
		{"several problems", `{"url": "", "event_types": ["x"]}`, 422, "url is required | event_types[0]"},
		{"blocked by the URL policy", `{"url": "` + blockedURL + `"}`, 422, "url is not allowed: blocked.example resolves to a private address"},
		{"misspelt field", `{"url": "https://r.example/", "event_type": ["user.created"]}`, 400, `unknown field "event_type"`},
		{"misspelt schedule field", `{"url": "https://r.example/", "schedule": {"delay": ["1s"]}}`, 400, `unknown field "delay"`},
		{"event_types not a list", `{"url": "https://r.example/", "event_types": "user.created"}`, 400, "event_types must be an array, not string"},
		{"enabled not a boolean", `{"url": "https://r.example/", "enabled": "yes"}`, 400, "enabled must be true or false"},
		{"bad duration", `{"url": "https://r.example/", "schedule": {"delays": ["soon"]}}`, 400, `invalid duration "soon"`},
		{"secret given", `{"url": "https://r.example/", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`, 400, `unknown field "secret"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := h.post(h.acme, "/v1/subscriptions", tt.body).want(t, tt.status).problemText(t)
			if !strings.Contains(text, tt.problem) {
				t.Errorf("problem %q lacks %q", text, tt.problem)
			}
		})
	}
	if n := h.storedCount("acme"); n != 0 {
		t.Errorf("%d subscriptions stored", n)
	}
	if got := h.checked(); !slices.Equal(got, []string{blockedURL}) {
		t.Errorf("CheckURL was asked %v, want only the valid blocked URL", got)
	}
}

func TestListSubscriptions_PagesInIDOrderWithinTheAccount(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := range 5 {
		id, _ := h.createSubscription(h.acme, fmt.Sprintf(`{"url": "https://r.example/%d"}`, i))
		want = append(want, id)
		h.createSubscription(h.globex, validSubscription)
	}
	slices.Sort(want)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("more than 3 pages of 2 for 5 subscriptions")
		}
		var page struct {
			Subscriptions []subAnswer `json:"subscriptions"`
			NextAfter     *string     `json:"next_after"`
		}
		path := "/v1/subscriptions?limit=2"
		if after != "" {
			path += "&after=" + after
		}
		h.get(h.acme, path).want(t, http.StatusOK).decode(t, &page)
		for _, s := range page.Subscriptions {
			if s.AccountID != "acme" {
				t.Errorf("acme's list holds %+v", s)
			}
			got = append(got, s.ID)
		}
		if page.NextAfter == nil {
			break
		}
		if len(page.Subscriptions) != 2 || *page.NextAfter != page.Subscriptions[1].ID {
			t.Fatalf("page %d: %d subscriptions, next_after %s", pages, len(page.Subscriptions), *page.NextAfter)
		}
		after = *page.NextAfter
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}

	var all struct {
		Subscriptions []subAnswer `json:"subscriptions"`
		NextAfter     *string     `json:"next_after"`
	}
	h.get(h.acme, "/v1/subscriptions").want(t, http.StatusOK).decode(t, &all)
	if len(all.Subscriptions) != 5 || all.NextAfter != nil {
		t.Errorf("default page: %d subscriptions, next_after %v", len(all.Subscriptions), all.NextAfter)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=two", "limit=-1", "after=42", "after=" + strings.ToUpper(want[0])} {
		t.Run(q, func(t *testing.T) {
			r := h.get(h.acme, "/v1/subscriptions?"+q).want(t, http.StatusBadRequest)
			name, _, _ := strings.Cut(q, "=")
			if !strings.Contains(string(r.body), `"parameter":"`+name+`"`) {
				t.Errorf("problem does not name %s: %s", name, r.body)
			}
		})
	}
}

const patchBase = `{"url": "https://a.example/h", "event_types": ["user.created", "user.deleted"], "description": "d",
	"schedule": {"delays": ["10s", "1m"], "jitter": 0.1, "max_retry_after": "1h"}}`

func TestPatchSubscription_MergesLikeAJSONMergePatch(t *testing.T) {
	h := newHarness(t)
	base := subAnswer{}
	id, _ := h.createSubscription(h.acme, patchBase)
	h.get(h.acme, "/v1/subscriptions/"+id).decode(t, &base)

	strp := func(s string) *string { return &s }
	tests := []struct {
		name, patch string
		want        func(a *subAnswer)
	}{
		{"url", `{"url": "https://b.example/h"}`, func(a *subAnswer) { a.URL = "https://b.example/h" }},
		{"event types to all", `{"event_types": null}`, func(a *subAnswer) { a.EventTypes = []string{} }},
		{"event types replaced", `{"event_types": ["user.updated"]}`, func(a *subAnswer) { a.EventTypes = []string{"user.updated"} }},
		{"description removed", `{"description": null}`, func(a *subAnswer) { a.Description = "" }},
		{"description set", `{"description": "new"}`, func(a *subAnswer) { a.Description = "new" }},
		{"schedule to default", `{"schedule": null}`, func(a *subAnswer) { a.Schedule = nil }},
		{"schedule jitter merged", `{"schedule": {"jitter": 0}}`, func(a *subAnswer) { a.Schedule.Jitter = 0 }},
		{"schedule cap removed", `{"schedule": {"max_retry_after": null}}`, func(a *subAnswer) { a.Schedule.MaxRetryAfter = nil }},
		{"schedule delays replaced", `{"schedule": {"delays": ["5s"]}}`, func(a *subAnswer) { a.Schedule.Delays = []string{"5s"} }},
		{"two fields", `{"url": "https://c.example/", "schedule": {"max_retry_after": "2h"}}`, func(a *subAnswer) {
			a.URL = "https://c.example/"
			a.Schedule.MaxRetryAfter = strp("2h0m0s")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _ := h.createSubscription(h.acme, patchBase)
			var got subAnswer
			h.patch(h.acme, "/v1/subscriptions/"+id, tt.patch).want(t, http.StatusOK).decode(t, &got)
			want := base
			sched := *base.Schedule
			want.Schedule = &sched
			want.EventTypes = slices.Clone(base.EventTypes)
			tt.want(&want)
			want.ID, want.CreatedAt, want.UpdatedAt, want.Secrets = got.ID, got.CreatedAt, got.UpdatedAt, got.Secrets
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after %s:\n got %+v\nwant %+v", tt.patch, got, want)
			}
			// The store agrees with the answer.
			var again subAnswer
			h.get(h.acme, "/v1/subscriptions/"+id).decode(t, &again)
			if !reflect.DeepEqual(again, got) {
				t.Errorf("GET after PATCH = %+v, PATCH answered %+v", again, got)
			}
		})
	}

	t.Run("schedule merged into the default", func(t *testing.T) {
		id, _ := h.createSubscription(h.acme, validSubscription)
		h.patch(h.acme, "/v1/subscriptions/"+id, `{"schedule": {"jitter": 0}}`).want(t, http.StatusOK)
		want := delivery.DefaultSchedule()
		want.Jitter = 0
		if got := h.stored(id).Schedule; !reflect.DeepEqual(got, &want) {
			t.Errorf("schedule = %+v, want the default without jitter", got)
		}
	})
	t.Run("empty patch changes nothing", func(t *testing.T) {
		id, _ := h.createSubscription(h.acme, patchBase)
		before := h.stored(id)
		h.patch(h.acme, "/v1/subscriptions/"+id, `{}`).want(t, http.StatusOK)
		if after := h.stored(id); !reflect.DeepEqual(after, before) {
			t.Errorf("empty patch changed %+v to %+v", before, after)
		}
	})
	t.Run("application/json is accepted too", func(t *testing.T) {
		id, _ := h.createSubscription(h.acme, patchBase)
		h.do(req{method: http.MethodPatch, path: "/v1/subscriptions/" + id, key: h.acme, body: `{"description": "x"}`}).want(t, http.StatusOK)
	})
}

func TestPatchSubscription_RefusalsChangeNothing(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, patchBase)
	before := h.stored(id)
	h.checked()
	tests := []struct {
		name, body string
		status     int
		problem    string
	}{
		{"url removed", `{"url": null}`, 422, "url is required"},
		{"bad url", `{"url": "ftp://x.example/"}`, 422, "url scheme"},
		{"blocked url", `{"url": "` + blockedURL + `"}`, 422, "url is not allowed"},
		{"unknown event type", `{"event_types": ["user.exploded"]}`, 422, "event_types[0]"},
		{"jitter too large", `{"schedule": {"jitter": 0.9}}`, 422, "jitter is 0.9"},
		{"all delays too short", `{"schedule": {"delays": ["1ms"]}, "description": "changed"}`, 422, "delay 1"},
		{"enabled is not patchable", `{"enabled": false}`, 400, `unknown field "enabled"`},
		{"secrets are not patchable", `{"secrets": [], "id": "x"}`, 400, `unknown field "id" | unknown field "secrets"`},
		{"event types not a list", `{"event_types": "user.created"}`, 400, "event_types must be an array, not string"},
		{"description not a string", `{"description": 5}`, 400, "description must be a string, not number"},
		{"schedule not an object", `{"schedule": ["1s"]}`, 400, "schedule must be an object or null"},
		{"misspelt schedule field", `{"schedule": {"delay": ["1s"]}}`, 400, `unknown field "delay"`},
		{"bad duration", `{"schedule": {"delays": ["soon"]}}`, 400, `invalid duration "soon"`},
		{"schedule field wrong type", `{"schedule": {"jitter": "high"}}`, 400, "jitter must be a number, not string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := h.patch(h.acme, "/v1/subscriptions/"+id, tt.body).want(t, tt.status).problemText(t)
			if !strings.Contains(text, tt.problem) {
				t.Errorf("problem %q lacks %q", text, tt.problem)
			}
		})
	}
	r := h.do(req{method: http.MethodPatch, path: "/v1/subscriptions/" + id, key: h.acme, body: `{}`, contentType: "text/plain"}).
		want(t, http.StatusUnsupportedMediaType)
	if ap := r.header.Get("Accept-Patch"); !strings.Contains(ap, "application/merge-patch+json") {
		t.Errorf("Accept-Patch = %q", ap)
	}
	if after := h.stored(id); !reflect.DeepEqual(after, before) {
		t.Errorf("refused patches changed %+v to %+v", before, after)
	}
	if got := h.checked(); !slices.Equal(got, []string{blockedURL}) {
		t.Errorf("CheckURL asked %v, want only the blocked URL (unchanged URLs are not re-checked)", got)
	}
}

func TestEnableDisable_AreIdempotent(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, validSubscription)
	for _, step := range []struct {
		op   string
		want bool
	}{{"disable", false}, {"disable", false}, {"enable", true}, {"enable", true}} {
		var a subAnswer
		h.post(h.acme, "/v1/subscriptions/"+id+"/"+step.op, "").want(t, http.StatusOK).decode(t, &a)
		if a.Enabled != step.want || h.stored(id).Enabled != step.want {
			t.Errorf("after %s: answer enabled=%t, stored enabled=%t; want %t", step.op, a.Enabled, h.stored(id).Enabled, step.want)
		}
	}
	h.post(h.acme, "/v1/subscriptions/"+id+"/disable", "{}").want(t, http.StatusOK)
	h.post(h.acme, "/v1/subscriptions/"+id+"/disable", `{"reason": "x"}`).want(t, http.StatusBadRequest)
}

func TestRotateSecret_OldSecretsSignUntilTheOverlapEndsThenAreDropped(t *testing.T) {
	h := newHarness(t)
	id, first := h.createSubscription(h.acme, validSubscription)
	key := func(s string) signature.Secret {
		k, err := signature.ParseSecret(s)
		if err != nil {
			t.Fatalf("secret in the answer: %v", err)
		}
		return k
	}

	// Rotation 1 at t0, default overlap (24h): both sign.
	var a subAnswer
	h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", "").want(t, http.StatusOK).decode(t, &a)
	second := a.Secret
	s := h.stored(id)
	if len(s.Secrets) != 2 || !s.Secrets[0].Key.Equal(key(second)) || !s.Secrets[0].ExpiresAt.IsZero() ||
		!s.Secrets[1].Key.Equal(key(first)) || !s.Secrets[1].ExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("after rotation 1, stored secrets = %+v; want [second, first expiring at %v]", s.Secrets, t0.Add(24*time.Hour))
	}
	if n := len(s.ActiveSecrets(t0)); n != 2 {
		t.Errorf("%d secrets sign after rotation 1, want 2", n)
	}
	if len(a.Secrets) != 2 || !a.Secrets[1].Active || a.Secrets[1].ExpiresAt == nil || !a.Secrets[1].ExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("answer secrets = %+v", a.Secrets)
	}

	// 25h later the first has expired.
	h.clock.Advance(25 * time.Hour)
	h.get(h.acme, "/v1/subscriptions/"+id).decode(t, &a)
	if len(a.Secrets) != 2 || !a.Secrets[0].Active || a.Secrets[1].Active {
		t.Errorf("25h later, secrets = %+v; want the second active, the first not", a.Secrets)
	}

	// Rotation 2 with a 1h overlap drops the expired first secret.
	h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", `{"overlap": "1h"}`).want(t, http.StatusOK).decode(t, &a)
	third := a.Secret
	now := t0.Add(25 * time.Hour)
	s = h.stored(id)
	if len(s.Secrets) != 2 || !s.Secrets[0].Key.Equal(key(third)) || !s.Secrets[1].Key.Equal(key(second)) ||
		!s.Secrets[1].ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("after rotation 2, stored secrets = %+v; want [third, second expiring at %v]", s.Secrets, now.Add(time.Hour))
	}

	// Rotation 3, 10 minutes later with a longer overlap, does not extend
	// the second secret's life.
	h.clock.Advance(10 * time.Minute)
	now = now.Add(10 * time.Minute)
	h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", `{"overlap": "48h"}`).want(t, http.StatusOK).decode(t, &a)
	s = h.stored(id)
	if len(s.Secrets) != 3 || !s.Secrets[0].Key.Equal(key(a.Secret)) ||
		!s.Secrets[1].Key.Equal(key(third)) || !s.Secrets[1].ExpiresAt.Equal(now.Add(48*time.Hour)) ||
		!s.Secrets[2].Key.Equal(key(second)) || !s.Secrets[2].ExpiresAt.Equal(t0.Add(26*time.Hour)) {
		t.Errorf("after rotation 3, stored secrets = %+v", s.Secrets)
	}
	if n := len(s.ActiveSecrets(now)); n != 3 {
		t.Errorf("%d secrets sign after rotation 3, want 3", n)
	}
}

func TestRotateSecret_ZeroOverlapDropsOldSecretsAtOnce(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, validSubscription)
	h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", "").want(t, http.StatusOK)
	var a subAnswer
	h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", `{"overlap": "0s"}`).want(t, http.StatusOK).decode(t, &a)
	if s := h.stored(id); len(s.Secrets) != 1 || len(a.Secrets) != 1 {
		t.Errorf("stored %d secrets, answered %d; want 1", len(s.Secrets), len(a.Secrets))
	}
}

func TestRotateSecret_UsesTheConfiguredOverlap(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.RotationOverlap = 2 * time.Hour })
	id, _ := h.createSubscription(h.acme, validSubscription)
	h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", "").want(t, http.StatusOK)
	if got := h.stored(id).Secrets[1].ExpiresAt; !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("old secret expires at %v, want %v", got, t0.Add(2*time.Hour))
	}
}

func TestRotateSecret_RefusalsChangeNothing(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, validSubscription)
	for range subscription.MaxSecrets - 1 {
		h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", "").want(t, http.StatusOK)
	}
	before := h.stored(id)
	if len(before.Secrets) != subscription.MaxSecrets {
		t.Fatalf("%d secrets, want %d", len(before.Secrets), subscription.MaxSecrets)
	}
	tests := []struct {
		body    string
		status  int
		problem string
	}{
		{"", 409, "the most it may have is 10"},
		{`{"overlap": "-1h"}`, 422, "overlap is -1h0m0s"},
		{`{"overlap": "721h"}`, 422, "overlap is 721h0m0s"},
		{`{"overlap": "soon"}`, 400, `invalid duration "soon"`},
		{`{"overlap": true}`, 400, "invalid duration true"},
		{`{"ovelap": "1h"}`, 400, `unknown field "ovelap"`},
	}
	for _, tt := range tests {
		text := h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", tt.body).want(t, tt.status).problemText(t)
		if !strings.Contains(text, tt.problem) {
			t.Errorf("%s: problem %q lacks %q", tt.body, text, tt.problem)
		}
	}
	if after := h.stored(id); !reflect.DeepEqual(after, before) {
		t.Error("refused rotations changed the subscription")
	}
	// Once old secrets have expired there is room again.
	h.clock.Advance(25 * time.Hour)
	h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", "").want(t, http.StatusOK)
	if n := len(h.stored(id).Secrets); n != 2 {
		t.Errorf("%d secrets after the old ones expired, want 2", n)
	}
}

func TestDeleteSubscription_Is204ThenNotFound(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, validSubscription)
	r := h.do(req{method: http.MethodDelete, path: "/v1/subscriptions/" + id, key: h.acme}).want(t, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Errorf("204 with a body: %s", r.body)
	}
	h.get(h.acme, "/v1/subscriptions/"+id).want(t, http.StatusNotFound)
	h.do(req{method: http.MethodDelete, path: "/v1/subscriptions/" + id, key: h.acme}).want(t, http.StatusNotFound)
	if n := h.storedCount("acme"); n != 0 {
		t.Errorf("%d subscriptions left", n)
	}
}

func TestSubscriptionIDs_UnknownOrMalformedAre404(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{uuid.NewString(), "42", "not-a-uuid", strings.ToUpper(uuid.NewString()), "%00"} {
		h.get(h.acme, "/v1/subscriptions/"+id).want(t, http.StatusNotFound)
		h.post(h.acme, "/v1/subscriptions/"+id+"/enable", "").want(t, http.StatusNotFound)
	}
}

func TestRecover_RedeliversFailedDeliveriesSinceATime(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, validSubscription)
	add := func(eventID string, status delivery.Status, started time.Time) {
		h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: eventID, SubscriptionID: id, AccountID: "acme",
			EventType: "user.created", UserID: "u_1", Status: status, Attempts: 12, StartedAt: started, ClosedAt: started.Add(time.Hour)}})
	}
	add("evt_old", delivery.StatusFailed, t0.Add(-48*time.Hour))
	add("evt_failed", delivery.StatusFailed, t0.Add(-time.Hour))
	add("evt_ok", delivery.StatusDelivered, t0.Add(-time.Hour))
	add("evt_running", delivery.StatusRetrying, t0.Add(-time.Hour))

	var res struct {
		Redelivered []struct {
			EventID      string  `json:"event_id"`
			Status       string  `json:"status"`
			RedeliveryOf *string `json:"redelivery_of"`
			ClosedAt     *string `json:"closed_at"`
		} `json:"redelivered"`
		AlreadyRunning int `json:"already_running"`
	}
	h.post(h.acme, "/v1/subscriptions/"+id+"/recover", `{"since": "2026-11-23T07:00:00+00:00"}`).
		want(t, http.StatusAccepted).decode(t, &res)
	if len(res.Redelivered) != 1 || res.Redelivered[0].EventID != "evt_failed" || res.Redelivered[0].Status != "pending" ||
		res.Redelivered[0].RedeliveryOf == nil || res.Redelivered[0].ClosedAt != nil || res.AlreadyRunning != 1 {
		t.Errorf("recover = %+v", res)
	}
	if calls := h.dels.callLog(); !slices.Equal(calls, []string{"recover acme /" + id + " since 2026-11-23T07:00:00Z"}) {
		t.Errorf("calls = %v", calls)
	}

	for _, tt := range []struct {
		body    string
		status  int
		problem string
	}{
		{`{}`, 422, "since is required"},
		{`{"since": "2026-11-24T00:00:00Z"}`, 422, "since is in the future"},
		{`{"since": "yesterday"}`, 400, "yesterday"},
		{`{"since": "2026-11-23T07:00:00Z", "until": "2026-11-23T08:00:00Z"}`, 400, `unknown field "until"`},
	} {
		text := h.post(h.acme, "/v1/subscriptions/"+id+"/recover", tt.body).want(t, tt.status).problemText(t)
		if !strings.Contains(text, tt.problem) {
			t.Errorf("%s: problem %q lacks %q", tt.body, text, tt.problem)
		}
	}
	h.post(h.acme, "/v1/subscriptions/"+id+"/recover", "").want(t, http.StatusBadRequest)
	if n := len(h.dels.callLog()); n != 1 {
		t.Errorf("refused recoveries reached the delivery log: %v", h.dels.callLog())
	}
}

// Read-modify-write operations on one subscription do not lose each other's
// changes: every secret shown by concurrent rotations is stored.
func TestRotateSecret_ConcurrentRotationsLoseNoSecret(t *testing.T) {
	h := newHarness(t)
	id, first := h.createSubscription(h.acme, validSubscription)
	const n = subscription.MaxSecrets - 1
	secrets := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := ""
			if i%3 == 0 {
				// A concurrent PATCH too, which must not undo a rotation.
				h.patch(h.acme, "/v1/subscriptions/"+id, fmt.Sprintf(`{"description": "patch %d"}`, i)).want(t, http.StatusOK)
			}
			var a subAnswer
			h.post(h.acme, "/v1/subscriptions/"+id+"/rotate-secret", body).want(t, http.StatusOK).decode(t, &a)
			secrets <- a.Secret
		})
	}
	wg.Wait()
	close(secrets)
	stored := h.stored(id).Secrets
	if len(stored) != n+1 {
		t.Fatalf("%d secrets stored after %d rotations, want %d", len(stored), n, n+1)
	}
	for s := range secrets {
		k, err := signature.ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(stored, func(sec subscription.Secret) bool { return sec.Key.Equal(k) }) {
			t.Error("a secret shown by a rotation was lost")
		}
	}
	k, _ := signature.ParseSecret(first)
	if !slices.ContainsFunc(stored, func(sec subscription.Secret) bool { return sec.Key.Equal(k) }) {
		t.Error("the first secret was lost")
	}
}
