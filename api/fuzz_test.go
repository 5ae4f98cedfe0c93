package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/delivery"
)

// FuzzAPI sends arbitrary requests to the API. Whatever the method, path,
// headers and body, it must answer without a 5xx (nothing fails behind it),
// with an answer the OpenAPI document describes, and errors as problem
// documents. Run it with go test ./api -run '^$' -fuzz FuzzAPI.
func FuzzAPI(f *testing.F) {
	h := newHarness(f)
	h.dels.panicOn = ""
	id, _ := h.createSubscription(h.acme, validSubscription)
	sub := uuid.NewString()
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_1", SubscriptionID: sub, AccountID: "acme",
		Status: delivery.StatusFailed, StartedAt: t0, ClosedAt: t0.Add(time.Hour)}})

	seeds := []struct{ method, path, contentType, body string }{
		{"POST", "/v1/events", "application/json", userCreated},
		{"POST", "/v1/events", "application/json", `{"type":"user.updated","data":{"user":{"id":"u"},"previous_attributes":{"attributes.x":null}}}`},
		{"POST", "/v1/subscriptions", "application/json", patchBase},
		{"GET", "/v1/subscriptions?limit=1&after=" + id, "", ""},
		{"GET", "/v1/subscriptions/" + id, "", ""},
		{"PATCH", "/v1/subscriptions/" + id, "application/merge-patch+json", `{"schedule":{"delays":[1000000000]},"event_types":null}`},
		{"POST", "/v1/subscriptions/" + id + "/rotate-secret", "application/json", `{"overlap":"1h"}`},
		{"POST", "/v1/subscriptions/" + id + "/disable", "", ""},
		{"POST", "/v1/subscriptions/" + id + "/enable", "application/json", `{}`},
		{"POST", "/v1/subscriptions/" + id + "/recover", "application/json", `{"since":"2026-11-01T00:00:00Z"}`},
		{"DELETE", "/v1/subscriptions/" + uuid.NewString(), "", ""},
		{"GET", "/v1/deliveries?status=failed&started_after=2026-11-01T00:00:00Z&page_token=1", "", ""},
		{"GET", "/v1/deliveries/evt_1/" + sub + "?run_id=" + uuid.NewString(), "", ""},
		{"POST", "/v1/deliveries/evt_1/" + sub + "/redeliver", "", ""},
		{"POST", "/v1/deliveries/evt_1/" + sub + "/cancel", "", ""},
		{"POST", "/v1/deliveries/evt_1/" + sub + "/retry", "", ""},
		{"GET", "/v1/openapi.json", "", ""},
		{"OPTIONS", "/v1//subscriptions/../events", "text/plain", "\x00\xff"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.contentType, []byte(s.body), true)
	}
	f.Fuzz(func(t *testing.T, method, path, contentType string, body []byte, authenticated bool) {
		u, err := url.Parse("http://api.test" + path)
		if err != nil || !strings.HasPrefix(path, "/") {
			t.Skip()
		}
		r, err := http.NewRequestWithContext(t.Context(), method, u.String(), strings.NewReader(string(body)))
		if err != nil {
			t.Skip()
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if authenticated {
			r.Header.Set("Authorization", "Bearer "+h.acme)
		}
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, r)
		res := rec.Result()
		b, _ := io.ReadAll(res.Body)
		resp := response{status: res.StatusCode, header: res.Header, body: b}
		if resp.status >= 500 {
			t.Fatalf("%s %q answered %d: %s", method, path, resp.status, b)
		}
		if resp.status >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %q answered %d as %q", method, path, resp.status, res.Header.Get("Content-Type"))
		}
		if method == http.MethodHead || resp.status == http.StatusMovedPermanently || resp.status == http.StatusTemporaryRedirect {
			return // no body to check, or ServeMux's own path-cleaning redirect
		}
		openAPI(t).check(t, method, u.Path, resp)
	})
}
