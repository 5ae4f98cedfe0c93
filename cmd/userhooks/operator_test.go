package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/userhooks/userhooks/payloadcodec"
)

// storedKeys returns the IDs of an account's keys and how many are active.
func (h *harness) storedKeys(account string) (ids []string, active int) {
	h.t.Helper()
	ks, err := h.keys.List(h.t.Context(), account)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, k := range ks {
		ids = append(ids, k.ID)
		if k.Active() {
			active++
		}
	}
	return ids, active
}

// TestAPIKeys_CreateListRevokeAgainstTheStore: a key made by the CLI works
// against the API at once; revoked, it gets 401.
func TestAPIKeys_CreateListRevokeAgainstTheStore(t *testing.T) {
	h := newHarness(t)
	out := h.ok("apikeys", "create", "--account", "initech", "--name", "billing service")
	m := regexp.MustCompile(`^Created API key (\S+) for account initech\n  key  (uhk_\S+)\n\(the key is shown only now: keep it in USERHOOKS_API_KEY or a file named by --api-key-file\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("apikeys create printed %q", out)
	}
	id, key := m[1], m[2]
	if ids, active := h.storedKeys("initech"); len(ids) != 1 || ids[0] != id || active != 1 {
		t.Fatalf("initech has keys %v (%d active), want %s", ids, active, id)
	}

	// The new key is initech's in the API.
	if r := h.runAs(key, "", "subscriptions", "create", "--url", "https://initech.example/hooks"); r.code != 0 {
		t.Fatalf("the new key does not work: %s", r)
	}
	if n := h.storedCount("initech"); n != 1 {
		t.Errorf("initech has %d subscriptions, want the one its key made", n)
	}

	list := h.ok("apikeys", "list", "--account", "initech")
	if !regexp.MustCompile(`(?m)^ID +PREFIX +NAME +STATUS +CREATED +LAST USED$`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^`+id+` +`+regexp.QuoteMeta(key[:12])+`… +billing service +active +\d{4}-\d\d-\d\dT\S+Z +\d{4}-`).MatchString(list) {
		t.Errorf("apikeys list printed:\n%s", list)
	}
	if strings.Contains(list, key) {
		t.Errorf("apikeys list shows the whole key")
	}

	if out := h.ok("apikeys", "revoke", "--account", "initech", "--id", id); out != "API key "+id+" of account initech revoked: it stops working at once\n" {
		t.Errorf("apikeys revoke printed %q", out)
	}
	if _, active := h.storedKeys("initech"); active != 0 {
		t.Errorf("initech has %d active keys after the revocation", active)
	}
	wantFailure(t, h.runAs(key, "", "subscriptions", "list"), 1, "401 Unauthorized: the API key is invalid or revoked")
	if list := h.ok("apikeys", "list", "--account", "initech"); !regexp.MustCompile(`revoked \d{4}-`).MatchString(list) {
		t.Errorf("apikeys list after the revocation:\n%s", list)
	}
	// Revoking again is fine (idempotent).
	h.ok("apikeys", "revoke", "--account", "initech", "--id", id)
}

func TestAPIKeys_JSON(t *testing.T) {
	h := newHarness(t)
	var created struct {
		ID            string `json:"id"`
		AccountID     string `json:"account_id"`
		Name          string `json:"name"`
		DisplayPrefix string `json:"display_prefix"`
		Active        bool   `json:"active"`
		Key           string `json:"key"`
	}
	out := h.okJSON(&created, "apikeys", "create", "--account", "initech")
	if created.ID == "" || created.AccountID != "initech" || !created.Active || !strings.HasPrefix(created.Key, created.DisplayPrefix) ||
		strings.Count(out, created.Key) != 1 {
		t.Errorf("apikeys create --json printed %s", out)
	}
	var keys []struct {
		ID        string  `json:"id"`
		Active    bool    `json:"active"`
		RevokedAt *string `json:"revoked_at"`
		Key       string  `json:"key"`
	}
	h.okJSON(&keys, "apikeys", "list", "--account", "acme")
	if len(keys) != 1 || !keys[0].Active || keys[0].RevokedAt != nil || keys[0].Key != "" {
		t.Errorf("apikeys list --json: got %+v, want acme's one active key, without its text", keys)
	}
	var revoked map[string]any
	h.okJSON(&revoked, "apikeys", "revoke", "--account", "initech", "--id", created.ID)
	if revoked["revoked"] != true || revoked["id"] != created.ID {
		t.Errorf("apikeys revoke --json printed %v", revoked)
	}
	var none []any
	if out := h.okJSON(&none, "apikeys", "list", "--account", "nobody"); strings.TrimSpace(out) != "[]" {
		t.Errorf("an account without keys: list --json printed %q, want []", out)
	}
}

func TestAPIKeys_BadInputCreatesNothing(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"create without account", []string{"create"}, "apikeys create: missing required --account\n"},
		{"create with a bad account", []string{"create", "--account", "ac me"}, "--account must be an account ID"},
		{"create with a control character in the name", []string{"create", "--account", "initech", "--name", "a\nb"}, "name must not contain control characters"},
		{"create with too long a name", []string{"create", "--account", "initech", "--name", strings.Repeat("n", 201)}, "name is 201 characters long"},
		{"list without account", []string{"list"}, "apikeys list: missing required --account\n"},
		{"revoke without id", []string{"revoke", "--account", "initech"}, "apikeys revoke: missing required --id\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, h.run(append([]string{"apikeys"}, tc.args...)...), 2, tc.want)
		})
	}
	if ids, _ := h.storedKeys("initech"); len(ids) != 0 {
		t.Errorf("initech has keys %v, want none", ids)
	}
}

func TestAPIKeys_UnknownKeyAndMissingStore(t *testing.T) {
	h := newHarness(t)
	wantFailure(t, h.run("apikeys", "revoke", "--account", "acme", "--id", unknownID), 1, "account acme has no API key "+unknownID)
	// Another account's key is not found either, and stays active.
	globexIDs, _ := h.storedKeys("globex")
	wantFailure(t, h.run("apikeys", "revoke", "--account", "acme", "--id", globexIDs[0]), 1, "account acme has no API key")
	if _, active := h.storedKeys("globex"); active != 1 {
		t.Errorf("globex's key was revoked through acme")
	}

	// A mistyped store is reported, not created.
	typo := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{
		{"create", "--account", "acme"}, {"list", "--account", "acme"}, {"revoke", "--account", "acme", "--id", unknownID},
	} {
		r := h.run(append(append([]string{"apikeys"}, args...), "--store", typo)...)
		wantFailure(t, r, 1, "no database at "+typo)
		if _, err := os.Stat(typo); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("apikeys %s created %s", args[0], typo)
		}
	}
	// USERHOOKS_STORE is the default; .userhooks/userhooks.db without it.
	r := runCLI(t, nil, "", "apikeys", "list", "--account", "acme")
	wantFailure(t, r, 1, "no database at .userhooks/userhooks.db")
}

func TestCodecKeysGenerate_PrintsAKeyringEntry(t *testing.T) {
	out := offline(t, "", "codec-keys", "generate", "--id", "prod-2026").stdout
	k, err := payloadcodec.ParseKeyring(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("codec-keys generate printed %q, which does not parse: %v", out, err)
	}
	if k.ActiveKeyID() != "prod-2026" {
		t.Errorf("active key ID = %q, want prod-2026", k.ActiveKeyID())
	}
	if again := offline(t, "", "codec-keys", "generate", "--id", "prod-2026").stdout; again == out {
		t.Error("two runs printed the same key")
	}
	wantFailure(t, offline(t, "", "codec-keys", "generate", "--id", "has space"), 2, "--id")
	wantFailure(t, offline(t, "", "codec-keys"), 2, "usage: userhooks codec-keys generate")
}
