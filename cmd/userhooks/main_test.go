package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/subscription"
)

// closedURL is an API address where nothing listens.
const closedURL = "http://127.0.0.1:1"

// result is what one invocation of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// harness is the real API handler (api.New) behind an httptest server, over
// a real SQLite subscription store and a real API key store in one file (as
// `worker dev` has them), with recording fakes for the two parts that need
// Temporal. Tests run the CLI against it.
type harness struct {
	t     *testing.T
	url   string
	store string // the SQLite file
	subs  *subscription.SQLiteStore
	keys  *apikey.SQLStore
	pub   *recordingPublisher
	dels  *fakeDeliveries
	// requests counts the requests the API received.
	requests atomic.Int64
	// acme and globex are API keys of two accounts.
	acme, globex string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	// Relative defaults (.userhooks/…) resolve in an empty directory, never
	// in the source tree.
	t.Chdir(t.TempDir())
	h := &harness{t: t, store: filepath.Join(t.TempDir(), "userhooks.db"), pub: &recordingPublisher{}, dels: &fakeDeliveries{}}
	var err error
	if h.subs, err = subscription.OpenSQLite(h.store); err != nil {
		t.Fatalf("open subscription store: %v", err)
	}
	t.Cleanup(func() { h.subs.Close() })
	if h.keys, err = apikey.OpenSQLite(t.Context(), h.store); err != nil {
		t.Fatalf("open API key store: %v", err)
	}
	t.Cleanup(func() { h.keys.Close() })
	handler, err := api.New(api.Config{Subscriptions: h.subs, Keys: h.keys, Publisher: h.pub, Deliveries: h.dels})
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	if _, h.acme, err = h.keys.Create(t.Context(), "acme", "test"); err != nil {
		t.Fatal(err)
	}
	if _, h.globex, err = h.keys.Create(t.Context(), "globex", "test"); err != nil {
		t.Fatal(err)
	}
	return h
}

// runAs runs the CLI against the harness's API with key (none when "") and
// its store as USERHOOKS_STORE.
func (h *harness) runAs(key, stdin string, args ...string) result {
	h.t.Helper()
	return runCLI(h.t, map[string]string{envAPIURL: h.url, envAPIKey: key, "USERHOOKS_STORE": h.store}, stdin, args...)
}

// run runs the CLI as acme.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	return h.runAs(h.acme, "", args...)
}

// ok runs the CLI as acme and fails the test unless it exits 0.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	if r.code != 0 || r.stderr != "" {
		h.t.Fatalf("userhooks %s: want success, got %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// okJSON runs the CLI as acme with --json and decodes what it printed.
func (h *harness) okJSON(v any, args ...string) string {
	h.t.Helper()
	out := h.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		h.t.Fatalf("userhooks %s --json printed %q: %v", strings.Join(args, " "), out, err)
	}
	return out
}

// runCLI runs the CLI as main does, with env set (an empty value unsets),
// and the key file and store defaults moved out of the source tree.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	for _, name := range []string{envAPIURL, envAPIKey, envAPIKeyFile, "USERHOOKS_STORE"} {
		t.Setenv(name, env[name])
	}
	var stdout, stderr bytes.Buffer
	code := cli(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// offline runs the CLI with no API and no key: for what must fail, or
// succeed, without one.
func offline(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	t.Chdir(t.TempDir())
	return runCLI(t, map[string]string{envAPIURL: closedURL}, stdin, args...)
}

// wantFailure checks that r exited with code, that stderr names the problem
// and that nothing went to stdout.
func wantFailure(t *testing.T, r result, code int, problem string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code: got %d, want %d\n%s", r.code, code, r)
	}
	if !strings.Contains(r.stderr, problem) {
		t.Errorf("stderr does not name the problem %q\n%s", problem, r)
	}
	if r.stdout != "" {
		t.Errorf("stdout: want nothing on failure\n%s", r)
	}
}

// noRequests fails the test if the API was called since the last reset.
func (h *harness) noRequests(what string) {
	h.t.Helper()
	if n := h.requests.Swap(0); n != 0 {
		h.t.Errorf("%s: the API got %d requests, want none (bad input must fail before any call)", what, n)
	}
}

func TestRun_MissingOrUnknownCommandPrintsUsage(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		problem   string
		wantUsage string
	}{
		{"no command", nil, "missing command", "usage: userhooks <command>"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`, "usage: userhooks <command>"},
		{"no subscriptions command", []string{"subscriptions"}, "missing subscriptions command", "usage: userhooks subscriptions <command>"},
		{"unknown subscriptions command", []string{"subscriptions", "rename"}, `unknown subscriptions command "rename"`, "usage: userhooks subscriptions <command>"},
		{"no deliveries command", []string{"deliveries"}, "missing deliveries command", "usage: userhooks deliveries <command>"},
		{"unknown deliveries command", []string{"deliveries", "purge"}, `unknown deliveries command "purge"`, "usage: userhooks deliveries <command>"},
		{"no apikeys command", []string{"apikeys"}, "missing apikeys command", "usage: userhooks apikeys <command>"},
		{"unknown apikeys command", []string{"apikeys", "rotate"}, `unknown apikeys command "rotate"`, "usage: userhooks apikeys <command>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := offline(t, "", tc.args...)
			wantFailure(t, r, 2, tc.problem)
			if !strings.Contains(r.stderr, tc.wantUsage) {
				t.Errorf("stderr lacks the usage %q\n%s", tc.wantUsage, r)
			}
		})
	}
}

// TestHelp_EveryCommandListsItsFlags: -h works everywhere, exits 0, and
// shows the command's own flags.
func TestHelp_EveryCommandListsItsFlags(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"usage: userhooks <command>", "deliveries", "apikeys"}},
		{[]string{"-h"}, []string{"usage: userhooks <command>"}},
		{[]string{"publish", "-h"}, []string{"-user-id", "-previous", "-file", "-account", "-api-url", "-api-key-file", "-json"}},
		{[]string{"publish", "--help"}, []string{"-type"}},
		{[]string{"subscriptions", "help"}, []string{"usage: userhooks subscriptions <command>", "rotate-secret"}},
		{[]string{"subscriptions", "create", "-h"}, []string{"-url", "-types", "-schedule", "-max-in-flight", "-api-url"}},
		{[]string{"subscriptions", "list", "-h"}, []string{"-limit", "-json"}},
		{[]string{"subscriptions", "get", "-h"}, []string{"-id"}},
		{[]string{"subscriptions", "update", "-h"}, []string{"-id", "-url", "-types", "-description", "-schedule", "-max-in-flight"}},
		{[]string{"subscriptions", "enable", "-h"}, []string{"-id"}},
		{[]string{"subscriptions", "disable", "-h"}, []string{"-id"}},
		{[]string{"subscriptions", "rotate-secret", "-h"}, []string{"-id", "-overlap"}},
		{[]string{"subscriptions", "delete", "-h"}, []string{"-id"}},
		{[]string{"deliveries", "-h"}, []string{"usage: userhooks deliveries <command>", "recover"}},
		{[]string{"deliveries", "list", "-h"}, []string{"-subscription", "-event", "-user", "-type", "-status", "-since", "-until", "-limit", "-page-token"}},
		{[]string{"deliveries", "show", "-h"}, []string{"-event", "-subscription", "-run"}},
		{[]string{"deliveries", "redeliver", "-h"}, []string{"-event", "-subscription"}},
		{[]string{"deliveries", "cancel", "-h"}, []string{"-event", "-subscription"}},
		{[]string{"deliveries", "retry", "-h"}, []string{"-event", "-subscription"}},
		{[]string{"deliveries", "recover", "-h"}, []string{"-subscription", "-since"}},
		{[]string{"apikeys", "--help"}, []string{"usage: userhooks apikeys <command>"}},
		{[]string{"apikeys", "create", "-h"}, []string{"-account", "-name", "-store"}},
		{[]string{"apikeys", "list", "-h"}, []string{"-account", "-store"}},
		{[]string{"apikeys", "revoke", "-h"}, []string{"-account", "-id", "-store"}},
		{[]string{"codec-keys", "generate", "-h"}, []string{"-id"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := offline(t, "", tc.args...)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("want exit 0 and nothing on stderr\n%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q\n%s", w, r)
				}
			}
		})
	}
}

func TestExitCode_SeparatesBadInputFromFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"help", flag.ErrHelp, 0},
		{"usage error", usageError{"--id is required"}, 2},
		{"invalid event", fmt.Errorf("publish: %w", &event.ValidationError{Problems: []string{"type is unknown"}}), 2},
		{"invalid subscription", fmt.Errorf("create: %w", &subscription.ValidationError{Problems: []string{"url is required"}}), 2},
		{"invalid API key request", fmt.Errorf("create: %w", &apikey.ValidationError{Problems: []string{"name is too long"}}), 2},
		{"API 400", &apiError{Status: 400}, 2},
		{"API 413", &apiError{Status: 413}, 2},
		{"API 422", fmt.Errorf("x: %w", &apiError{Status: 422}), 2},
		{"API 401", &apiError{Status: 401}, 1},
		{"API 404", &apiError{Status: 404}, 1},
		{"API 409", &apiError{Status: 409}, 1},
		{"API 415", &apiError{Status: 415}, 1},
		{"API 500", &apiError{Status: 500}, 1},
		{"API 503", &apiError{Status: 503}, 1},
		{"other failure", errors.New("cannot reach the userhooks API"), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// TestConnection_NoKeySaysWhereToPutOne: without USERHOOKS_API_KEY and
// without a key file, the CLI calls nothing and says where a key goes.
func TestConnection_NoKeySaysWhereToPutOne(t *testing.T) {
	h := newHarness(t)
	r := h.runAs("", "", "subscriptions", "list")
	wantFailure(t, r, 1, "no API key: set USERHOOKS_API_KEY, or put the key in .userhooks/api-key")
	for _, want := range []string{"--api-key-file", "USERHOOKS_API_KEY_FILE", "userhooks apikeys create"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not mention %s\n%s", want, r)
		}
	}
	h.noRequests("no key")
}

// TestConnection_KeyFromFile: the default file .userhooks/api-key (where
// `worker dev` writes its key) and --api-key-file / USERHOOKS_API_KEY_FILE
// are read when the environment holds no key; the environment's key wins
// over them, and --api-key-file on the command line over it.
func TestConnection_KeyFromFile(t *testing.T) {
	h := newHarness(t)
	createSub(t, h, "acme", "https://acme.example/hooks")
	createSub(t, h, "globex", "https://globex.example/hooks")

	// The default file, relative to the working directory.
	if err := os.MkdirAll(".userhooks", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(".userhooks/api-key", []byte(h.acme+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := h.runAs("", "", "subscriptions", "list"); out.code != 0 || !strings.Contains(out.stdout, "acme.example") {
		t.Errorf("with the default key file: want acme's subscription\n%s", out)
	}

	// A file named by the flag.
	other := filepath.Join(t.TempDir(), "globex.key")
	if err := os.WriteFile(other, []byte(h.globex), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := h.runAs("", "", "subscriptions", "list", "--api-key-file", other); out.code != 0 || !strings.Contains(out.stdout, "globex.example") {
		t.Errorf("with --api-key-file: want globex's subscription\n%s", out)
	}
	// And by the environment.
	r := runCLI(t, map[string]string{envAPIURL: h.url, envAPIKeyFile: other}, "", "subscriptions", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "globex.example") {
		t.Errorf("with USERHOOKS_API_KEY_FILE: want globex's subscription\n%s", r)
	}
	// USERHOOKS_API_KEY wins over USERHOOKS_API_KEY_FILE and the default
	// file, but --api-key-file on the command line wins over it.
	r = runCLI(t, map[string]string{envAPIURL: h.url, envAPIKey: h.acme, envAPIKeyFile: other}, "", "subscriptions", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "acme.example") {
		t.Errorf("with USERHOOKS_API_KEY and USERHOOKS_API_KEY_FILE: want the environment's key (acme)\n%s", r)
	}
	if out := h.runAs(h.acme, "", "subscriptions", "list", "--api-key-file", other); out.code != 0 || !strings.Contains(out.stdout, "globex.example") {
		t.Errorf("with USERHOOKS_API_KEY and --api-key-file: want the flag's key (globex)\n%s", out)
	}

	// A file named explicitly must exist.
	missing := filepath.Join(t.TempDir(), "nope.key")
	wantFailure(t, h.runAs("", "", "subscriptions", "list", "--api-key-file", missing), 1, "read the API key file")

	// A file holding something else is refused without echoing it.
	wrong := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(wrong, []byte("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = h.runAs("", "", "subscriptions", "list", "--api-key-file", wrong)
	wantFailure(t, r, 1, "does not hold an API key (one line starting with uhk_)")
	if strings.Contains(r.stderr, "c2VjcmV0") {
		t.Errorf("the error echoes the file's content\n%s", r)
	}
	empty := filepath.Join(t.TempDir(), "empty.key")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantFailure(t, h.runAs("", "", "subscriptions", "list", "--api-key-file", empty), 1, "is empty")
}

// TestConnection_UnreachableAPINamesTheHostNotTheKey
func TestConnection_UnreachableAPINamesTheHostNotTheKey(t *testing.T) {
	const key = "uhk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"subscriptions", "list"},
		{"publish", "--type", "user.created", "--user-id", "u_42"},
		{"deliveries", "list", "--status", "failed"},
	} {
		r := runCLI(t, map[string]string{envAPIURL: closedURL, envAPIKey: key}, "", args...)
		wantFailure(t, r, 1, "cannot reach the userhooks API at 127.0.0.1:1")
		if strings.Contains(r.stderr, key) || strings.Contains(r.stderr, "AAAAAAAA") {
			t.Errorf("the error shows the key\n%s", r)
		}
	}
}

// TestConnection_RefusedKeyIsExit1AndSaysWhereItCameFrom
func TestConnection_RefusedKeyIsExit1AndSaysWhereItCameFrom(t *testing.T) {
	h := newHarness(t)
	const unknown = "uhk_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	r := h.runAs(unknown, "", "subscriptions", "list")
	wantFailure(t, r, 1, "GET /v1/subscriptions: 401 Unauthorized: the API key is invalid or revoked (the API key from USERHOOKS_API_KEY was refused")
	if strings.Contains(r.stderr, "BBBBBBBB") {
		t.Errorf("the error shows the key\n%s", r)
	}
}

func TestConnection_BadAPIURLIsUsageError(t *testing.T) {
	h := newHarness(t)
	for _, u := range []string{"127.0.0.1:8000", "ftp://api.example", "https://user:pw@api.example", "http://", "http://api.example/?x=1", "http://[::1"} {
		t.Run(u, func(t *testing.T) {
			r := h.run("subscriptions", "list", "--api-url", u)
			wantFailure(t, r, 2, "--api-url")
			if strings.Contains(r.stderr, "pw@") {
				t.Errorf("the error shows the credentials\n%s", r)
			}
		})
	}
	h.noRequests("bad --api-url")
	// A path prefix (an API behind a proxy) is kept.
	r := h.run("subscriptions", "list", "--api-url", h.url+"/prefix/")
	wantFailure(t, r, 1, "GET /v1/subscriptions: 404 Not Found")
}

// TestConnection_AnswersThatAreNotTheAPIAreReported: a proxy's HTML error
// page, a redirect, a 200 that is not JSON.
func TestConnection_AnswersThatAreNotTheAPIAreReported(t *testing.T) {
	var redirected atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			redirected.Store(true)
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>")
	}))
	defer srv.Close()
	t.Chdir(t.TempDir())
	env := map[string]string{envAPIURL: srv.URL, envAPIKey: "uhk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	r := runCLI(t, env, "", "subscriptions", "list")
	wantFailure(t, r, 1, "502 Bad Gateway (from 127.0.0.1")
	if !strings.Contains(r.stderr, "is it the userhooks API?") {
		t.Errorf("stderr does not suggest checking --api-url\n%s", r)
	}

	redirect := httptest.NewServer(http.RedirectHandler(srv.URL+"/elsewhere", http.StatusFound))
	defer redirect.Close()
	env[envAPIURL] = redirect.URL
	wantFailure(t, runCLI(t, env, "", "subscriptions", "list"), 1, "302 Found")
	if redirected.Load() {
		t.Error("the CLI followed a redirect, carrying the key")
	}

	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"subscriptions": [`)
	}))
	defer notJSON.Close()
	env[envAPIURL] = notJSON.URL
	wantFailure(t, runCLI(t, env, "", "subscriptions", "list"), 1, "without a JSON body")

	wrongShape := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"subscriptions": {"id": 1}, "next_after": 7}`)
	}))
	defer wrongShape.Close()
	env[envAPIURL] = wrongShape.URL
	wantFailure(t, runCLI(t, env, "", "subscriptions", "list"), 1, "not what the CLI expects")
}

// TestCLI_NeverPanics runs odd input through every command: each must
// exit 1 or 2 with a message, never panic.
func TestCLI_NeverPanics(t *testing.T) {
	h := newHarness(t)
	odd := []string{"", " ", "-", "--", "\x00", "\x1b[2J", "null", "{}", "[]", `{"delays":null}`, "0", "-1", "99999999999999999999",
		"🙂", strings.Repeat("x", 5000), "../../etc/passwd", "%2F", "01900000-0000-7000-8000-000000000000"}
	commands := [][]string{
		{"publish", "--type"}, {"publish", "--user-id"}, {"publish", "--previous"}, {"publish", "--file"}, {"publish", "--roles"},
		{"subscriptions", "create", "--url"}, {"subscriptions", "create", "--url", "https://x.example", "--schedule"},
		{"subscriptions", "list", "--limit"}, {"subscriptions", "get", "--id"}, {"subscriptions", "update", "--id"},
		{"subscriptions", "update", "--id", "01900000-0000-7000-8000-000000000000", "--schedule"},
		{"subscriptions", "rotate-secret", "--id", "01900000-0000-7000-8000-000000000000", "--overlap"},
		{"deliveries", "list", "--since"}, {"deliveries", "list", "--page-token"}, {"deliveries", "list", "--limit"},
		{"deliveries", "show", "--subscription", "01900000-0000-7000-8000-000000000000", "--event"},
		{"deliveries", "recover", "--subscription", "01900000-0000-7000-8000-000000000000", "--since"},
		{"apikeys", "create", "--account"}, {"apikeys", "revoke", "--account", "acme", "--id"}, {"codec-keys", "generate", "--id"},
	}
	for _, cmd := range commands {
		for _, v := range odd {
			args := append(append([]string{}, cmd...), v)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("userhooks %q panicked: %v", args, p)
					}
				}()
				r := h.run(args...)
				if r.code < 0 || r.code > 2 {
					t.Errorf("userhooks %q: exit %d, want 0, 1 or 2\n%s", args, r.code, r)
				}
				if r.code != 0 && strings.TrimSpace(r.stderr) == "" {
					t.Errorf("userhooks %q failed without a message\n%s", args, r)
				}
			}()
		}
	}
}
