package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap/zapcore"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/delivery"
)

const validSubscription = `{"url": "https://receiver.example/hooks", "event_types": ["user.created"]}`

func TestNew_RefusesIncompleteConfig(t *testing.T) {
	h := newHarness(t)
	full := api.Config{Subscriptions: h.subs, Keys: h.keys, Publisher: h.pub, Deliveries: h.dels}
	tests := map[string]func(c *api.Config){
		"no subscriptions":     func(c *api.Config) { c.Subscriptions = nil },
		"no keys":              func(c *api.Config) { c.Keys = nil },
		"no publisher":         func(c *api.Config) { c.Publisher = nil },
		"no deliveries":        func(c *api.Config) { c.Deliveries = nil },
		"negative overlap":     func(c *api.Config) { c.RotationOverlap = -time.Second },
		"overlap over maximum": func(c *api.Config) { c.RotationOverlap = api.MaxRotationOverlap + time.Second },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			c := full
			mutate(&c)
			if _, err := api.New(c); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	if _, err := api.New(full); err != nil {
		t.Errorf("New with a complete config: %v", err)
	}
}

func TestAuth_MissingOrInvalidKeyIs401AndChangesNothing(t *testing.T) {
	h := newHarness(t)
	revokedKey, revoked, err := h.keys.Create(t.Context(), "acme", "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.keys.Revoke(t.Context(), "acme", revokedKey.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		header    []string
		wantError bool // error="invalid_token" in WWW-Authenticate
	}{
		{"no header", nil, false},
		{"empty", []string{""}, true},
		{"basic scheme", []string{"Basic " + h.acme}, true},
		{"no scheme", []string{h.acme}, true},
		{"bearer without token", []string{"Bearer "}, true},
		{"unknown key", []string{"Bearer uhk_" + strings.Repeat("A", 43)}, true},
		{"malformed key", []string{"Bearer not-a-key"}, true},
		{"revoked key", []string{"Bearer " + revoked}, true},
		{"two headers", []string{"Bearer " + h.acme, "Bearer " + h.globex}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(req{method: http.MethodPost, path: "/v1/subscriptions", body: validSubscription,
				header: http.Header{"Authorization": tt.header}}).want(t, http.StatusUnauthorized)
			got := r.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(got, "Bearer") || strings.Contains(got, "invalid_token") != tt.wantError {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			for _, secret := range []string{h.acme, revoked} {
				if bytes.Contains(r.body, []byte(secret[4:])) {
					t.Error("the answer quotes the key")
				}
			}
		})
	}
	// The lower-case scheme is fine (RFC 7235: schemes are case-insensitive).
	h.do(req{method: http.MethodGet, path: "/v1/subscriptions", header: http.Header{"Authorization": {"bearer " + h.acme}}}).
		want(t, http.StatusOK)
	if n := h.storedCount("acme"); n != 0 {
		t.Errorf("unauthenticated requests created %d subscriptions", n)
	}
	// Every authenticated route refuses a request without a key.
	for _, pattern := range api.RoutePatterns() {
		method, path, _ := strings.Cut(pattern, " ")
		if path == "/v1/openapi.json" {
			continue
		}
		path = strings.NewReplacer("{id}", uuid.NewString(), "{event_id}", "evt_1", "{subscription_id}", uuid.NewString()).Replace(path)
		h.do(req{method: method, path: path}).want(t, http.StatusUnauthorized)
	}
}

// Another account's subscription answers exactly like one that does not
// exist, on every route that names one, and is left unchanged.
func TestIsolation_OtherAccountsSubscriptionsAreIndistinguishableFromUnknownOnes(t *testing.T) {
	h := newHarness(t)
	theirs, _ := h.createSubscription(h.globex, validSubscription)
	before := h.stored(theirs)
	unknown := uuid.NewString()

	tests := []struct {
		method, suffix, body string
	}{
		{http.MethodGet, "", ""},
		{http.MethodPatch, "", `{"url": "https://attacker.example/"}`},
		{http.MethodPost, "/enable", ""},
		{http.MethodPost, "/disable", ""},
		{http.MethodPost, "/rotate-secret", ""},
		{http.MethodPost, "/recover", `{"since": "2026-11-01T00:00:00Z"}`},
		{http.MethodDelete, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.suffix, func(t *testing.T) {
			ct := ""
			if tt.method == http.MethodPatch {
				ct = "application/merge-patch+json"
			}
			other := h.do(req{method: tt.method, path: "/v1/subscriptions/" + theirs + tt.suffix, key: h.acme, body: tt.body, contentType: ct})
			missing := h.do(req{method: tt.method, path: "/v1/subscriptions/" + unknown + tt.suffix, key: h.acme, body: tt.body, contentType: ct})
			other.want(t, http.StatusNotFound)
			if !bytes.Equal(other.body, missing.body) || other.status != missing.status ||
				other.header.Get("Content-Type") != missing.header.Get("Content-Type") {
				t.Errorf("other account's subscription: %d %s\nunknown subscription: %d %s", other.status, other.body, missing.status, missing.body)
			}
		})
	}
	after := h.stored(theirs)
	if !after.UpdatedAt.Equal(before.UpdatedAt) || after.URL != before.URL || !after.Enabled || len(after.Secrets) != 1 {
		t.Errorf("globex's subscription changed through acme's key: before %+v, after %+v", before, after)
	}
	if calls := h.dels.callLog(); len(calls) != 0 {
		t.Errorf("the delivery log was asked %v", calls)
	}
	// And it does not appear in acme's list.
	var list struct {
		Subscriptions []struct{ ID string } `json:"subscriptions"`
	}
	h.get(h.acme, "/v1/subscriptions").want(t, http.StatusOK).decode(t, &list)
	if len(list.Subscriptions) != 0 {
		t.Errorf("acme lists %v", list.Subscriptions)
	}
}

func TestIsolation_OtherAccountsDeliveriesAreIndistinguishableFromUnknownOnes(t *testing.T) {
	h := newHarness(t)
	sub := uuid.NewString()
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_1", SubscriptionID: sub, AccountID: "globex",
		EventType: "user.created", UserID: "u_1", Status: delivery.StatusRetrying, StartedAt: t0}})
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_2", SubscriptionID: sub, AccountID: "globex",
		EventType: "user.created", UserID: "u_1", Status: delivery.StatusFailed, StartedAt: t0}})
	for _, suffix := range []string{"", "/redeliver", "/cancel", "/retry"} {
		for _, eventID := range []string{"evt_1", "evt_2"} {
			method := http.MethodPost
			if suffix == "" {
				method = http.MethodGet
			}
			other := h.do(req{method: method, path: "/v1/deliveries/" + eventID + "/" + sub + suffix, key: h.acme})
			missing := h.do(req{method: method, path: "/v1/deliveries/evt_unknown/" + uuid.NewString() + suffix, key: h.acme})
			other.want(t, http.StatusNotFound)
			if !bytes.Equal(other.body, missing.body) {
				t.Errorf("%s %s: other account's delivery %s, unknown one %s", method, suffix, other.body, missing.body)
			}
		}
	}
	var list struct {
		Deliveries []any `json:"deliveries"`
	}
	h.get(h.acme, "/v1/deliveries").want(t, http.StatusOK).decode(t, &list)
	if len(list.Deliveries) != 0 {
		t.Errorf("acme lists globex's deliveries: %v", list.Deliveries)
	}
	if f, _, _ := h.dels.listArgs(); f.AccountID != "acme" {
		t.Errorf("List was asked for account %q, want acme", f.AccountID)
	}
}

func TestRouting_UnknownPathsAre404AndWrongMethods405(t *testing.T) {
	h := newHarness(t)
	r := h.do(req{method: http.MethodGet, path: "/v2/nothing", key: h.acme}).want(t, http.StatusNotFound)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("404 Content-Type = %q", ct)
	}
	r = h.do(req{method: http.MethodPut, path: "/v1/subscriptions", key: h.acme, body: validSubscription}).want(t, http.StatusMethodNotAllowed)
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q, want GET and POST", allow)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("405 Content-Type = %q", ct)
	}
	h.do(req{method: http.MethodGet, path: "/v1/events", key: h.acme}).want(t, http.StatusMethodNotAllowed)
	if n := h.storedCount("acme"); n != 0 {
		t.Errorf("PUT created %d subscriptions", n)
	}
}

func TestResponses_AreNeverCached(t *testing.T) {
	h := newHarness(t)
	for _, r := range []response{
		h.post(h.acme, "/v1/subscriptions", validSubscription),
		h.get(h.acme, "/v1/subscriptions"),
		h.get("", "/v1/subscriptions"),
	} {
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%d answer has Cache-Control %q, want no-store", r.status, cc)
		}
	}
}

func TestLogging_OneLinePerRequestWithoutKeysSecretsOrBodies(t *testing.T) {
	h := newHarness(t)
	id, secret := h.createSubscription(h.acme, `{"url": "https://receiver.example/hooks?token=s3cr3t-query", "description": "body-marker"}`)
	h.get("uhk_"+strings.Repeat("B", 43), "/v1/subscriptions/"+id).want(t, http.StatusUnauthorized)
	h.get(h.acme, "/v1/subscriptions/"+id+"?x=query-marker").want(t, http.StatusBadRequest)
	h.do(req{method: http.MethodGet, path: "/nowhere"}).want(t, http.StatusNotFound)

	entries := h.logs.AllUntimed()
	if len(entries) != 4 {
		t.Fatalf("%d log lines for 4 requests: %v", len(entries), entries)
	}
	want := []struct {
		route   string
		status  int64
		account string
	}{
		{"POST /v1/subscriptions", 201, "acme"},
		{"GET /v1/subscriptions/{id}", 401, ""},
		{"GET /v1/subscriptions/{id}", 400, "acme"},
		{"(no route)", 404, ""},
	}
	for i, e := range entries {
		f := e.ContextMap()
		if f["route"] != want[i].route || f["status"] != want[i].status || f["method"] == nil || f["duration"] == nil {
			t.Errorf("line %d = %v, want route %q status %d", i, f, want[i].route, want[i].status)
		}
		if acct, _ := f["account_id"].(string); acct != want[i].account {
			t.Errorf("line %d account_id = %q, want %q", i, acct, want[i].account)
		}
		line := fmt.Sprint(e.Message, f)
		for _, leak := range []string{h.acme[4:], strings.Repeat("B", 43), secret, secret[len("whsec_"):], "s3cr3t-query", "body-marker", "query-marker", "Bearer"} {
			if strings.Contains(line, leak) {
				t.Errorf("line %d leaks %q: %s", i, leak, line)
			}
		}
	}
}

func TestPanics_AreRecoveredAs500AndLogged(t *testing.T) {
	h := newHarness(t)
	r := h.get(h.acme, "/v1/deliveries/panic/"+uuid.NewString()).want(t, http.StatusInternalServerError)
	if strings.Contains(string(r.body), "exploded") {
		t.Errorf("the 500 answer shows the panic: %s", r.body)
	}
	entries := h.logs.FilterField(zapcore.Field{Key: "status", Type: zapcore.Int64Type, Integer: 500}).AllUntimed()
	if len(entries) != 1 || entries[0].Level != zapcore.ErrorLevel || !strings.Contains(fmt.Sprint(entries[0].ContextMap()["panic"]), "exploded") {
		t.Fatalf("log = %v, want one error line with the panic", h.logs.AllUntimed())
	}
	// The server goes on serving.
	h.get(h.acme, "/v1/subscriptions").want(t, http.StatusOK)
}

// Every operation that reads a body caps it, and refuses what is not one
// JSON object of the operation's shape with a 4xx that changes nothing.
func TestBodies_MalformedOversizedOrMistypedAreRefused(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, validSubscription)
	before := h.stored(id)
	sub := uuid.NewString()
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_1", SubscriptionID: sub, AccountID: "acme",
		Status: delivery.StatusRetrying, StartedAt: t0}})

	routes := []struct{ method, path string }{
		{http.MethodPost, "/v1/events"},
		{http.MethodPost, "/v1/subscriptions"},
		{http.MethodPatch, "/v1/subscriptions/" + id},
		{http.MethodDelete, "/v1/subscriptions/" + id},
		{http.MethodPost, "/v1/subscriptions/" + id + "/enable"},
		{http.MethodPost, "/v1/subscriptions/" + id + "/disable"},
		{http.MethodPost, "/v1/subscriptions/" + id + "/rotate-secret"},
		{http.MethodPost, "/v1/subscriptions/" + id + "/recover"},
		{http.MethodPost, "/v1/deliveries/evt_1/" + sub + "/redeliver"},
		{http.MethodPost, "/v1/deliveries/evt_1/" + sub + "/cancel"},
		{http.MethodPost, "/v1/deliveries/evt_1/" + sub + "/retry"},
	}
	bodies := []struct {
		name, body, contentType string
		status                  int
	}{
		{"oversized", `{"description": "` + strings.Repeat("x", 70<<10) + `"}`, "", http.StatusRequestEntityTooLarge},
		{"not JSON", `{"url": `, "", http.StatusBadRequest},
		{"syntax error", `{"url" "x"}`, "", http.StatusBadRequest},
		{"array", `[]`, "", http.StatusBadRequest},
		{"null", `null`, "", http.StatusBadRequest},
		{"string", `"x"`, "", http.StatusBadRequest},
		{"trailing data", `{} {}`, "", http.StatusBadRequest},
		{"unknown field", `{"no_such_field": 1}`, "", http.StatusBadRequest},
		{"invalid UTF-8", "{\"description\": \"\xff\"}", "", http.StatusBadRequest},
		{"text/plain", `{}`, "text/plain", http.StatusUnsupportedMediaType},
		{"no content type", `{}`, "none", http.StatusUnsupportedMediaType},
		{"latin-1", `{}`, "application/json; charset=iso-8859-1", http.StatusUnsupportedMediaType},
	}
	for _, rt := range routes {
		for _, b := range bodies {
			t.Run(rt.method+" "+rt.path+" "+b.name, func(t *testing.T) {
				r := h.do(req{method: rt.method, path: rt.path, key: h.acme, body: b.body, contentType: b.contentType}).want(t, b.status)
				if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type = %q", ct)
				}
			})
		}
	}
	after := h.stored(id)
	if !after.UpdatedAt.Equal(before.UpdatedAt) || len(after.Secrets) != 1 || !after.Enabled {
		t.Errorf("refused requests changed the subscription: %+v", after)
	}
	if n := h.storedCount("acme"); n != 1 {
		t.Errorf("acme has %d subscriptions, want 1", n)
	}
	if h.pub.count() != 0 {
		t.Errorf("refused requests published %d events", h.pub.count())
	}
	if calls := h.dels.callLog(); len(calls) != 0 {
		t.Errorf("refused requests reached the delivery log: %v", calls)
	}
}

// Unknown or repeated query parameters are refused on every operation: a
// misspelt filter must not silently answer another question.
func TestQuery_UnknownOrRepeatedParametersAre400(t *testing.T) {
	h := newHarness(t)
	id, _ := h.createSubscription(h.acme, validSubscription)
	for _, pattern := range api.RoutePatterns() {
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{id}", id, "{event_id}", "evt_1", "{subscription_id}", id).Replace(path)
		r := h.do(req{method: method, path: path + "?subscription=" + id, key: h.acme}).want(t, http.StatusBadRequest)
		if !strings.Contains(r.problemText(t), `unknown query parameter "subscription"`) {
			t.Errorf("%s: %s", pattern, r.body)
		}
	}
	h.get(h.acme, "/v1/subscriptions?limit=1&limit=2").want(t, http.StatusBadRequest)
	h.get(h.acme, "/v1/deliveries?status=failed&status=delivered").want(t, http.StatusBadRequest)
	h.get(h.acme, "/v1/subscriptions?limit=%zz").want(t, http.StatusBadRequest)
	if n := h.storedCount("acme"); n != 1 {
		t.Errorf("acme has %d subscriptions, want 1", n)
	}
}
