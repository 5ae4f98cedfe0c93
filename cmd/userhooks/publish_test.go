package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/userhooks/userhooks/event"
)

// validEventJSON is a complete user.created event without ID, timestamp and
// account, which publish and the API fill in.
const validEventJSON = `{"type":"user.created","data":{"user":{"id":"u_42","email":"ada@example.com"}}}`

func TestPublish_SendsTheEventThroughTheAPIAndPrintsItsIDs(t *testing.T) {
	h := newHarness(t)
	out := h.ok("publish", "--type", "user.updated", "--user-id", "u_42", "--email", "new@example.com", "--name", "Ada",
		"--username", "ada", "--roles", "admin, billing", "--tags", "beta", "--status", "active", "--attributes", `{"plan":"pro"}`,
		"--previous", `{"email":"old@example.com"}`)

	evs := h.pub.events()
	if len(evs) != 1 {
		t.Fatalf("the publisher got %d events, want 1", len(evs))
	}
	e := evs[0]
	if e.Type != event.TypeUserUpdated || e.AccountID != "acme" || e.Data.User.ID != "u_42" || e.Data.User.Email != "new@example.com" ||
		e.Data.User.Name != "Ada" || e.Data.User.Username != "ada" || strings.Join(e.Data.User.Roles, ",") != "admin,billing" ||
		strings.Join(e.Data.User.Tags, ",") != "beta" || e.Data.User.Status != "active" || string(e.Data.User.Attributes["plan"]) != `"pro"` ||
		string(e.Data.PreviousAttributes["email"]) != `"old@example.com"` {
		t.Errorf("published %+v, want the flags' event in the key's account acme", e)
	}
	want := regexp.MustCompile(`^Published user\.updated (\S+)\n  account +acme\n  workflow +event/(\S+)\n  run +run-1\n$`)
	m := want.FindStringSubmatch(out)
	if m == nil || m[1] != e.ID || m[2] != e.ID {
		t.Errorf("publish printed %q, want the event ID %s, its workflow and run", out, e.ID)
	}
}

func TestPublish_SameIDTwiceSaysAlreadyPublished(t *testing.T) {
	h := newHarness(t)
	args := []string{"publish", "--id", "evt_2026_0001", "--type", "user.deleted", "--user-id", "u_42"}
	if out := h.ok(args...); !strings.HasPrefix(out, "Published user.deleted evt_2026_0001\n") {
		t.Errorf("first publish printed %q", out)
	}
	if out := h.ok(args...); !strings.HasPrefix(out, "Already published (nothing new started) user.deleted evt_2026_0001\n") ||
		!strings.Contains(out, "run-1") {
		t.Errorf("second publish printed %q, want the original run", out)
	}
	if n := len(h.pub.events()); n != 1 {
		t.Errorf("the publisher started %d runs, want 1", n)
	}
}

func TestPublish_JSONPrintsTheAPIAnswer(t *testing.T) {
	h := newHarness(t)
	var a struct {
		EventID    string          `json:"event_id"`
		WorkflowID string          `json:"workflow_id"`
		RunID      string          `json:"run_id"`
		Duplicate  bool            `json:"duplicate"`
		Event      json.RawMessage `json:"event"`
	}
	h.okJSON(&a, "publish", "--account", "acme", "--type", "user.created", "--user-id", "u_42")
	e, err := event.Decode(a.Event)
	if err != nil {
		t.Fatalf("the answer's event does not decode: %v", err)
	}
	if a.EventID == "" || a.EventID != e.ID || a.WorkflowID != "event/"+e.ID || a.RunID != "run-1" || a.Duplicate || e.AccountID != "acme" {
		t.Errorf("publish --json: got %+v with event %+v", a, e)
	}
}

func TestPublish_FromFileAndStdin(t *testing.T) {
	h := newHarness(t)
	path := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(path, []byte(`{"id":"evt_file","type":"user.created","account_id":"acme","data":{"user":{"id":"u_1","attributes":{"plan":"pro","n":12345678901234567890}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.ok("publish", "--file", path)
	if r := h.runAs(h.acme, validEventJSON, "publish", "--file", "-"); r.code != 0 {
		t.Fatalf("publish --file -: %s", r)
	}
	evs := h.pub.events()
	if len(evs) != 2 || evs[0].ID != "evt_file" || evs[1].Data.User.ID != "u_42" || evs[1].AccountID != "acme" {
		t.Fatalf("published %+v", evs)
	}
	// Custom attributes arrive byte for byte: a large number is not rounded.
	if got := string(evs[0].Data.User.Attributes["n"]); got != "12345678901234567890" {
		t.Errorf("attribute n arrived as %s", got)
	}
}

// TestPublish_OtherAccountIsRefusedByTheAPI: the key's account is the only
// one it may publish for; the API says so with 422 (exit 2).
func TestPublish_OtherAccountIsRefusedByTheAPI(t *testing.T) {
	h := newHarness(t)
	r := h.run("publish", "--account", "globex", "--type", "user.created", "--user-id", "u_42")
	wantFailure(t, r, 2, "POST /v1/events: 422 Unprocessable Entity: the event is invalid\n  - account_id does not match the API key's account")
	if n := len(h.pub.events()); n != 0 {
		t.Errorf("the publisher got %d events, want none", n)
	}
}

func TestPublish_BadInputFailsBeforeAnyCall(t *testing.T) {
	oversized := fmt.Sprintf(`{"type":"user.created","data":{"user":{"id":"u_42","name":%q}}}`, strings.Repeat("a", event.MaxBodyBytes))
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
		{name: "unknown type", args: []string{"--type", "user.renamed", "--user-id", "u_42"}, want: `type "user.renamed" is unknown`},
		{name: "missing user id", args: []string{"--type", "user.created"}, want: "data.user.id is required"},
		{name: "account with a space", args: []string{"--type", "user.created", "--user-id", "u_42", "--account", "ac me"}, want: `account_id "ac me" may only contain`},
		{name: "id with a slash", args: []string{"--id", "evt/1", "--type", "user.created", "--user-id", "u_42"}, want: `id "evt/1" may only contain`},
		{name: "attributes that are not an object", args: []string{"--type", "user.created", "--user-id", "u_42", "--attributes", `["pro"]`}, want: "--attributes must be a JSON object"},
		{name: "previous that is not JSON", args: []string{"--type", "user.updated", "--user-id", "u_42", "--previous", "{email: old}"}, want: "--previous must be a JSON object"},
		{name: "updated without previous", args: []string{"--type", "user.updated", "--user-id", "u_42"}, want: "data.previous_attributes is required for user.updated"},
		{name: "previous on another type", args: []string{"--type", "user.created", "--user-id", "u_42", "--previous", `{"email":"old@example.com"}`}, want: "previous_attributes is only allowed on user.updated"},
		{name: "file with malformed JSON", file: `{"type":"user.created","account_id":`, want: "event file is not a valid event"},
		{name: "file with an unknown field", file: `{"type":"user.created","colour":"red","data":{"user":{"id":"u_42"}}}`, want: `unknown field "colour"`},
		{name: "file with data after the event", file: validEventJSON + `{"type":"user.deleted"}`, want: "data after the event object"},
		{name: "file with an invalid event", file: `{"type":"user.created","data":{"user":{"id":""}}}`, want: "data.user.id is required"},
		{name: "file over the size limit", file: oversized, want: fmt.Sprintf("larger than %d bytes", event.MaxBodyBytes)},
		{name: "file padded past the size limit", file: padded, want: fmt.Sprintf("larger than %d bytes", event.MaxBodyBytes)},
		{name: "stdin over the size limit", args: []string{"--file", "-"}, stdin: oversized, want: fmt.Sprintf("event file (stdin) is larger than %d bytes", event.MaxBodyBytes)},
		{name: "file combined with event flags", args: []string{"--file", "-", "--type", "user.deleted", "--id", "evt_1"}, stdin: validEventJSON, want: "--file cannot be combined with --id, --type"},
		{name: "unknown flag", args: []string{"--acount", "acme"}, want: "flag provided but not defined: -acount"},
		{name: "key as a flag", args: []string{"--api-key", "uhk_x"}, want: "flag provided but not defined: -api-key"},
		{
			// flag stops at the first non-flag, so without the check
			// --type and everything after "yes" would be dropped silently.
			name: "stray argument",
			args: []string{"--json", "yes", "--type", "user.created", "--user-id", "u_42"},
			want: `unexpected argument "yes"`,
		},
	}
	h := newHarness(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"publish"}, tc.args...)
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), "event.json")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--file", path)
			}
			wantFailure(t, h.runAs(h.acme, tc.stdin, args...), 2, tc.want)
			h.noRequests(tc.name)
			// Without a key or an API, bad input is still reported as such.
			wantFailure(t, offline(t, tc.stdin, args...), 2, tc.want)
		})
	}
	if n := len(h.pub.events()); n != 0 {
		t.Errorf("the publisher got %d events, want none", n)
	}
}

// TestPublish_LostAnswerSuggestsTheSameID: when the API cannot be reached
// the event may or may not have been taken; the ID the CLI assigned makes
// trying again safe, so the error names it.
func TestPublish_LostAnswerSuggestsTheSameID(t *testing.T) {
	t.Chdir(t.TempDir())
	env := map[string]string{envAPIURL: closedURL, envAPIKey: "uhk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	r := runCLI(t, env, validEventJSON, "publish", "--file", "-")
	wantFailure(t, r, 1, "publishing is idempotent by event ID: try again with --id ")
	m := regexp.MustCompile(`--id (\S+)`).FindStringSubmatch(r.stderr)
	if m == nil || !validID(m[1]) {
		t.Errorf("stderr names no event ID to retry with\n%s", r)
	}
	r = runCLI(t, env, "", "publish", "--id", "evt_7", "--type", "user.created", "--user-id", "u_42")
	wantFailure(t, r, 1, "try again with --id evt_7")
}
