package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/apiserver"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/signature"
)

// apiEnv is the HTTP API, assembled as the API server and `worker dev` do,
// in front of the test's worker, store and Temporal server.
type apiEnv struct {
	*env
	url  string
	keys *apikey.SQLStore
}

func newAPIEnv(t *testing.T, policy egress.Policy) *apiEnv {
	t.Helper()
	e := newEnv(t)
	keys, err := apikey.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	h, err := apiserver.New(apiserver.Options{
		Client: e.client, Namespace: server.GetDefaultNamespace(), TaskQueue: e.taskQueue,
		Subscriptions: e.store, Keys: keys, Policy: policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &apiEnv{env: e, url: srv.URL, keys: keys}
}

func (a *apiEnv) key(account string) string {
	a.t.Helper()
	_, plaintext, err := a.keys.Create(context.Background(), account, "test")
	if err != nil {
		a.t.Fatal(err)
	}
	return plaintext
}

// call sends a request and decodes a JSON answer into out (when not nil).
func (a *apiEnv) call(key, method, path, body string, out any) int {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(bytes.TrimSpace(b)) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	if resp.StatusCode >= 300 {
		a.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// TestAPI_PublishDeliverInspectRedeliverEndToEnd drives one delivery
// through the HTTP API against the real server: a subscription created by
// the API signs with the secret the API showed once; publishing twice
// delivers once; the delivery log shows the attempts; a redelivery reaches
// the receiver again with the same webhook-id; another account sees none
// of it.
func TestAPI_PublishDeliverInspectRedeliverEndToEnd(t *testing.T) {
	a := newAPIEnv(t, loopback)
	key, otherKey := a.key("acme-api"), a.key("other-api")
	rcv := newReceiver(t, 500)

	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	body := `{"url":"` + rcv.srv.URL + `/hooks","schedule":{"delays":["1s","1s"]}}`
	if code := a.call(key, "POST", "/v1/subscriptions", body, &created); code != http.StatusCreated {
		t.Fatalf("create subscription: status %d", code)
	}
	secret, err := signature.ParseSecret(created.Secret)
	if err != nil {
		t.Fatalf("the one-time secret %q does not parse: %v", created.Secret, err)
	}
	rcv.verifyWith(secret)

	ev := `{"id":"api-e2e-1","type":"user.created","data":{"user":{"id":"u_api","email":"api@example.com"}}}`
	var pub struct {
		EventID   string `json:"event_id"`
		Duplicate bool   `json:"duplicate"`
	}
	if code := a.call(key, "POST", "/v1/events", ev, &pub); code != http.StatusAccepted || pub.Duplicate {
		t.Fatalf("publish: status %d, duplicate %v; want 202, false", code, pub.Duplicate)
	}
	if code := a.call(key, "POST", "/v1/events", ev, &pub); code != http.StatusOK || !pub.Duplicate {
		t.Fatalf("publish again: status %d, duplicate %v; want 200, true", code, pub.Duplicate)
	}
	got := rcv.waitRequests(2, time.Minute) // 500, then 200
	for i, r := range got {
		if r.Verified != nil || r.Header.Get("webhook-id") != "api-e2e-1" {
			t.Fatalf("request %d: verified %v, webhook-id %q", i+1, r.Verified, r.Header.Get("webhook-id"))
		}
	}

	path := "/v1/deliveries/api-e2e-1/" + created.ID
	var detail struct {
		Status     string `json:"status"`
		Attempts   int    `json:"attempts"`
		AttemptLog []struct {
			StatusCode int `json:"status_code"`
		} `json:"attempt_log"`
	}
	waitFor(t, time.Minute, "the delivery to be delivered", func() bool {
		return a.call(key, "GET", path, "", &detail) == http.StatusOK && detail.Status == "delivered"
	})
	if detail.Attempts != 2 || len(detail.AttemptLog) != 2 || detail.AttemptLog[0].StatusCode != 500 || detail.AttemptLog[1].StatusCode != 200 {
		t.Errorf("delivery = %+v, want 2 attempts: 500 then 200", detail)
	}

	var page struct {
		Deliveries []struct {
			EventID string `json:"event_id"`
			Status  string `json:"status"`
		} `json:"deliveries"`
	}
	waitFor(t, time.Minute, "the delivery in the list", func() bool {
		a.call(key, "GET", "/v1/deliveries?subscription_id="+created.ID+"&status=delivered", "", &page)
		return len(page.Deliveries) == 1 && page.Deliveries[0].EventID == "api-e2e-1"
	})

	// Another account: the subscription, the delivery and the list are not there.
	for _, p := range []string{"/v1/subscriptions/" + created.ID, path} {
		if code := a.call(otherKey, "GET", p, "", nil); code != http.StatusNotFound {
			t.Errorf("other account GET %s: status %d, want 404", p, code)
		}
	}
	if code := a.call(otherKey, "POST", path+"/redeliver", "", nil); code != http.StatusNotFound {
		t.Errorf("other account redeliver: status %d, want 404", code)
	}
	a.call(otherKey, "GET", "/v1/deliveries", "", &page)
	if len(page.Deliveries) != 0 {
		t.Errorf("other account lists %d deliveries, want 0", len(page.Deliveries))
	}

	if code := a.call(key, "POST", path+"/redeliver", "", nil); code != http.StatusAccepted {
		t.Fatalf("redeliver: status %d, want 202", code)
	}
	again := rcv.waitRequests(3, time.Minute)
	if r := again[2]; r.Verified != nil || r.Header.Get("webhook-id") != "api-e2e-1" || !bytes.Equal(r.Body, got[1].Body) {
		t.Errorf("redelivery: verified %v, webhook-id %q, same body %v", r.Verified, r.Header.Get("webhook-id"), bytes.Equal(r.Body, got[1].Body))
	}
}

// TestAPI_RefusesPrivateSubscriptionURLsByDefault: with the production
// egress policy, a subscription to a loopback, private or metadata address,
// or a name that resolves to one, is refused at creation and nothing is
// stored.
func TestAPI_RefusesPrivateSubscriptionURLsByDefault(t *testing.T) {
	a := newAPIEnv(t, egress.Policy{})
	key := a.key("acme-ssrf")
	for _, u := range []string{
		"https://127.0.0.1/hooks", "https://localhost/hooks", "https://10.0.0.8/hooks",
		"https://169.254.169.254/latest/meta-data", "https://[::ffff:127.0.0.1]/", "https://2130706433/",
		"http://crm.example.com/hooks", // plain http
	} {
		if code := a.call(key, "POST", "/v1/subscriptions", `{"url":"`+u+`"}`, nil); code != http.StatusUnprocessableEntity {
			t.Errorf("create subscription to %s: status %d, want 422", u, code)
		}
	}
	if subs, err := a.store.List(context.Background(), "acme-ssrf", "", 10); err != nil || len(subs) != 0 {
		t.Errorf("store after refusals: %d subscriptions, error %v; want none", len(subs), err)
	}
}
