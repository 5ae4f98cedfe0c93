package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/apiserver"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// cliEnv runs the userhooks CLI, built from this source tree, as a
// subprocess against the real HTTP API: the API server's handler in front
// of the test's worker, store and Temporal server, its API keys in a SQLite
// file that the CLI's operator commands open too.
type cliEnv struct {
	*env
	bin      string // the CLI binary
	apiURL   string
	keysPath string // the API key database (--store of apikeys)
	dir      string // the CLI's working directory: no .userhooks/ in it
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	c := &cliEnv{env: newEnv(t), dir: t.TempDir()}
	c.bin = buildCLI(t)
	c.keysPath = filepath.Join(t.TempDir(), "userhooks.db")
	keys, err := apikey.OpenSQLite(t.Context(), c.keysPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	h, err := apiserver.New(apiserver.Options{
		Client: c.client, Namespace: server.GetDefaultNamespace(), TaskQueue: c.taskQueue,
		Subscriptions: c.store, Keys: keys, Policy: loopback,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c.apiURL = srv.URL
	return c
}

// buildCLI compiles ./cmd/userhooks into the test's temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "userhooks")
	start := time.Now()
	// go test puts its own toolchain first on PATH.
	out, err := exec.Command("go", "build", "-o", bin, "github.com/userhooks/userhooks/cmd/userhooks").CombinedOutput()
	if err != nil {
		t.Fatalf("build the CLI: %v\n%s", err, out)
	}
	t.Logf("built the CLI in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// cliRun is what one run of the CLI did.
type cliRun struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r cliRun) String() string {
	return "userhooks " + strings.Join(r.args, " ") + ": exit " + itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// run runs the CLI with the API key in keyFile (none when "") and nothing
// else of the environment's userhooks settings.
func (c *cliEnv) run(keyFile string, args ...string) cliRun {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USERHOOKS_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "USERHOOKS_API_URL="+c.apiURL)
	if keyFile != "" {
		cmd.Env = append(cmd.Env, "USERHOOKS_API_KEY_FILE="+keyFile)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		c.t.Fatalf("run userhooks %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the CLI and fails the test unless it succeeds without a word on
// stderr.
func (c *cliEnv) ok(keyFile string, args ...string) string {
	c.t.Helper()
	r := c.run(keyFile, args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("want success, got %s", r)
	}
	return r.stdout
}

// okJSON runs the CLI with --json and decodes what it printed into v.
func (c *cliEnv) okJSON(v any, keyFile string, args ...string) {
	c.t.Helper()
	out := c.ok(keyFile, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("userhooks %s --json printed %q: %v", strings.Join(args, " "), out, err)
	}
}

// fails runs the CLI and checks that it exits with code, saying each of
// the words on stderr and nothing on stdout.
func (c *cliEnv) fails(code int, words []string, keyFile string, args ...string) cliRun {
	c.t.Helper()
	r := c.run(keyFile, args...)
	if r.code != code || r.stdout != "" {
		c.t.Errorf("want exit %d and nothing on stdout, got %s", code, r)
		return r
	}
	for _, w := range words {
		if !strings.Contains(r.stderr, w) {
			c.t.Errorf("stderr lacks %q: %s", w, r)
		}
	}
	return r
}

// newKey issues an API key of account with the CLI's operator command,
// straight into the API's database, and keeps it in a file for
// --api-key-file / USERHOOKS_API_KEY_FILE.
func (c *cliEnv) newKey(account string) (id, file string) {
	c.t.Helper()
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	c.okJSON(&k, "", "apikeys", "create", "--store", c.keysPath, "--account", account, "--name", "cli test")
	file = filepath.Join(c.t.TempDir(), account+".key")
	if err := os.WriteFile(file, []byte(k.Key+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return k.ID, file
}

// noWorkflow checks that publishing started no event workflow.
func (c *cliEnv) noWorkflow(workflowID string) {
	c.t.Helper()
	_, err := c.client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		c.t.Errorf("workflow %s: describe says %v, want not found (nothing published)", workflowID, err)
	}
}

// cliAPIKey is the part of `apikeys list --json` the test reads.
type cliAPIKey struct {
	ID     string `json:"id"`
	Active bool   `json:"active"`
}

// cliDelivery is the part of `deliveries show --json` the test reads.
type cliDelivery struct {
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
	RunID      string `json:"run_id"`
	AttemptLog []struct {
		StatusCode *int `json:"status_code"`
	} `json:"attempt_log"`
}

// waitDelivery polls `deliveries show --json` until cond holds.
func (c *cliEnv) waitDelivery(keyFile, eventID, subID, what string, cond func(cliDelivery) bool) cliDelivery {
	c.t.Helper()
	var d cliDelivery
	waitFor(c.t, time.Minute, what, func() bool {
		r := c.run(keyFile, "deliveries", "show", "--event", eventID, "--subscription", subID, "--json")
		d = cliDelivery{}
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &d) == nil && cond(d)
	})
	return d
}

// waitListed polls `deliveries list --json` with args until it lists want
// deliveries: the list is a visibility query, which lags behind history.
func (c *cliEnv) waitListed(keyFile string, want int, args ...string) {
	c.t.Helper()
	waitFor(c.t, time.Minute, "deliveries list "+strings.Join(args, " ")+" to list "+itoa(want), func() bool {
		var page struct {
			Deliveries []json.RawMessage `json:"deliveries"`
		}
		r := c.run(keyFile, append([]string{"deliveries", "list", "--json"}, args...)...)
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &page) == nil && len(page.Deliveries) == want
	})
}

// TestCLI_OperatesDeliveriesThroughTheRealAPI runs the CLI binary as a user
// would, against the real API, worker and Temporal server: it creates a
// subscription to a real receiver, publishes (twice: one delivery), reads
// the delivery list and attempt log, redelivers, retries and cancels a
// retrying delivery, recovers a failed one, rotates the secret, disables,
// enables and deletes; then checks that a wrong or revoked key, another
// account and bad input are refused with the right exit status and change
// nothing.
func TestCLI_OperatesDeliveriesThroughTheRealAPI(t *testing.T) {
	c := newCLIEnv(t)
	ctx := context.Background()
	const account = "acme-cli"
	// Event IDs are unique per run: the Temporal server outlives a run
	// (-count), and an event ID it has seen publishes nothing new.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	evt1, evt2, evt3, evt4 := "cli-e2e-1-"+run, "cli-e2e-2-"+run, "cli-e2e-3-"+run, "cli-e2e-4-"+run
	bad1, bad2 := "cli-bad-1-"+run, "cli-bad-2-"+run
	keyID, key := c.newKey(account)
	_, otherKey := c.newKey("other-cli")

	// A subscription to a receiver that fails once, then accepts.
	rcv := newReceiver(t, 500)
	var sub struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	c.okJSON(&sub, key, "subscriptions", "create", "--url", rcv.srv.URL+"/hooks", "--types", "user.created",
		"--description", "CRM sync", "--schedule", `{"delays":["1s","1s"]}`)
	secret, err := signature.ParseSecret(sub.Secret)
	if err != nil {
		t.Fatalf("the secret %q that create printed does not parse: %v", sub.Secret, err)
	}
	rcv.verifyWith(secret)
	if s, err := c.store.Get(ctx, sub.ID); err != nil || s.AccountID != account || s.URL != rcv.srv.URL+"/hooks" {
		t.Fatalf("the store holds %+v, %v; want the subscription of %s", s, err, account)
	}
	out := c.ok(key, "subscriptions", "get", "--id", sub.ID)
	for _, re := range []string{`(?m)^Account +` + account + `$`, `(?m)^Event types +user\.created$`, `(?m)^Schedule +1s, 1s; jitter 0$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("subscriptions get printed:\n%s\nwant a line matching %s", out, re)
		}
	}
	if strings.Contains(out, sub.Secret) {
		t.Errorf("subscriptions get shows the secret:\n%s", out)
	}

	// A concurrency limit, round trip: set at creation, shown, changed,
	// left alone by an update without the flag, removed with 0. (Deleted
	// after: the events below must not reach it.)
	var limited struct {
		ID          string `json:"id"`
		MaxInFlight *int   `json:"max_in_flight"`
	}
	c.okJSON(&limited, key, "subscriptions", "create", "--url", rcv.srv.URL+"/limited", "--max-in-flight", "3")
	storedLimit := func(step string, want int) {
		t.Helper()
		if s, err := c.store.Get(ctx, limited.ID); err != nil || s.MaxInFlight != want {
			t.Errorf("after %s the store holds max in flight %d (%v), want %d", step, s.MaxInFlight, err, want)
		}
	}
	if limited.MaxInFlight == nil || *limited.MaxInFlight != 3 {
		t.Errorf("create --max-in-flight 3 --json answered max_in_flight %v, want 3", limited.MaxInFlight)
	}
	storedLimit("create --max-in-flight 3", 3)
	if out := c.ok(key, "subscriptions", "get", "--id", limited.ID); !regexp.MustCompile(`(?m)^Max in flight +3 request\(s\) at once$`).MatchString(out) {
		t.Errorf("subscriptions get printed:\n%s\nwant Max in flight 3", out)
	}
	c.ok(key, "subscriptions", "update", "--id", limited.ID, "--max-in-flight", "7")
	storedLimit("update --max-in-flight 7", 7)
	c.ok(key, "subscriptions", "update", "--id", limited.ID, "--description", "limited")
	storedLimit("update --description", 7)
	var unlimited struct {
		MaxInFlight *int `json:"max_in_flight"`
	}
	c.okJSON(&unlimited, key, "subscriptions", "update", "--id", limited.ID, "--max-in-flight", "0")
	if unlimited.MaxInFlight == nil || *unlimited.MaxInFlight != 0 {
		t.Errorf("update --max-in-flight 0 --json answered max_in_flight %v, want 0", unlimited.MaxInFlight)
	}
	storedLimit("update --max-in-flight 0", 0)
	if out := c.ok(key, "subscriptions", "list"); !regexp.MustCompile(`(?m)^` + limited.ID + ` +enabled +\(all\) +\S+/limited +- +limited$`).MatchString(out) {
		t.Errorf("subscriptions list printed:\n%s\nwant the subscription without a limit", out)
	}
	// With --json, the API's refusal is its problem document on stdout too.
	r := c.run(key, "subscriptions", "update", "--id", limited.ID, "--schedule", `{"jitter":0.9}`, "--json")
	var problem struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &problem); err != nil || r.code != 2 || problem.Status != 422 ||
		problem.Detail == "" || !strings.Contains(r.stderr, problem.Detail) {
		t.Errorf("a refused update with --json: want exit 2, the 422 problem document on stdout and its detail on stderr; got %s", r)
	}
	c.ok(key, "subscriptions", "delete", "--id", limited.ID)

	// Publish twice with one ID: one delivery.
	publish := []string{"publish", "--id", evt1, "--type", "user.created", "--user-id", "u_cli", "--email", "cli@example.com"}
	if out := c.ok(key, publish...); !strings.HasPrefix(out, "Published user.created "+evt1+"\n") {
		t.Errorf("publish printed %q", out)
	}
	if out := c.ok(key, publish...); !strings.HasPrefix(out, "Already published (nothing new started) user.created "+evt1+"\n") {
		t.Errorf("publish again printed %q", out)
	}
	got := rcv.waitRequests(2, time.Minute)
	for i, r := range got {
		if r.Verified != nil || r.Header.Get("webhook-id") != evt1 {
			t.Errorf("request %d: verified %v, webhook-id %q", i+1, r.Verified, r.Header.Get("webhook-id"))
		}
	}
	first := c.waitDelivery(key, evt1, sub.ID, "the delivery to be delivered", func(d cliDelivery) bool { return d.Status == "delivered" })
	if first.Attempts != 2 || len(first.AttemptLog) != 2 {
		t.Errorf("delivery %+v, want delivered after 2 attempts", first)
	}

	// The list, as a table: event type, user, endpoint, status, attempts, times.
	c.waitListed(key, 1, "--subscription", sub.ID, "--status", "delivered")
	out = c.ok(key, "deliveries", "list", "--subscription", sub.ID)
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	listRow := regexp.MustCompile(`(?m)^` + stamp + ` +` + evt1 + ` +user\.created +u_cli +` + sub.ID + ` +` + regexp.QuoteMeta(rcv.srv.URL) + ` +delivered +2 +` + stamp + `$`)
	if !strings.HasPrefix(out, "STARTED ") || !listRow.MatchString(out) {
		t.Errorf("deliveries list printed:\n%s\nwant a header and a row matching %s", out, listRow)
	}
	if strings.Contains(out, "/hooks") {
		t.Errorf("deliveries list shows the endpoint's path:\n%s", out)
	}

	// The attempt log: status code, class, duration and the receiver's answer.
	out = c.ok(key, "deliveries", "show", "--event", evt1, "--subscription", sub.ID)
	for _, re := range []string{
		`(?m)^Status +delivered after 2 attempts$`,
		`(?m)^ATTEMPT +TIME +STATUS +CLASS +DURATION +ERROR / RESPONSE$`,
		`(?m)^1 +` + stamp + ` +500 +ServerError +\S+ +HTTP 500 Internal Server Error; "\{\\"answer\\":500\}"$`,
		`(?m)^2 +` + stamp + ` +200 +ok +\S+ +"\{\\"answer\\":200\}"$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("deliveries show printed:\n%s\nwant a line matching %s", out, re)
		}
	}

	// Redeliver: a new run, the same webhook-id.
	var redelivered struct {
		RunID        string  `json:"run_id"`
		RedeliveryOf *string `json:"redelivery_of"`
	}
	c.okJSON(&redelivered, key, "deliveries", "redeliver", "--event", evt1, "--subscription", sub.ID)
	if redelivered.RunID == "" || redelivered.RunID == first.RunID {
		t.Errorf("redeliver answered run %q, want a new run (the first was %s)", redelivered.RunID, first.RunID)
	}
	if r := rcv.waitRequests(3, time.Minute)[2]; r.Verified != nil || r.Header.Get("webhook-id") != evt1 || !bytes.Equal(r.Body, got[1].Body) {
		t.Errorf("redelivery: verified %v, webhook-id %q, same body %v", r.Verified, r.Header.Get("webhook-id"), bytes.Equal(r.Body, got[1].Body))
	}
	c.waitDelivery(key, evt1, sub.ID, "the redelivery to be delivered", func(d cliDelivery) bool {
		return d.RunID == redelivered.RunID && d.Status == "delivered"
	})

	// A delivery waiting an hour to retry: retry now, then cancel.
	down := newReceiver(t, 500, 500, 500, 500)
	var slow struct {
		ID string `json:"id"`
	}
	c.okJSON(&slow, key, "subscriptions", "create", "--url", down.srv.URL, "--types", "user.deleted", "--schedule", `{"delays":["1h","1h"]}`)
	c.ok(key, "publish", "--id", evt2, "--type", "user.deleted", "--user-id", "u_cli")
	c.waitDelivery(key, evt2, slow.ID, "the delivery to wait for its retry", func(d cliDelivery) bool {
		return d.Status == "retrying" && d.Attempts == 1
	})
	if out := c.ok(key, "deliveries", "retry", "--event", evt2, "--subscription", slow.ID); !strings.HasPrefix(out, "Retry requested") {
		t.Errorf("retry printed %q", out)
	}
	down.waitRequests(2, time.Minute)
	c.waitDelivery(key, evt2, slow.ID, "the second attempt", func(d cliDelivery) bool {
		return d.Status == "retrying" && d.Attempts == 2
	})
	if out := c.ok(key, "deliveries", "cancel", "--event", evt2, "--subscription", slow.ID); !strings.HasPrefix(out, "Cancel requested") {
		t.Errorf("cancel printed %q", out)
	}
	c.waitDelivery(key, evt2, slow.ID, "the delivery to be canceled", func(d cliDelivery) bool { return d.Status == "canceled" })
	// Cancelling it again: the API's 409, exit 1, its explanation.
	c.fails(1, []string{"409", "the delivery has finished"}, key, "deliveries", "cancel", "--event", evt2, "--subscription", slow.ID)

	// A delivery refused for good (400), recovered once the receiver is fixed.
	picky := newReceiver(t, 400)
	var fixable struct {
		ID string `json:"id"`
	}
	c.okJSON(&fixable, key, "subscriptions", "create", "--url", picky.srv.URL, "--types", "user.updated")
	c.ok(key, "publish", "--id", evt3, "--type", "user.updated", "--user-id", "u_cli", "--email", "new@example.com",
		"--previous", `{"email":"cli@example.com"}`)
	c.waitListed(key, 1, "--subscription", fixable.ID, "--status", "failed")
	out = c.ok(key, "deliveries", "recover", "--subscription", fixable.ID, "--since", "1h")
	if !strings.HasPrefix(out, "Redelivered 1 failed delivery of subscription "+fixable.ID) || !strings.Contains(out, evt3) {
		t.Errorf("recover printed:\n%s", out)
	}
	picky.waitRequests(2, time.Minute)
	c.waitDelivery(key, evt3, fixable.ID, "the recovered delivery to be delivered", func(d cliDelivery) bool { return d.Status == "delivered" })

	// Rotate the secret: the new one is printed once, and signs.
	out = c.ok(key, "subscriptions", "rotate-secret", "--id", sub.ID, "--overlap", "1h")
	m := regexp.MustCompile(`(?m)^  secret  (whsec_\S+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "An old secret keeps signing until") {
		t.Fatalf("rotate-secret printed:\n%s", out)
	}
	newSecret, err := signature.ParseSecret(m[1])
	if err != nil || m[1] == sub.Secret {
		t.Fatalf("rotate-secret printed secret %q: %v; want a new one", m[1], err)
	}
	if s, err := c.store.Get(ctx, sub.ID); err != nil || len(s.Secrets) != 2 {
		t.Errorf("after rotation the store holds %d secrets (%v), want the new and the old", len(s.Secrets), err)
	}
	rcv.verifyWith(newSecret)
	c.ok(key, "publish", "--id", evt4, "--type", "user.created", "--user-id", "u_cli2")
	if r := rcv.waitRequests(4, time.Minute)[3]; r.Verified != nil {
		t.Errorf("a delivery after the rotation does not verify with the new secret: %v", r.Verified)
	}

	// Disable and enable.
	if out := c.ok(key, "subscriptions", "disable", "--id", sub.ID); out != "Subscription "+sub.ID+" disabled\n" {
		t.Errorf("disable printed %q", out)
	}
	if s, err := c.store.Get(ctx, sub.ID); err != nil || s.Enabled {
		t.Errorf("after disable: enabled %v, %v", s.Enabled, err)
	}
	c.ok(key, "subscriptions", "enable", "--id", sub.ID)
	if s, err := c.store.Get(ctx, sub.ID); err != nil || !s.Enabled {
		t.Errorf("after enable: enabled %v, %v", s.Enabled, err)
	}

	// The list of subscriptions, as a table.
	out = c.ok(key, "subscriptions", "list")
	for _, id := range []string{sub.ID, slow.ID, fixable.ID} {
		if !strings.Contains(out, id) {
			t.Errorf("subscriptions list lacks %s:\n%s", id, out)
		}
	}

	// Refusals. A key the API does not know, and a revoked one: exit 1 and
	// a message that says so.
	unknown := filepath.Join(t.TempDir(), "unknown.key")
	if err := os.WriteFile(unknown, []byte("uhk_"+strings.Repeat("A", 43)), 0o600); err != nil {
		t.Fatal(err)
	}
	c.fails(1, []string{"401", "was refused"}, unknown, "subscriptions", "list")
	revokedID, revoked := c.newKey(account)
	c.ok("", "apikeys", "revoke", "--store", c.keysPath, "--account", account, "--id", revokedID)
	c.fails(1, []string{"401", "was refused"}, revoked, "deliveries", "list")
	var keys []cliAPIKey
	c.okJSON(&keys, "", "apikeys", "list", "--store", c.keysPath, "--account", account)
	if len(keys) != 2 || !slices.Contains(keys, cliAPIKey{ID: keyID, Active: true}) || !slices.Contains(keys, cliAPIKey{ID: revokedID, Active: false}) {
		t.Errorf("apikeys list: %+v, want the test's key active and the revoked one", keys)
	}

	// Another account: not found, and nothing changed.
	c.fails(1, []string{"404", "subscription not found"}, otherKey, "subscriptions", "get", "--id", sub.ID)
	c.fails(1, []string{"404", "delivery not found"}, otherKey, "deliveries", "show", "--event", evt1, "--subscription", sub.ID)
	c.fails(1, []string{"404"}, otherKey, "subscriptions", "delete", "--id", sub.ID)
	c.fails(1, []string{"404"}, otherKey, "deliveries", "redeliver", "--event", evt1, "--subscription", sub.ID)
	if out := c.ok(otherKey, "subscriptions", "list"); strings.Contains(out, sub.ID) {
		t.Errorf("another account lists the subscription:\n%s", out)
	}

	// Bad input: exit 2, the problem named, nothing changed.
	before, err := c.store.List(ctx, account, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	c.fails(2, []string{"user.exploded", "not a known event type"}, key, "subscriptions", "create", "--url", rcv.srv.URL, "--types", "user.exploded")
	c.fails(2, []string{"url must be absolute"}, key, "subscriptions", "create", "--url", "crm.example.com/hooks")
	// Refused by the API (its egress policy), not by the CLI: still 2.
	c.fails(2, []string{"422"}, key, "subscriptions", "create", "--url", "https://10.0.0.8/hooks")
	c.fails(2, []string{"not a known event type"}, key, "subscriptions", "update", "--id", sub.ID, "--types", "user.created,user.exploded")
	c.fails(2, []string{"flag provided but not defined: -colour"}, key, "subscriptions", "disable", "--id", sub.ID, "--colour")
	c.fails(2, []string{"flag needs an argument"}, key, "subscriptions", "update", "--id", sub.ID, "--url")
	after, err := c.store.List(ctx, account, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || !slices.EqualFunc(after, before, func(a, b subscription.Subscription) bool {
		return a.ID == b.ID && a.URL == b.URL && a.Enabled == b.Enabled && slices.Equal(a.EventTypes, b.EventTypes) && a.UpdatedAt.Equal(b.UpdatedAt)
	}) {
		t.Errorf("bad input changed the subscriptions:\nbefore %+v\nafter  %+v", before, after)
	}
	c.fails(2, []string{"user.exploded"}, key, "publish", "--id", bad1, "--type", "user.exploded", "--user-id", "u_cli")
	c.noWorkflow("event/" + bad1)
	// Another account in the event: the API's 422.
	c.fails(2, []string{"422", "account"}, key, "publish", "--id", bad2, "--account", "other-cli", "--type", "user.created", "--user-id", "u_cli")
	c.noWorkflow("event/" + bad2)
	c.fails(2, []string{`invalid value "many" for flag -limit`}, key, "deliveries", "list", "--limit", "many")

	// Delete: gone from the store, and for the CLI.
	if out := c.ok(key, "subscriptions", "delete", "--id", sub.ID); out != "Subscription "+sub.ID+" deleted\n" {
		t.Errorf("delete printed %q", out)
	}
	if _, err := c.store.Get(ctx, sub.ID); !errors.Is(err, subscription.ErrNotFound) {
		t.Errorf("after delete the store says %v, want not found", err)
	}
	c.fails(1, []string{"404"}, key, "subscriptions", "get", "--id", sub.ID)
}
