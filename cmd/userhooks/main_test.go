package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/subscription"
)

// closedAddr is a Temporal address where nothing listens. Input errors must
// be reported before any connection attempt, so a test that sees "connect to
// Temporal" instead of its expected message has found a check that runs too
// late.
const closedAddr = "127.0.0.1:1"

// result is what one invocation of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// userhooks runs the CLI as main does, with stdin as its input. The
// environment points Temporal at closedAddr and the default store into a
// temporary directory, so no test reaches a real server or writes to the
// source tree.
func userhooks(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	t.Setenv("TEMPORAL_ADDRESS", closedAddr)
	for _, name := range []string{"TEMPORAL_API_KEY", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA",
		"USERHOOKS_CODEC_KEYS_FILE", "USERHOOKS_PLAINTEXT_HISTORY"} {
		t.Setenv(name, "")
	}
	// A fresh key, unless the test set its own: publish encrypts payloads.
	if os.Getenv("USERHOOKS_TEST_KEEP_CODEC_ENV") == "" {
		t.Setenv("USERHOOKS_CODEC_KEYS", testCodecKey)
	}
	t.Setenv("USERHOOKS_STORE", filepath.Join(t.TempDir(), "default-store.db"))
	var stdout, stderr bytes.Buffer
	code := cli(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustSucceed runs the CLI and fails the test unless it exits 0.
func mustSucceed(t *testing.T, args ...string) string {
	t.Helper()
	r := userhooks(t, "", args...)
	if r.code != 0 {
		t.Fatalf("userhooks %s: want success, got %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// wantFailure checks that r exited with code and that stderr names the
// problem. It also checks that nothing went to stdout.
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := userhooks(t, "", tc.args...)
			wantFailure(t, r, 2, tc.problem)
			if !strings.Contains(r.stderr, tc.wantUsage) {
				t.Errorf("stderr lacks the usage %q\n%s", tc.wantUsage, r)
			}
		})
	}
}

func TestHelp_ExitsZeroAndPrintsNoError(t *testing.T) {
	tests := []struct {
		args      []string
		wantUsage string
	}{
		{[]string{"help"}, "usage: userhooks <command>"},
		{[]string{"-h"}, "usage: userhooks <command>"},
		{[]string{"publish", "-h"}, "-temporal-address"},
		{[]string{"publish", "--help"}, "-user-id"},
		{[]string{"subscriptions", "help"}, "usage: userhooks subscriptions <command>"},
		{[]string{"subscriptions", "create", "-h"}, "-schedule"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := userhooks(t, "", tc.args...)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("want exit 0 and nothing on stderr\n%s", r)
			}
			if !strings.Contains(r.stdout, tc.wantUsage) {
				t.Errorf("stdout lacks %q\n%s", tc.wantUsage, r)
			}
		})
	}
}

func TestPublish_HelpIsErrHelpWithExitCodeZero(t *testing.T) {
	err := run(t.Context(), []string{"publish", "-h"}, strings.NewReader(""), new(bytes.Buffer))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run: got %v, want flag.ErrHelp", err)
	}
	if code := exitCode(err); code != 0 {
		t.Errorf("exitCode(flag.ErrHelp) = %d, want 0", code)
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
		{"not found", fmt.Errorf("get subscription x: %w", subscription.ErrNotFound), 1},
		{"other failure", errors.New("connect to Temporal: connection refused"), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// validEventJSON is a complete user.created event without ID and timestamp,
// which publish fills in.
const validEventJSON = `{"type":"user.created","account_id":"acme","data":{"user":{"id":"u_42","email":"ada@example.com"}}}`

func TestPublish_BadInputFailsBeforeConnecting(t *testing.T) {
	oversized := fmt.Sprintf(`{"type":"user.created","account_id":"acme","data":{"user":{"id":"u_42","name":%q}}}`,
		strings.Repeat("a", event.MaxBodyBytes))
	// Small as an event, but too large as a file: the limit is on what is
	// read, not on the event after re-encoding.
	padded := validEventJSON + strings.Repeat(" ", event.MaxBodyBytes)

	tests := []struct {
		name  string
		args  []string
		file  string // when set, written to a temporary file passed as --file
		stdin string
		want  string
	}{
		{
			name: "unknown type",
			args: []string{"--type", "user.renamed", "--account", "acme", "--user-id", "u_42"},
			want: `type "user.renamed" is unknown`,
		},
		{
			name: "missing user id",
			args: []string{"--type", "user.created", "--account", "acme"},
			want: "data.user.id is required",
		},
		{
			name: "missing account",
			args: []string{"--type", "user.created", "--user-id", "u_42"},
			want: "account_id is required",
		},
		{
			name: "id with a slash",
			args: []string{"--id", "evt/1", "--type", "user.created", "--account", "acme", "--user-id", "u_42"},
			want: `id "evt/1" may only contain`,
		},
		{
			name: "previous that is not JSON",
			args: []string{"--type", "user.updated", "--account", "acme", "--user-id", "u_42", "--previous", "{email: old}"},
			want: "--previous must be a JSON object",
		},
		{
			name: "previous on a type other than user.updated",
			args: []string{"--type", "user.created", "--account", "acme", "--user-id", "u_42", "--previous", `{"email":"old@example.com"}`},
			want: "previous_attributes is only allowed on user.updated",
		},
		{
			name: "file with malformed JSON",
			file: `{"type":"user.created","account_id":`,
			want: "event file is not a valid event",
		},
		{
			name: "file with an unknown field",
			file: `{"type":"user.created","account_id":"acme","colour":"red","data":{"user":{"id":"u_42"}}}`,
			want: `unknown field "colour"`,
		},
		{
			name: "file with data after the event",
			file: validEventJSON + `{"type":"user.deleted"}`,
			want: "data after the event object",
		},
		{
			name: "file with an invalid event",
			file: `{"type":"user.created","account_id":"acme","data":{"user":{"id":""}}}`,
			want: "data.user.id is required",
		},
		{
			name: "file over the size limit",
			file: oversized,
			want: fmt.Sprintf("larger than %d bytes", event.MaxBodyBytes),
		},
		{
			name: "file padded past the size limit",
			file: padded,
			want: fmt.Sprintf("larger than %d bytes", event.MaxBodyBytes),
		},
		{
			name:  "stdin over the size limit",
			args:  []string{"--file", "-"},
			stdin: oversized,
			want:  fmt.Sprintf("event file (stdin) is larger than %d bytes", event.MaxBodyBytes),
		},
		{
			name:  "file combined with event flags",
			args:  []string{"--file", "-", "--type", "user.deleted", "--id", "evt_1"},
			stdin: validEventJSON,
			want:  "--file cannot be combined with --id, --type",
		},
		{
			name: "unknown flag",
			args: []string{"--acount", "acme"},
			want: "flag provided but not defined: -acount",
		},
		{
			// flag stops at the first non-flag, so without the check
			// --type and everything after "yes" would be dropped silently.
			name: "stray argument",
			args: []string{"--json", "yes", "--type", "user.created", "--account", "acme", "--user-id", "u_42"},
			want: `unexpected argument "yes"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"publish", "--temporal-address", closedAddr}, tc.args...)
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), "event.json")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--file", path)
			}
			r := userhooks(t, tc.stdin, args...)
			wantFailure(t, r, 2, tc.want)
			if strings.Contains(r.stderr, "connect to Temporal") {
				t.Errorf("bad input reached the connection to Temporal\n%s", r)
			}
		})
	}
}

// testCodecKey is a payload encryption keyring of one all-zero key (tests
// only).
const testCodecKey = "test:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

// TestPublish_WithoutCodecKeysRefusesBeforeConnecting: user data is not
// written to history in clear unless the operator says so.
func TestPublish_WithoutCodecKeysRefusesBeforeConnecting(t *testing.T) {
	t.Setenv("USERHOOKS_TEST_KEEP_CODEC_ENV", "1")
	t.Setenv("USERHOOKS_CODEC_KEYS", "")
	r := userhooks(t, validEventJSON, "publish", "--temporal-address", closedAddr, "--file", "-")
	wantFailure(t, r, 1, "payload encryption needs keys: set USERHOOKS_CODEC_KEYS_FILE")
	if strings.Contains(r.stderr, "connect to Temporal") {
		t.Errorf("publish connected without codec keys\n%s", r)
	}

	// -plaintext-history is the explicit way out: it gets as far as connecting.
	r = userhooks(t, validEventJSON, "publish", "--plaintext-history", "--temporal-address", closedAddr, "--file", "-")
	wantFailure(t, r, 1, "connect to Temporal at "+closedAddr)

	// A broken key is reported as such, without echoing key material.
	t.Setenv("USERHOOKS_CODEC_KEYS", "k1:bm90LWEta2V5")
	r = userhooks(t, validEventJSON, "publish", "--temporal-address", closedAddr, "--file", "-")
	wantFailure(t, r, 1, "USERHOOKS_CODEC_KEYS")
	if strings.Contains(r.stderr, "bm90LWEta2V5") {
		t.Errorf("the error echoes the key\n%s", r)
	}
}

func TestCodecKeysGenerate_PrintsAKeyringEntry(t *testing.T) {
	out := mustSucceed(t, "codec-keys", "generate", "--id", "prod-2026")
	k, err := payloadcodec.ParseKeyring(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("codec-keys generate printed %q, which does not parse: %v", out, err)
	}
	if k.ActiveKeyID() != "prod-2026" {
		t.Errorf("active key ID = %q, want prod-2026", k.ActiveKeyID())
	}
	if again := mustSucceed(t, "codec-keys", "generate", "--id", "prod-2026"); again == out {
		t.Error("two runs printed the same key")
	}
	wantFailure(t, userhooks(t, "", "codec-keys", "generate", "--id", "has space"), 2, "--id")
	wantFailure(t, userhooks(t, "", "codec-keys"), 2, "usage: userhooks codec-keys generate")
}

// TestPublish_ValidEventGetsAsFarAsConnecting is the control for
// TestPublish_BadInputFailsBeforeConnecting: valid input does try closedAddr,
// and fails there with a different message and exit code.
func TestPublish_ValidEventGetsAsFarAsConnecting(t *testing.T) {
	r := userhooks(t, validEventJSON, "publish", "--temporal-address", closedAddr, "--file", "-")
	wantFailure(t, r, 1, "connect to Temporal at "+closedAddr)
}

// createSubscription creates a subscription with create --json and returns
// its ID and secret.
func createSubscription(t *testing.T, store string, flags ...string) (id, secret string) {
	t.Helper()
	out := mustSucceed(t, append([]string{"subscriptions", "create", "--store", store, "--json"}, flags...)...)
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create --json printed %q: %v", out, err)
	}
	if created.ID == "" || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create --json printed %q: want an id and a whsec_ secret", out)
	}
	return created.ID, created.Secret
}

// listSubscriptions returns the raw output of list --json and its decoding.
func listSubscriptions(t *testing.T, store, account string) (string, []subscriptionView) {
	t.Helper()
	out := mustSucceed(t, "subscriptions", "list", "--store", store, "--account", account, "--json")
	var subs []subscriptionView
	if err := json.Unmarshal([]byte(out), &subs); err != nil || subs == nil {
		t.Fatalf("list --json printed %q, want a JSON array (err %v)", out, err)
	}
	return out, subs
}

func getSubscription(t *testing.T, store, id string) subscriptionView {
	t.Helper()
	out := mustSucceed(t, "subscriptions", "get", "--store", store, "--id", id)
	var s subscriptionView
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("get printed %q: %v", out, err)
	}
	return s
}

func TestSubscriptions_MissingRequiredFlagIsUsageErrorAndTouchesNoStore(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"create without account", []string{"create", "--url", "https://crm.example.com/hooks"}, "subscriptions create: missing required --account\n"},
		{"create without url", []string{"create", "--account", "acme"}, "subscriptions create: missing required --url\n"},
		{"create without either", []string{"create"}, "subscriptions create: missing required --account, --url\n"},
		{"list without account", []string{"list"}, "subscriptions list: missing required --account\n"},
		{"get without id", []string{"get"}, "subscriptions get: missing required --id\n"},
		{"enable without id", []string{"enable"}, "subscriptions enable: missing required --id\n"},
		{"disable without id", []string{"disable"}, "subscriptions disable: missing required --id\n"},
		{"delete without id", []string{"delete"}, "subscriptions delete: missing required --id\n"},
		{"unknown flag", []string{"list", "--acount", "acme"}, "flag provided but not defined: -acount"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "subs.db")
			args := append([]string{"subscriptions", tc.args[0], "--store", store}, tc.args[1:]...)
			wantFailure(t, userhooks(t, "", args...), 2, tc.want)
			if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("store %s: want it never created, stat says %v", store, err)
			}
		})
	}
}

func TestSubscriptionsCreate_InvalidInputCreatesNothing(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"relative url", []string{"--url", "crm.example.com/hooks"}, "url must be absolute"},
		{"url with another scheme", []string{"--url", "ftp://crm.example.com/hooks"}, `url scheme is "ftp", want http or https`},
		{"url without host", []string{"--url", "https:///hooks"}, "url has no host"},
		{"unknown event type", []string{"--url", "https://crm.example.com/hooks", "--types", "user.created,user.renamed"}, `event_types[1] "user.renamed" is not a known event type`},
		{"schedule that is not JSON", []string{"--url", "https://crm.example.com/hooks", "--schedule", "{delays: [10s]}"}, "--schedule is not a valid retry schedule"},
		{"schedule with a misspelt field", []string{"--url", "https://crm.example.com/hooks", "--schedule", `{"delay":["10s"]}`}, `unknown field "delay"`},
		{"schedule with a bad duration", []string{"--url", "https://crm.example.com/hooks", "--schedule", `{"delays":["soon"]}`}, `invalid duration "soon"`},
		{"schedule that is null", []string{"--url", "https://crm.example.com/hooks", "--schedule", "null"}, "--schedule must be a JSON object"},
		{"schedule with too much jitter", []string{"--url", "https://crm.example.com/hooks", "--schedule", `{"delays":["10s"],"jitter":0.9}`}, "retry schedule jitter is 0.9"},
		{"schedule with too short a delay", []string{"--url", "https://crm.example.com/hooks", "--schedule", `{"delays":["1ms"]}`}, "retry schedule delay 1 is 1ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "subs.db")
			args := append([]string{"subscriptions", "create", "--store", store, "--account", "acme"}, tc.flags...)
			wantFailure(t, userhooks(t, "", args...), 2, tc.want)
			if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("store %s: want it never created, stat says %v", store, err)
			}
		})
	}
}

// TestSubscriptions_MistypedStoreIsReportedNotCreated: only create makes a
// store file, so a wrong --store is an error, not an empty list.
func TestSubscriptions_MistypedStoreIsReportedNotCreated(t *testing.T) {
	store := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{
		{"list", "--account", "acme"},
		{"get", "--id", "0193b1a2-0000-7000-8000-000000000000"},
		{"disable", "--id", "0193b1a2-0000-7000-8000-000000000000"},
	} {
		r := userhooks(t, "", append([]string{"subscriptions", args[0], "--store", store}, args[1:]...)...)
		wantFailure(t, r, 1, "no subscription store at "+store)
		if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("subscriptions %s created %s", args[0], store)
		}
	}
}

func TestSubscriptionsCreate_PrintsSecretOnceAndNeverAgain(t *testing.T) {
	store := filepath.Join(t.TempDir(), "subs.db")
	out := mustSucceed(t, "subscriptions", "create", "--store", store, "--account", "acme", "--url", "https://crm.example.com/hooks")

	m := regexp.MustCompile(`^Created subscription (\S+)\n  secret  (whsec_\S+)\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create printed %q, want the ID and a whsec_ secret", out)
	}
	id, secret := m[1], m[2]
	if n := strings.Count(out, "whsec_"); n != 1 {
		t.Errorf("create printed the secret %d times, want once:\n%s", n, out)
	}

	raw, subs := listSubscriptions(t, store, "acme")
	if len(subs) != 1 || subs[0].ID != id || subs[0].AccountID != "acme" || subs[0].URL != "https://crm.example.com/hooks" ||
		!subs[0].Enabled || subs[0].Secrets != 1 {
		t.Errorf("list --json: got %+v, want the one enabled subscription %s with 1 secret", subs, id)
	}
	text := mustSucceed(t, "subscriptions", "list", "--store", store, "--account", "acme")
	if !strings.Contains(text, id) {
		t.Errorf("list printed %q, want it to show %s", text, id)
	}
	getOut := mustSucceed(t, "subscriptions", "get", "--store", store, "--id", id)
	for what, out := range map[string]string{"list --json": raw, "list": text, "get": getOut} {
		if strings.Contains(out, secret) || strings.Contains(out, "whsec_") {
			t.Errorf("%s shows secret text:\n%s", what, out)
		}
	}
}

func TestSubscriptionsCreate_JSONPrintsTheSecretOnce(t *testing.T) {
	store := filepath.Join(t.TempDir(), "subs.db")
	out := mustSucceed(t, "subscriptions", "create", "--store", store, "--account", "acme", "--url", "https://crm.example.com/hooks", "--json")
	var created struct {
		subscriptionView
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create --json printed %q: %v", out, err)
	}
	if created.ID == "" || created.AccountID != "acme" || created.Secrets != 1 || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Errorf("create --json: got %+v, want the new subscription, 1 secret and its whsec_ text", created)
	}
	if n := strings.Count(out, "whsec_"); n != 1 {
		t.Errorf("create --json printed the secret %d times, want once:\n%s", n, out)
	}
}

func TestSubscriptionsCreate_StoresTypesAndSchedule(t *testing.T) {
	store := filepath.Join(t.TempDir(), "subs.db")
	id, _ := createSubscription(t, store, "--account", "acme", "--url", "https://crm.example.com/hooks",
		"--types", "user.deleted, user.created", "--description", "CRM sync",
		"--schedule", `{"delays":["10s","1m"],"jitter":0.1,"max_retry_after":"1h"}`)

	got := getSubscription(t, store, id)
	if want := []string{"user.created", "user.deleted"}; !slices.Equal(got.EventTypes, want) {
		t.Errorf("event types: got %q, want %q", got.EventTypes, want)
	}
	if got.Description != "CRM sync" {
		t.Errorf("description: got %q, want %q", got.Description, "CRM sync")
	}
	want := delivery.Schedule{
		Delays:        []delivery.Duration{delivery.Duration(10 * time.Second), delivery.Duration(time.Minute)},
		Jitter:        0.1,
		MaxRetryAfter: delivery.Duration(time.Hour),
	}
	if got.Schedule == nil || !slices.Equal(got.Schedule.Delays, want.Delays) || got.Schedule.Jitter != want.Jitter ||
		got.Schedule.MaxRetryAfter != want.MaxRetryAfter {
		t.Errorf("schedule: got %+v, want %+v", got.Schedule, want)
	}
}

func TestSubscriptionsCreate_MakesTheStoreDirectory(t *testing.T) {
	store := filepath.Join(t.TempDir(), "not", "yet", "there", "subs.db")
	id, _ := createSubscription(t, store, "--account", "acme", "--url", "https://crm.example.com/hooks")
	if _, subs := listSubscriptions(t, store, "acme"); len(subs) != 1 || subs[0].ID != id {
		t.Errorf("list: got %+v, want subscription %s", subs, id)
	}
}

func TestSubscriptions_UnknownIDIsNotFound(t *testing.T) {
	store := filepath.Join(t.TempDir(), "subs.db")
	createSubscription(t, store, "--account", "acme", "--url", "https://crm.example.com/hooks")
	const unknown = "01900000-0000-7000-8000-000000000000"
	for _, verb := range []string{"get", "enable", "disable", "delete"} {
		t.Run(verb, func(t *testing.T) {
			r := userhooks(t, "", "subscriptions", verb, "--store", store, "--id", unknown)
			wantFailure(t, r, 1, "subscription not found")
			if !strings.Contains(r.stderr, unknown) {
				t.Errorf("stderr does not name the ID %s\n%s", unknown, r)
			}
		})
	}
	if _, subs := listSubscriptions(t, store, "acme"); len(subs) != 1 || !subs[0].Enabled {
		t.Errorf("list after failed commands: got %+v, want the one enabled subscription", subs)
	}
}

func TestSubscriptions_DisableEnableDeleteRoundTrip(t *testing.T) {
	store := filepath.Join(t.TempDir(), "subs.db")
	id, _ := createSubscription(t, store, "--account", "acme", "--url", "https://crm.example.com/hooks")
	other, _ := createSubscription(t, store, "--account", "acme", "--url", "https://billing.example.com/hooks")

	steps := []struct {
		verb        string
		wantOut     string
		wantEnabled bool
	}{
		{"disable", "Subscription " + id + " disabled\n", false},
		{"disable", "Subscription " + id + " disabled\n", false}, // idempotent
		{"enable", "Subscription " + id + " enabled\n", true},
		{"disable", "Subscription " + id + " disabled\n", false},
	}
	for _, step := range steps {
		if out := mustSucceed(t, "subscriptions", step.verb, "--store", store, "--id", id); out != step.wantOut {
			t.Errorf("%s printed %q, want %q", step.verb, out, step.wantOut)
		}
		if got := getSubscription(t, store, id); got.Enabled != step.wantEnabled {
			t.Errorf("after %s: enabled = %t, want %t", step.verb, got.Enabled, step.wantEnabled)
		}
	}

	if out := mustSucceed(t, "subscriptions", "delete", "--store", store, "--id", id); out != "Subscription "+id+" deleted\n" {
		t.Errorf("delete printed %q", out)
	}
	wantFailure(t, userhooks(t, "", "subscriptions", "get", "--store", store, "--id", id), 1, "not found")
	wantFailure(t, userhooks(t, "", "subscriptions", "delete", "--store", store, "--id", id), 1, "not found")

	if _, subs := listSubscriptions(t, store, "acme"); len(subs) != 1 || subs[0].ID != other || !subs[0].Enabled {
		t.Errorf("list after delete: got %+v, want only the untouched subscription %s", subs, other)
	}
}
