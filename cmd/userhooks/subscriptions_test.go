package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// unknownID is a well-formed subscription ID that no subscription has.
const unknownID = "01900000-0000-7000-8000-000000000000"

// createSub stores a subscription of account directly, and returns its ID.
func createSub(t *testing.T, h *harness, account, url string) string {
	t.Helper()
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	s := subscription.Subscription{AccountID: account, URL: url, Enabled: true, Secrets: []subscription.Secret{{Key: secret}}}
	if err := h.subs.Create(t.Context(), &s); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return s.ID
}

// stored returns a subscription from the store.
func (h *harness) stored(id string) subscription.Subscription {
	h.t.Helper()
	s, err := h.subs.Get(h.t.Context(), id)
	if err != nil {
		h.t.Fatalf("store Get %s: %v", id, err)
	}
	return s
}

// storedCount returns how many subscriptions an account has.
func (h *harness) storedCount(account string) int {
	h.t.Helper()
	subs, err := h.subs.List(h.t.Context(), account, "", subscription.MaxPageSize)
	if err != nil {
		h.t.Fatal(err)
	}
	return len(subs)
}

// subscriptionJSON is what the API (and so --json) says of a subscription.
type subscriptionJSON struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id"`
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
	Enabled     bool     `json:"enabled"`
	Schedule    *struct {
		Delays []string `json:"delays"`
		Jitter float64  `json:"jitter"`
	} `json:"schedule"`
	Secrets []struct {
		Active    bool       `json:"active"`
		ExpiresAt *time.Time `json:"expires_at"`
	} `json:"secrets"`
	Secret string `json:"secret"`
}

func TestSubscriptionsCreate_PrintsTheSecretOnceAndNeverAgain(t *testing.T) {
	h := newHarness(t)
	out := h.ok("subscriptions", "create", "--url", "https://crm.example.com/hooks")
	m := regexp.MustCompile(`^Created subscription (\S+)\n  secret  (whsec_\S+)\n\(the secret is shown only now: give it to the receiver\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create printed %q, want the ID and a whsec_ secret", out)
	}
	id, secret := m[1], m[2]
	s := h.stored(id)
	if s.AccountID != "acme" || s.URL != "https://crm.example.com/hooks" || !s.Enabled || len(s.Secrets) != 1 || s.Secrets[0].Key.Reveal() != secret {
		t.Errorf("stored %+v, want acme's enabled subscription signed with the printed secret", s)
	}
	for _, args := range [][]string{
		{"subscriptions", "list"}, {"subscriptions", "list", "--json"},
		{"subscriptions", "get", "--id", id}, {"subscriptions", "get", "--id", id, "--json"},
		{"subscriptions", "disable", "--id", id}, {"subscriptions", "enable", "--id", id, "--json"},
		{"subscriptions", "update", "--id", id, "--description", "x"}, {"subscriptions", "update", "--id", id, "--description", "y", "--json"},
	} {
		if out := h.ok(args...); strings.Contains(out, "whsec_") || !strings.Contains(out, id) {
			t.Errorf("%s printed %q: want the subscription, and no secret", strings.Join(args, " "), out)
		}
	}
}

func TestSubscriptionsCreate_JSONIsTheAPIAnswerWithTheSecretOnce(t *testing.T) {
	h := newHarness(t)
	var s subscriptionJSON
	out := h.okJSON(&s, "subscriptions", "create", "--url", "https://crm.example.com/hooks", "--types", "user.deleted, user.created",
		"--description", "CRM sync", "--schedule", `{"delays":["10s","1m"],"jitter":0.1,"max_retry_after":"1h"}`)
	if s.ID == "" || s.AccountID != "acme" || len(s.Secrets) != 1 || !s.Secrets[0].Active || !strings.HasPrefix(s.Secret, "whsec_") {
		t.Errorf("create --json: got %+v, want acme's new subscription with one active secret and its whsec_ text", s)
	}
	if n := strings.Count(out, "whsec_"); n != 1 {
		t.Errorf("create --json printed the secret %d times, want once:\n%s", n, out)
	}
	stored := h.stored(s.ID)
	if want := []string{"user.created", "user.deleted"}; !slices.Equal(stored.EventTypes, want) {
		t.Errorf("event types: got %q, want %q", stored.EventTypes, want)
	}
	want := delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(10 * time.Second), delivery.Duration(time.Minute)}, Jitter: 0.1,
		MaxRetryAfter: delivery.Duration(time.Hour)}
	if stored.Description != "CRM sync" || stored.Schedule == nil || !slices.Equal(stored.Schedule.Delays, want.Delays) ||
		stored.Schedule.Jitter != want.Jitter || stored.Schedule.MaxRetryAfter != want.MaxRetryAfter {
		t.Errorf("stored description %q, schedule %+v; want CRM sync and %+v", stored.Description, stored.Schedule, want)
	}
}

// TestSubscriptions_BadInputChangesNothing: invalid flags fail with exit 2
// before any call (or, when only the API can tell, by its 422), and the
// store is as it was.
func TestSubscriptions_BadInputChangesNothing(t *testing.T) {
	h := newHarness(t)
	id := createSub(t, h, "acme", "https://crm.example.com/hooks")
	before := h.stored(id)

	tests := []struct {
		name string
		args []string
		want string
		// byAPI: only the API can tell, so one call is made.
		byAPI bool
	}{
		{"create without url", []string{"create"}, "subscriptions create: missing required --url\n", false},
		{"create with a relative url", []string{"create", "--url", "crm.example.com/hooks"}, "url must be absolute", false},
		{"create with another scheme", []string{"create", "--url", "ftp://crm.example.com/hooks"}, `url scheme is "ftp", want http or https`, false},
		{"create with an unknown type", []string{"create", "--url", "https://crm.example.com/x", "--types", "user.created,user.renamed"}, `event_types[1] "user.renamed" is not a known event type`, false},
		{"create with a schedule that is not JSON", []string{"create", "--url", "https://crm.example.com/x", "--schedule", "{delays: [10s]}"}, "--schedule is not a valid retry schedule", false},
		{"create with a misspelt schedule field", []string{"create", "--url", "https://crm.example.com/x", "--schedule", `{"delay":["10s"]}`}, `unknown field "delay"`, false},
		{"create with a bad duration", []string{"create", "--url", "https://crm.example.com/x", "--schedule", `{"delays":["soon"]}`}, `invalid duration "soon"`, false},
		{"create with a null schedule", []string{"create", "--url", "https://crm.example.com/x", "--schedule", "null"}, "--schedule must be a JSON object", false},
		{"create with too much jitter", []string{"create", "--url", "https://crm.example.com/x", "--schedule", `{"delays":["10s"],"jitter":0.9}`}, "retry schedule jitter is 0.9", false},
		{"create with an account flag", []string{"create", "--account", "acme", "--url", "https://crm.example.com/x"}, "flag provided but not defined: -account", false},
		{"list with a negative limit", []string{"list", "--limit", "-1"}, "--limit must not be negative", false},
		{"get without id", []string{"get"}, "subscriptions get: missing required --id\n", false},
		{"get with a malformed id", []string{"get", "--id", "not-a-uuid"}, "--id must be an ID such as", false},
		{"enable without id", []string{"enable"}, "subscriptions enable: missing required --id\n", false},
		{"delete without id", []string{"delete"}, "subscriptions delete: missing required --id\n", false},
		{"update without a change", []string{"update", "--id", id}, "nothing to change: give at least one of --url, --types, --description, --schedule, --max-in-flight", false},
		{"create with too high a max in flight", []string{"create", "--url", "https://crm.example.com/x", "--max-in-flight", "1001"}, "--max-in-flight must be from 0 (no limit of its own) to 1000; got 1001", false},
		{"create with a negative max in flight", []string{"create", "--url", "https://crm.example.com/x", "--max-in-flight", "-1"}, "--max-in-flight must be from 0", false},
		{"create with a max in flight that is not a number", []string{"create", "--url", "https://crm.example.com/x", "--max-in-flight", "3.5"}, `invalid value "3.5" for flag -max-in-flight`, false},
		{"update to too high a max in flight", []string{"update", "--id", id, "--max-in-flight", "5000"}, "--max-in-flight must be from 0 (no limit of its own) to 1000; got 5000", false},
		{"update to a negative max in flight", []string{"update", "--id", id, "--max-in-flight", "-3"}, "--max-in-flight must be from 0", false},
		{"update to an empty url", []string{"update", "--id", id, "--url", ""}, "url is required", false},
		{"update to an unknown type", []string{"update", "--id", id, "--types", "user.exploded"}, `"user.exploded" is not a known event type`, false},
		{"update with a misspelt schedule field", []string{"update", "--id", id, "--schedule", `{"jiter":0}`}, `unknown field "jiter"`, false},
		{"update with a schedule array", []string{"update", "--id", id, "--schedule", `["10s"]`}, "--schedule is not a valid retry schedule", false},
		{"update to a merged schedule that is invalid", []string{"update", "--id", id, "--schedule", `{"jitter":0.9}`}, "422 Unprocessable Entity: the subscription is invalid\n  - schedule: retry schedule jitter is 0.9", true},
		{"rotate with a bad overlap", []string{"rotate-secret", "--id", id, "--overlap", "a while"}, "--overlap must be a duration from 0s to 720h0m0s", false},
		{"rotate with a negative overlap", []string{"rotate-secret", "--id", id, "--overlap", "-1h"}, "--overlap must be a duration", false},
		{"rotate with too long an overlap", []string{"rotate-secret", "--id", id, "--overlap", "721h"}, "--overlap must be a duration", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, h.run(append([]string{"subscriptions"}, tc.args...)...), 2, tc.want)
			if n := h.requests.Swap(0); tc.byAPI != (n > 0) {
				t.Errorf("the API got %d requests; want them only when the API must judge (%t)", n, tc.byAPI)
			}
		})
	}
	if n := h.storedCount("acme"); n != 1 {
		t.Errorf("acme has %d subscriptions, want the 1 it had", n)
	}
	after := h.stored(id)
	if !after.UpdatedAt.Equal(before.UpdatedAt) || after.URL != before.URL || after.Schedule != nil || after.MaxInFlight != 0 || len(after.Secrets) != 1 {
		t.Errorf("the subscription changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestSubscriptionsList_TableAndJSONPageThroughEverything(t *testing.T) {
	h := newHarness(t)
	var ids []string
	for i := range 105 { // more than one page of the API (100)
		ids = append(ids, createSub(t, h, "acme", fmt.Sprintf("https://hooks.example/%03d", i)))
	}
	createSub(t, h, "globex", "https://globex.example/hooks")

	var page struct {
		Subscriptions []subscriptionJSON `json:"subscriptions"`
		NextAfter     *string            `json:"next_after"`
	}
	h.okJSON(&page, "subscriptions", "list")
	var got []string
	for _, s := range page.Subscriptions {
		got = append(got, s.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(got, ids) || page.NextAfter != nil {
		t.Errorf("list --json: got %d subscriptions (next_after %v), want acme's %d in ID order", len(got), page.NextAfter, len(ids))
	}

	out := h.ok("subscriptions", "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 106 || !regexp.MustCompile(`^ID +STATUS +TYPES +URL +MAX IN FLIGHT +DESCRIPTION$`).MatchString(lines[0]) {
		t.Fatalf("list printed %d lines, want a header and 105 rows; first: %q", len(lines), lines[0])
	}
	if !regexp.MustCompile(`^` + ids[0] + ` +enabled +\(all\) +https://hooks\.example/\d{3} +- +-$`).MatchString(lines[1]) {
		t.Errorf("first row %q, want ID, enabled, (all), URL, no limit, no description", lines[1])
	}
	if strings.Contains(out, "globex") {
		t.Errorf("acme's list shows globex's subscription:\n%s", out)
	}

	h.okJSON(&page, "subscriptions", "list", "--limit", "3")
	if len(page.Subscriptions) != 3 || page.NextAfter == nil || *page.NextAfter != ids[2] {
		t.Errorf("list --limit 3 --json: got %d (next_after %v), want 3 and next_after %s", len(page.Subscriptions), page.NextAfter, ids[2])
	}
	if out := h.ok("subscriptions", "list", "--limit", "2"); strings.Count(out, "\n") != 4 || !strings.Contains(out, "(more: raise --limit") {
		t.Errorf("list --limit 2 printed %q, want a header, 2 rows and a note that there are more", out)
	}
}

func TestSubscriptionsGet_ReadableAndJSON(t *testing.T) {
	h := newHarness(t)
	var created subscriptionJSON
	h.okJSON(&created, "subscriptions", "create", "--url", "https://crm.example.com/hooks", "--types", "user.created",
		"--description", "CRM\x1b[31m sync", "--schedule", `{"delays":["10s","1m"],"jitter":0.1}`)
	out := h.ok("subscriptions", "get", "--id", created.ID)
	for _, want := range [][2]string{
		{"ID", created.ID},
		{"Account", "acme"},
		{"URL", "https://crm.example.com/hooks"},
		{"Event types", "user.created"},
		{"Description", "CRM [31m sync"}, // the escape character is not printed
		{"Enabled", "true"},
		{"Schedule", "10s, 1m; jitter 0.1"},
		{"Max in flight", "no limit of its own"},
		{"Secrets", "1 (active)"},
		{"Last success", "never"},
		{"Failing", "no"},
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want[0]) + ` +` + regexp.QuoteMeta(want[1]) + `$`).MatchString(out) {
			t.Errorf("get printed:\n%s\nwant a line %q", out, want[0]+"  "+want[1])
		}
	}
	if strings.Contains(out, "Disabled") || strings.Contains(out, "health") || strings.Contains(out, "max_in_flight") {
		t.Errorf("get of an enabled subscription printed:\n%s\nwant no Disabled line and no raw health or max_in_flight fields", out)
	}
	var got subscriptionJSON
	h.okJSON(&got, "subscriptions", "get", "--id", created.ID)
	if got.ID != created.ID || got.URL != "https://crm.example.com/hooks" || got.Secret != "" {
		t.Errorf("get --json: got %+v", got)
	}
}

// TestSubscriptionsUpdate_SendsOnlyTheFlagsGiven: PATCH semantics — a flag
// left out leaves its field; an empty one returns it to its default.
func TestSubscriptionsUpdate_SendsOnlyTheFlagsGiven(t *testing.T) {
	h := newHarness(t)
	var s subscriptionJSON
	h.okJSON(&s, "subscriptions", "create", "--url", "https://crm.example.com/hooks", "--types", "user.created",
		"--description", "CRM", "--schedule", `{"delays":["10s","1m"],"jitter":0.1}`)

	out := h.ok("subscriptions", "update", "--id", s.ID, "--url", "https://crm.example.com/v2/hooks")
	if !strings.HasPrefix(out, "Updated subscription "+s.ID+"\n") || !regexp.MustCompile(`(?m)^URL +https://crm\.example\.com/v2/hooks$`).MatchString(out) {
		t.Errorf("update printed:\n%s", out)
	}
	got := h.stored(s.ID)
	if got.URL != "https://crm.example.com/v2/hooks" || !slices.Equal(got.EventTypes, []string{"user.created"}) || got.Description != "CRM" ||
		got.Schedule == nil || len(got.Schedule.Delays) != 2 {
		t.Errorf("after --url: stored %+v, want only the URL changed", got)
	}

	h.ok("subscriptions", "update", "--id", s.ID, "--schedule", `{"jitter":0}`, "--description", "CRM v2")
	got = h.stored(s.ID)
	if got.Schedule == nil || got.Schedule.Jitter != 0 || len(got.Schedule.Delays) != 2 || got.Description != "CRM v2" {
		t.Errorf("after merging jitter 0: stored schedule %+v, description %q", got.Schedule, got.Description)
	}

	var answer subscriptionJSON
	h.okJSON(&answer, "subscriptions", "update", "--id", s.ID, "--schedule", "null", "--types", "", "--description", "")
	got = h.stored(s.ID)
	if got.Schedule != nil || len(got.EventTypes) != 0 || got.Description != "" || got.URL != "https://crm.example.com/v2/hooks" {
		t.Errorf("after resetting: stored %+v, want the default schedule, all types, no description, the URL kept", got)
	}
	if answer.ID != s.ID || answer.Schedule != nil || len(answer.EventTypes) != 0 {
		t.Errorf("update --json: got %+v, want the API's answer after the reset", answer)
	}
}

func TestSubscriptions_EnableDisableDelete(t *testing.T) {
	h := newHarness(t)
	id := createSub(t, h, "acme", "https://crm.example.com/hooks")
	other := createSub(t, h, "acme", "https://billing.example.com/hooks")
	steps := []struct {
		verb        string
		wantOut     string
		wantEnabled bool
	}{
		{"disable", "Subscription " + id + " disabled\n", false},
		{"disable", "Subscription " + id + " disabled\n", false}, // idempotent
		{"enable", "Subscription " + id + " enabled; its failure clock was reset: automatic disabling counts from the endpoint's next failed attempt\n", true},
		{"disable", "Subscription " + id + " disabled\n", false},
	}
	for _, step := range steps {
		if out := h.ok("subscriptions", step.verb, "--id", id); out != step.wantOut {
			t.Errorf("%s printed %q, want %q", step.verb, out, step.wantOut)
		}
		if got := h.stored(id); got.Enabled != step.wantEnabled {
			t.Errorf("after %s: enabled = %t, want %t", step.verb, got.Enabled, step.wantEnabled)
		}
	}
	// Paused: the list and get say so.
	if out := h.ok("subscriptions", "list"); !regexp.MustCompile(`(?m)^` + id + ` +disabled +`).MatchString(out) {
		t.Errorf("list of a disabled subscription printed:\n%s", out)
	}
	if out := h.ok("subscriptions", "get", "--id", id); !regexp.MustCompile(`(?m)^Disabled +.*paused by its owner$`).MatchString(out) {
		t.Errorf("get of a disabled subscription printed:\n%s", out)
	}
	var s subscriptionJSON
	h.okJSON(&s, "subscriptions", "enable", "--id", id)
	if !s.Enabled || s.ID != id {
		t.Errorf("enable --json: got %+v", s)
	}

	if out := h.ok("subscriptions", "delete", "--id", id); out != "Subscription "+id+" deleted\n" {
		t.Errorf("delete printed %q", out)
	}
	var del map[string]any
	h.okJSON(&del, "subscriptions", "delete", "--id", other)
	if del["id"] != other || del["deleted"] != true {
		t.Errorf("delete --json printed %v", del)
	}
	if n := h.storedCount("acme"); n != 0 {
		t.Errorf("acme has %d subscriptions after deleting both", n)
	}
	wantFailure(t, h.run("subscriptions", "get", "--id", id), 1, "subscription not found")
}

func TestSubscriptionsRotateSecret_PrintsTheNewSecretOnce(t *testing.T) {
	h := newHarness(t)
	id := createSub(t, h, "acme", "https://crm.example.com/hooks")
	old := h.stored(id).Secrets[0].Key.Reveal()

	start := time.Now()
	out := h.ok("subscriptions", "rotate-secret", "--id", id, "--overlap", "48h")
	m := regexp.MustCompile(`^Rotated the secret of subscription (\S+)\n  secret  (whsec_\S+)\n\(the secret is shown only now: give it to the receiver\)\nAn old secret keeps signing until (\S+)\.\n$`).FindStringSubmatch(out)
	if m == nil || m[1] != id {
		t.Fatalf("rotate-secret printed %q", out)
	}
	if strings.Contains(out, old) {
		t.Errorf("rotate-secret printed the old secret")
	}
	got := h.stored(id)
	if len(got.Secrets) != 2 || got.Secrets[0].Key.Reveal() != m[2] || got.Secrets[1].Key.Reveal() != old {
		t.Fatalf("stored %d secrets, want the printed new one first and the old one", len(got.Secrets))
	}
	exp := got.Secrets[1].ExpiresAt
	if exp.Before(start.Add(48*time.Hour-time.Second)) || exp.After(time.Now().Add(48*time.Hour)) {
		t.Errorf("the old secret expires at %s, want 48h from now", exp)
	}
	if printed, err := time.Parse(timeLayout, m[3]); err != nil || !printed.Equal(exp.Truncate(time.Second)) {
		t.Errorf("printed expiry %s, stored %s", m[3], exp)
	}

	var s subscriptionJSON
	out = h.okJSON(&s, "subscriptions", "rotate-secret", "--id", id, "--overlap", "0s")
	if strings.Count(out, "whsec_") != 1 || len(s.Secrets) != 1 || h.stored(id).Secrets[0].Key.Reveal() != s.Secret {
		t.Errorf("rotate-secret --overlap 0s --json printed %s; want the new secret once, and it alone signing", out)
	}
}

// TestSubscriptions_UnknownOrOtherAccountsIDIsNotFound: exit 1, and another
// account's subscription looks exactly like one that does not exist.
func TestSubscriptions_UnknownOrOtherAccountsIDIsNotFound(t *testing.T) {
	h := newHarness(t)
	globexSub := createSub(t, h, "globex", "https://globex.example/hooks")
	for _, id := range []string{unknownID, globexSub} {
		for _, args := range [][]string{
			{"get", "--id", id}, {"enable", "--id", id}, {"disable", "--id", id}, {"delete", "--id", id},
			{"update", "--id", id, "--url", "https://evil.example/hooks"}, {"rotate-secret", "--id", id},
		} {
			r := h.run(append([]string{"subscriptions"}, args...)...)
			wantFailure(t, r, 1, "/v1/subscriptions/"+id)
			if !strings.Contains(r.stderr, "404 Not Found: subscription not found") {
				t.Errorf("subscriptions %s: want a 404 message\n%s", args[0], r)
			}
		}
	}
	got := h.stored(globexSub)
	if got.URL != "https://globex.example/hooks" || !got.Enabled || len(got.Secrets) != 1 {
		t.Errorf("acme's key changed globex's subscription: %+v", got)
	}
	// And globex's own key sees it.
	if r := h.runAs(h.globex, "", "subscriptions", "get", "--id", globexSub); r.code != 0 {
		t.Errorf("globex cannot get its own subscription: %s", r)
	}
}

// The API's answer is decoded leniently: unknown fields from a newer API are
// kept in --json and ignored in tables.
func TestSubscriptions_JSONKeepsTheAnswerAsItCame(t *testing.T) {
	h := newHarness(t)
	id := createSub(t, h, "acme", "https://crm.example.com/hooks")
	out := h.ok("subscriptions", "get", "--id", id, "--json")
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "account_id", "url", "event_types", "description", "enabled", "schedule", "secrets", "created_at", "updated_at"} {
		if _, ok := m[k]; !ok {
			t.Errorf("get --json lacks %q:\n%s", k, out)
		}
	}
}

// TestSubscriptionsGet_ShowsHealthAndFieldsOfANewerAPI: the endpoint's
// health is shown in words, and fields the CLI does not know (added to the
// API later) are printed after the known ones, an object member by member,
// and safely.
func TestSubscriptionsGet_ShowsHealthAndFieldsOfANewerAPI(t *testing.T) {
	const id = "0193b1a2-5c3d-7e4f-8a9b-0c1d2e3f4a5b"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"account_id":"acme","url":"https://crm.example.com/hooks","event_types":[],"description":"",
			"enabled":false,"schedule":null,"secrets":[{"active":true,"expires_at":null}],
			"created_at":"2026-11-23T09:00:00Z","updated_at":"2026-11-23T09:00:00Z",
			"health":{"last_success_at":"2026-11-23T10:00:00Z","failing_since":null,"disabled_reason":"410 Gone\u001b[2J","disabled_at":"2026-11-23T11:00:00Z"},
			"tier":3,"plan":{"name":"pro","seats":null}}`, id)
	}))
	t.Cleanup(srv.Close)
	t.Chdir(t.TempDir())
	r := runCLI(t, map[string]string{envAPIURL: srv.URL, envAPIKey: "uhk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "", "subscriptions", "get", "--id", id)
	if r.code != 0 {
		t.Fatalf("get: %s", r)
	}
	want := regexp.MustCompile(`(?s)Updated +2026-11-23T09:00:00Z\n` +
		`Last success +2026-11-23T10:00:00Z\n` +
		`Failing +no\n` +
		`Disabled +since 2026-11-23T11:00:00Z, by userhooks: 410 Gone \[2J\n` +
		`plan\.name +pro\n` +
		`plan\.seats +-\n` +
		`tier +3\n$`)
	if !want.MatchString(r.stdout) {
		t.Errorf("get printed:\n%s\nwant health, then the unknown fields after the known ones, matching %s", r.stdout, want)
	}
}

func TestShortDuration_DropsTrailingZeroUnits(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second: "10s", time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h",
		90 * time.Minute: "1h30m", time.Hour + time.Second: "1h0m1s", 20 * time.Hour: "20h", 0: "0s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestSubscriptionsMaxInFlight_CreateUpdateShowRemove: --max-in-flight sets
// the limit at creation, update changes it only when given and removes it
// with 0, and get and list show it.
func TestSubscriptionsMaxInFlight_CreateUpdateShowRemove(t *testing.T) {
	h := newHarness(t)
	var s struct {
		ID          string `json:"id"`
		MaxInFlight *int   `json:"max_in_flight"`
	}
	h.okJSON(&s, "subscriptions", "create", "--url", "https://crm.example.com/hooks", "--max-in-flight", "3")
	if s.MaxInFlight == nil || *s.MaxInFlight != 3 || h.stored(s.ID).MaxInFlight != 3 {
		t.Fatalf("create --max-in-flight 3: answered %v, stored %d; want 3", s.MaxInFlight, h.stored(s.ID).MaxInFlight)
	}
	wantShown := func(step, get, cell string) {
		t.Helper()
		if out := h.ok("subscriptions", "get", "--id", s.ID); !regexp.MustCompile(`(?m)^Max in flight +` + regexp.QuoteMeta(get) + `$`).MatchString(out) {
			t.Errorf("%s: get printed:\n%s\nwant Max in flight %q", step, out, get)
		}
		if out := h.ok("subscriptions", "list"); !regexp.MustCompile(`(?m)^` + s.ID + ` +enabled +\(all\) +https://crm\.example\.com/hooks +` + regexp.QuoteMeta(cell) + ` {2,}\S.*$`).MatchString(out) {
			t.Errorf("%s: list printed:\n%s\nwant %q in the MAX IN FLIGHT column", step, out, cell)
		}
	}
	wantShown("after create", "3 request(s) at once", "3")

	steps := []struct {
		name string
		args []string
		want int
	}{
		{"raised", []string{"--max-in-flight", "1000"}, 1000},
		{"left out", []string{"--description", "CRM"}, 1000},
		{"lowered with another change", []string{"--max-in-flight", "1", "--description", "CRM v2"}, 1},
		{"removed with 0", []string{"--max-in-flight", "0"}, 0},
		{"left out again", []string{"--description", "CRM v3"}, 0},
	}
	for _, step := range steps {
		h.ok(append([]string{"subscriptions", "update", "--id", s.ID}, step.args...)...)
		if got := h.stored(s.ID).MaxInFlight; got != step.want {
			t.Errorf("update %s (%s): stored MaxInFlight %d, want %d", strings.Join(step.args, " "), step.name, got, step.want)
		}
	}
	wantShown("after removal", "no limit of its own", "-")

	var plain struct {
		ID          string `json:"id"`
		MaxInFlight *int   `json:"max_in_flight"`
	}
	h.okJSON(&plain, "subscriptions", "create", "--url", "https://crm.example.com/other")
	if plain.MaxInFlight == nil || *plain.MaxInFlight != 0 {
		t.Errorf("create without --max-in-flight answered max_in_flight %v, want 0", plain.MaxInFlight)
	}
}

// TestSubscriptionsUpdate_MaxInFlightPatch: the merge patch holds
// max_in_flight only when the flag is given, and 0 is sent as null, which
// returns the field to its default (no limit of its own) as for the other
// fields.
func TestSubscriptionsUpdate_MaxInFlightPatch(t *testing.T) {
	const id = "0193b1a2-5c3d-7e4f-8a9b-0c1d2e3f4a5b"
	var got []map[string]json.RawMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var patch map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
			t.Errorf("%s %s: body is not a JSON object: %v", r.Method, r.URL.Path, err)
		}
		if ct := r.Header.Get("Content-Type"); r.Method != http.MethodPatch || ct != "application/merge-patch+json" {
			t.Errorf("got %s with %s, want a PATCH with a merge patch", r.Method, ct)
		}
		got = append(got, patch)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"account_id":"acme","url":"https://crm.example.com/hooks","event_types":[],"enabled":true,"max_in_flight":0}`, id)
	}))
	t.Cleanup(srv.Close)
	t.Chdir(t.TempDir())
	env := map[string]string{envAPIURL: srv.URL, envAPIKey: "uhk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	for _, tc := range []struct {
		flags []string
		want  string // the max_in_flight member; "" when absent
	}{
		{[]string{"--max-in-flight", "5"}, "5"},
		{[]string{"--max-in-flight", "0"}, "null"},
		{[]string{"--max-in-flight=0", "--description", "x"}, "null"},
		{[]string{"--description", "x"}, ""},
	} {
		got = nil
		if r := runCLI(t, env, "", append([]string{"subscriptions", "update", "--id", id}, tc.flags...)...); r.code != 0 {
			t.Fatalf("update %s: %s", strings.Join(tc.flags, " "), r)
		}
		if len(got) != 1 {
			t.Fatalf("update %s sent %d requests, want 1", strings.Join(tc.flags, " "), len(got))
		}
		if v, ok := got[0]["max_in_flight"]; string(v) != tc.want || ok != (tc.want != "") {
			t.Errorf("update %s sent max_in_flight %q (present %t), want %q", strings.Join(tc.flags, " "), v, ok, tc.want)
		}
	}
}

// TestSubscriptionsEnable_SaysWhetherTheFailureClockWasReset: resuming a
// disabled subscription resets its failure clock, and the CLI says so; one
// that was enabled already and is failing keeps its clock, and the CLI says
// that instead.
func TestSubscriptionsEnable_SaysWhetherTheFailureClockWasReset(t *testing.T) {
	h := newHarness(t)
	id := createSub(t, h, "acme", "https://crm.example.com/hooks")
	failing := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	if err := h.subs.RecordAttempt(t.Context(), id, false, failing); err != nil {
		t.Fatal(err)
	}

	out := h.ok("subscriptions", "enable", "--id", id)
	if want := "Subscription " + id + " enabled; its failure clock runs on: the endpoint has been failing since 2026-11-23T09:00:00Z (a subscription that was enabled already keeps its clock)\n"; out != want {
		t.Errorf("enable of an enabled, failing subscription printed\n%q, want\n%q", out, want)
	}
	if got := h.stored(id).Health.FailingSince; !got.Equal(failing) {
		t.Errorf("failing since %s after enabling an enabled subscription, want %s kept", got, failing)
	}

	h.ok("subscriptions", "disable", "--id", id)
	out = h.ok("subscriptions", "enable", "--id", id)
	if want := "Subscription " + id + " enabled; its failure clock was reset: automatic disabling counts from the endpoint's next failed attempt\n"; out != want {
		t.Errorf("enable of a disabled subscription printed\n%q, want\n%q", out, want)
	}
	if got := h.stored(id).Health.FailingSince; !got.IsZero() {
		t.Errorf("failing since %s after resuming, want the clock reset", got)
	}
}

// TestJSON_RefusalsPrintTheProblemDocumentOnStdout: with --json, the API's
// problem document goes to stdout as it came (for scripts), the message to
// stderr as without --json, and the exit status is unchanged; without
// --json, stdout stays empty.
func TestJSON_RefusalsPrintTheProblemDocumentOnStdout(t *testing.T) {
	h := newHarness(t)
	globexSub := createSub(t, h, "globex", "https://globex.example/hooks")
	own := createSub(t, h, "acme", "https://crm.example.com/hooks")
	before := h.stored(own)
	tests := []struct {
		name       string
		args       []string
		code       int
		status     int
		wantErrors []string
	}{
		{"get of another account's subscription", []string{"subscriptions", "get", "--id", globexSub}, 1, 404, nil},
		{"update refused by the API", []string{"subscriptions", "update", "--id", own, "--schedule", `{"jitter":0.9}`},
			2, 422, []string{"schedule: retry schedule jitter is 0.9"}},
		{"list of subscriptions", []string{"subscriptions", "list", "--limit", "1"}, 0, 0, nil}, // not a failure: a control
		{"show of an unknown delivery", []string{"deliveries", "show", "--event", "evt_none", "--subscription", unknownID}, 1, 404, nil},
		{"publish of another account's event", []string{"publish", "--id", "evt_1", "--account", "globex", "--type", "user.created", "--user-id", "u_1"}, 2, 422, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain := h.run(tc.args...)
			withJSON := h.run(append(tc.args, "--json")...)
			if plain.code != tc.code || withJSON.code != tc.code {
				t.Fatalf("exit %d without --json and %d with it, want %d both\n%s\n%s", plain.code, withJSON.code, tc.code, plain, withJSON)
			}
			if tc.code == 0 {
				return
			}
			if plain.stdout != "" {
				t.Errorf("without --json, stdout: want nothing\n%s", plain)
			}
			if withJSON.stderr != plain.stderr || !strings.Contains(withJSON.stderr, fmt.Sprintf(": %d ", tc.status)) {
				t.Errorf("stderr with --json %q, without %q: want the same message, naming %d", withJSON.stderr, plain.stderr, tc.status)
			}
			var p struct {
				Type   string `json:"type"`
				Title  string `json:"title"`
				Status int    `json:"status"`
				Detail string `json:"detail"`
				Errors []struct {
					Detail string `json:"detail"`
				} `json:"errors"`
			}
			dec := json.NewDecoder(strings.NewReader(withJSON.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("with --json, stdout is not a problem document: %v\n%s", err, withJSON)
			}
			if p.Type != "about:blank" || p.Status != tc.status || p.Title != http.StatusText(tc.status) || p.Detail == "" ||
				!strings.Contains(withJSON.stderr, p.Detail) {
				t.Errorf("problem document %+v: want status %d, its title, and the detail that stderr shows\n%s", p, tc.status, withJSON)
			}
			for i, want := range tc.wantErrors {
				if i >= len(p.Errors) || !strings.Contains(p.Errors[i].Detail, want) {
					t.Errorf("problem errors %+v: want [%d] to say %q", p.Errors, i, want)
				}
			}
		})
	}
	if after := h.stored(own); !after.UpdatedAt.Equal(before.UpdatedAt) || after.Schedule != nil {
		t.Errorf("the refused update changed the subscription: %+v", after)
	}
}

// TestJSON_AnswerThatIsNotAProblemPrintsNothingOnStdout: a refusal that is
// not the API's (a proxy's HTML page) has no problem document to print.
func TestJSON_AnswerThatIsNotAProblemPrintsNothingOnStdout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, `<html>{"status": 502}</html>`)
	}))
	t.Cleanup(srv.Close)
	t.Chdir(t.TempDir())
	r := runCLI(t, map[string]string{envAPIURL: srv.URL, envAPIKey: "uhk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "", "subscriptions", "list", "--json")
	wantFailure(t, r, 1, "502 Bad Gateway")
}
