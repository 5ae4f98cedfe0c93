// Package interop checks that what userhooks sends verifies with other
// languages' official Standard Webhooks libraries. The Go library is
// exercised in the signature package's tests; this package runs the
// JavaScript one under the machine's Node.js (dependencies in js/, installed
// by `npm ci` from scripts/test.sh).
package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

type jsCase struct {
	Name    string            `json:"name"`
	Secret  string            `json:"secret"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"` // base64, so the exact bytes reach Node
}

type jsResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Type  string `json:"type"`
}

// capture is a receiver that records requests and answers 204.
type capture struct {
	mu  sync.Mutex
	got []*http.Request
	bod [][]byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.got, c.bod = append(c.got, r), append(c.bod, b)
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// deliver sends one real delivery through the Deliver activity's code path
// and returns the request the receiver saw.
func deliver(t *testing.T, e event.Event, secrets ...signature.Secret) (http.Header, []byte) {
	t.Helper()
	rc := &capture{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	store, err := subscription.OpenSQLite(filepath.Join(t.TempDir(), "subs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sub := subscription.Subscription{AccountID: e.AccountID, URL: srv.URL + "/hooks", Enabled: true}
	for _, s := range secrets {
		sub.Secrets = append(sub.Secrets, subscription.Secret{Key: s, ExpiresAt: time.Now().Add(time.Hour)})
	}
	if err := store.Create(context.Background(), &sub); err != nil {
		t.Fatal(err)
	}
	acts := &activities.Activities{
		Store:  store,
		Sender: activities.NewSender(egress.Policy{AllowHTTP: true, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, 5*time.Second),
	}
	rec, err := acts.Deliver(context.Background(), activities.DeliverInput{Event: e, SubscriptionID: sub.ID, Attempt: 1})
	if err != nil || !rec.Succeeded() {
		t.Fatalf("Deliver = %+v, %v", rec, err)
	}
	if len(rc.got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(rc.got))
	}
	return rc.got[0].Header, rc.bod[0]
}

func newSecret(t *testing.T) signature.Secret {
	s, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOfficialJavaScriptLibraryVerifiesDeliveries(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("USERHOOKS_SKIP_JS") == "1" {
			t.Skip("node not installed and USERHOOKS_SKIP_JS=1")
		}
		t.Fatal("node is not installed: the JavaScript interop test needs Node.js (or set USERHOOKS_SKIP_JS=1)")
	}
	if _, err := os.Stat(filepath.Join("js", "node_modules", "standardwebhooks")); err != nil {
		t.Fatal("the standardwebhooks npm package is missing: run `npm ci --prefix interop/js` (scripts/test.sh does)")
	}

	created, err := event.Prepare(event.Event{Type: event.TypeUserCreated, AccountID: "acme",
		Data: event.Data{User: event.User{ID: "u_1", Email: "zoe@example.com", Name: "Zoë <admin> & “friends” 🎉"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	updated, err := event.Prepare(event.Event{Type: event.TypeUserUpdated, AccountID: "acme",
		Data: event.Data{User: event.User{ID: "u_1", Email: "new@example.com", Attributes: map[string]json.RawMessage{"n": json.RawMessage(`12345678901234567890`)}},
			PreviousAttributes: map[string]json.RawMessage{"email": json.RawMessage(`"zoe@example.com"`)}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	single := newSecret(t)
	h1, b1 := deliver(t, created, single)
	newer, older := newSecret(t), newSecret(t)
	h2, b2 := deliver(t, updated, newer, older) // a rotation: both sign
	tampered := append(bytes.Clone(b1[:len(b1)-1]), ' ', '}')

	cases := []struct {
		c      jsCase
		wantOK bool
	}{
		{jsCase{Name: "one secret", Secret: single.Reveal(), Headers: flat(h1), Body: b64(b1)}, true},
		{jsCase{Name: "rotation, receiver knows the new secret", Secret: newer.Reveal(), Headers: flat(h2), Body: b64(b2)}, true},
		{jsCase{Name: "rotation, receiver knows the old secret", Secret: older.Reveal(), Headers: flat(h2), Body: b64(b2)}, true},
		{jsCase{Name: "tampered body", Secret: single.Reveal(), Headers: flat(h1), Body: b64(tampered)}, false},
		{jsCase{Name: "wrong secret", Secret: newer.Reveal(), Headers: flat(h1), Body: b64(b1)}, false},
	}
	in := make([]jsCase, len(cases))
	for i, c := range cases {
		in[i] = c.c
	}
	payload, _ := json.Marshal(in)
	cmd := exec.Command(node, "verify.mjs")
	cmd.Dir = "js"
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify.mjs: %v\n%s", err, stderr.String())
	}
	var results []jsResult
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(cases) {
		t.Fatalf("node printed %q (%v), want %d results", out, err, len(cases))
	}
	for i, c := range cases {
		r := results[i]
		if r.OK != c.wantOK {
			t.Errorf("%s: JavaScript library ok=%v (%s), want ok=%v", c.c.Name, r.OK, r.Error, c.wantOK)
		}
		if r.OK && r.Type == "" {
			t.Errorf("%s: JavaScript library returned no event type", c.c.Name)
		}
	}
}

// flat turns headers into the lower-case name → value map that Node's http
// module hands to the library.
func flat(h http.Header) map[string]string {
	out := map[string]string{}
	for k := range h {
		out[strings.ToLower(k)] = h.Get(k)
	}
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
