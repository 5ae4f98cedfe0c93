package usersync_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/receiver/usersync"
	"github.com/userhooks/userhooks/signature"
)

// now is the receiver's clock; events carry their own timestamps.
var now = time.Unix(1_800_000_000, 0)

func fixedNow() time.Time { return now }

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// harness is a Mirror on a real SQLite file behind a real HTTP server.
type harness struct {
	m       *usersync.Mirror
	path    string
	url     string
	secret  signature.Secret
	mu      sync.Mutex
	results []usersync.Result
}

func newHarness(t *testing.T, mode usersync.DeleteMode) *harness {
	t.Helper()
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{path: filepath.Join(t.TempDir(), "users.db"), secret: secret}
	h.m, err = usersync.Open(h.path, usersync.Options{
		Secrets:  []signature.Secret{secret},
		OnDelete: mode,
		Now:      fixedNow,
		OnResult: func(r usersync.Result) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.results = append(h.results, r)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.m.Close() })
	srv := httptest.NewServer(h.m)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// send delivers e signed with the harness's secret and returns the status.
func (h *harness) send(t *testing.T, e event.Event) int {
	t.Helper()
	body, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{}
	signature.SetHeaders(hdr, e.ID, now, body, h.secret)
	return h.post(t, hdr, body)
}

func (h *harness) post(t *testing.T, hdr http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// mustApply delivers e and fails unless the mirror answered 2xx.
func (h *harness) mustApply(t *testing.T, events ...event.Event) {
	t.Helper()
	for _, e := range events {
		if status := h.send(t, e); status/100 != 2 {
			t.Fatalf("deliver %s %s: status %d, want 2xx", e.Type, e.ID, status)
		}
	}
}

// actions returns the action of every request so far.
func (h *harness) actions() []usersync.Action {
	h.mu.Lock()
	defer h.mu.Unlock()
	var a []usersync.Action
	for _, r := range h.results {
		a = append(a, r.Action)
	}
	return a
}

// result returns the Result of the i-th request.
func (h *harness) result(t *testing.T, i int) usersync.Result {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= len(h.results) {
		t.Fatalf("only %d results, want result %d", len(h.results), i)
	}
	return h.results[i]
}

func (h *harness) user(t *testing.T, id string) usersync.User {
	t.Helper()
	u, err := h.m.User(context.Background(), "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (h *harness) users(t *testing.T) []usersync.User {
	t.Helper()
	us, err := h.m.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return us
}

// countRows counts the rows of a table through a second connection to the
// database file, as another process would see them.
func countRows(t *testing.T, path, table string) int {
	t.Helper()
	db := openFile(t, path)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func openFile(t *testing.T, path string) *sql.DB {
	t.Helper()
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: url.Values{"_pragma": {"busy_timeout(5000)"}}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Event builders. at is seconds after t0.

func created(id string, at int, u event.User) event.Event {
	return event.Event{ID: id, Type: event.TypeUserCreated, Timestamp: t0.Add(time.Duration(at) * time.Second), AccountID: "acme", Data: event.Data{User: u}}
}

func updated(id string, at int, u event.User, prev map[string]string) event.Event {
	e := event.Event{ID: id, Type: event.TypeUserUpdated, Timestamp: t0.Add(time.Duration(at) * time.Second), AccountID: "acme", Data: event.Data{User: u}}
	e.Data.PreviousAttributes = map[string]json.RawMessage{}
	for k, v := range prev {
		e.Data.PreviousAttributes[k] = json.RawMessage(v)
	}
	return e
}

func deleted(id string, at int, userID string) event.Event {
	return event.Event{ID: id, Type: event.TypeUserDeleted, Timestamp: t0.Add(time.Duration(at) * time.Second), AccountID: "acme", Data: event.Data{User: event.User{ID: userID}}}
}

func attrs(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

// ada is the user of most tests, in her successive states.
var (
	ada0 = event.User{ID: "u_42", Email: "ada@example.com", Name: "Ada", Roles: []string{"member"}, Tags: []string{"beta"}, Attributes: attrs("plan", `"free"`, "seats", `1`)}
	ada1 = event.User{ID: "u_42", Email: "ada@lovelace.example", Name: "Ada", Roles: []string{"member"}, Tags: []string{"beta"}, Attributes: attrs("plan", `"pro"`, "seats", `1`)}
	ada2 = event.User{ID: "u_42", Email: "ada@lovelace.example", Name: "Ada Lovelace", Roles: []string{"admin", "member"}, Tags: []string{"beta"}, Attributes: attrs("plan", `"pro"`, "seats", `1`)}
)

func TestMirror_CreateUpdateDelete(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	h.mustApply(t, created("e1", 1, ada0))
	u := h.user(t, "u_42")
	if u.Email != "ada@example.com" || u.Name != "Ada" || !reflect.DeepEqual(u.Roles, []string{"member"}) ||
		!reflect.DeepEqual(u.Tags, []string{"beta"}) || string(u.Attributes["plan"]) != `"free"` || u.Deleted {
		t.Fatalf("after create: %+v", u)
	}

	// The update names email and attributes.plan. Its user also carries a
	// name the mirror has not been told changed: that is left alone.
	snapshot := ada1
	snapshot.Name = "Not Listed"
	h.mustApply(t, updated("e2", 2, snapshot, map[string]string{"email": `"ada@example.com"`, "attributes.plan": `"free"`}))
	u = h.user(t, "u_42")
	if u.Email != "ada@lovelace.example" || string(u.Attributes["plan"]) != `"pro"` || string(u.Attributes["seats"]) != `1` {
		t.Errorf("listed fields not updated: %+v", u)
	}
	if u.Name != "Ada" {
		t.Errorf("name = %q; an update must change only the fields it lists", u.Name)
	}
	if u.LastEventID != "e2" || !u.LastEventAt.Equal(t0.Add(2*time.Second)) {
		t.Errorf("last event = %s at %s, want e2 at %s", u.LastEventID, u.LastEventAt, t0.Add(2*time.Second))
	}

	h.mustApply(t, updated("e3", 3, ada2, map[string]string{"name": `"Ada"`, "roles": `["member"]`}))
	h.mustApply(t, deleted("e4", 4, "u_42"))
	u = h.user(t, "u_42")
	if !u.Deleted || u.Email != "ada@lovelace.example" || u.Name != "Ada Lovelace" || !reflect.DeepEqual(u.Roles, []string{"admin", "member"}) {
		t.Errorf("after delete (deactivate): %+v, want the profile kept and Deleted", u)
	}
	want := []usersync.Action{usersync.ActionCreated, usersync.ActionUpdated, usersync.ActionUpdated, usersync.ActionDeleted}
	if got := h.actions(); !reflect.DeepEqual(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
}

func TestMirror_EraseOnDeleteKeepsOnlyATombstone(t *testing.T) {
	h := newHarness(t, usersync.EraseOnDelete)
	h.mustApply(t, created("e1", 1, ada0), deleted("e2", 2, "u_42"))
	got := h.user(t, "u_42")
	want := usersync.User{AccountID: "acme", ID: "u_42", Deleted: true, LastEventAt: t0.Add(2 * time.Second), LastEventID: "e2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after erase: %+v, want %+v", got, want)
	}
	raw := countWhere(t, h.path, `SELECT count(*) FROM users WHERE email <> '' OR name <> '' OR attributes <> '{}' OR field_versions <> '{}'`)
	if raw != 0 {
		t.Errorf("%d rows still hold personal data after erase", raw)
	}
}

func countWhere(t *testing.T, path, query string) int {
	t.Helper()
	var n int
	if err := openFile(t, path).QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMirror_CreateOfExistingUserUpdatesIt(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	h.mustApply(t, created("e1", 1, ada0), created("e2", 2, ada2))
	us := h.users(t)
	if len(us) != 1 || us[0].Email != ada2.Email || us[0].Name != ada2.Name {
		t.Errorf("users = %+v, want one user with the second create's values", us)
	}
}

func TestMirror_DuplicateDeliveryAppliesOnce(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	e := created("e1", 1, ada0)
	if status := h.send(t, e); status != http.StatusNoContent {
		t.Fatalf("first delivery: %d, want 204", status)
	}
	if status := h.send(t, e); status != http.StatusOK {
		t.Errorf("second delivery: %d, want 200", status)
	}
	want := []usersync.Action{usersync.ActionCreated, usersync.ActionDuplicate}
	if got := h.actions(); !reflect.DeepEqual(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	if n := countRows(t, h.path, "users"); n != 1 {
		t.Errorf("%d user rows, want 1", n)
	}
}

func TestMirror_ConcurrentDeliveriesOfOneEventApplyOnce(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	e := created("e1", 1, ada0)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 10 {
		wg.Go(func() {
			<-start
			if status := h.send(t, e); status != 204 && status != 200 && status != 503 {
				t.Errorf("status %d, want 204, 200 or 503", status)
			}
		})
	}
	close(start)
	wg.Wait()
	applied := 0
	for _, a := range h.actions() {
		if a == usersync.ActionCreated || a == usersync.ActionUpdated {
			applied++
		}
	}
	if applied != 1 {
		t.Errorf("applied %d times (actions %v), want once", applied, h.actions())
	}
}

func TestMirror_UpdateBeforeCreateCreatesTheUser(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	h.mustApply(t, updated("e2", 2, ada1, map[string]string{"email": `"ada@example.com"`}))
	u := h.user(t, "u_42")
	if u.Email != ada1.Email || u.Name != "Ada" || string(u.Attributes["plan"]) != `"pro"` {
		t.Errorf("after the early update: %+v, want the update's whole user", u)
	}
	// The create, older, arrives last and changes nothing.
	if status := h.send(t, created("e1", 1, ada0)); status != http.StatusNoContent {
		t.Fatalf("late create: %d, want 204", status)
	}
	if got := h.user(t, "u_42"); !reflect.DeepEqual(got, u) {
		t.Errorf("late create changed the user:\n got %+v\nwant %+v", got, u)
	}
	want := []usersync.Action{usersync.ActionCreated, usersync.ActionIgnoredStale}
	if got := h.actions(); !reflect.DeepEqual(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
}

func TestMirror_OlderUpdateOfTheSameFieldIsIgnored(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	h.mustApply(t, created("e1", 1, ada0))
	newer := ada0
	newer.Email = "newest@example.com"
	h.mustApply(t, updated("e3", 3, newer, map[string]string{"email": `"x"`}))
	older := ada0
	older.Email = "older@example.com"
	if status := h.send(t, updated("e2", 2, older, map[string]string{"email": `"x"`})); status != http.StatusNoContent {
		t.Fatalf("stale update: %d, want 204", status)
	}
	if u := h.user(t, "u_42"); u.Email != "newest@example.com" || u.LastEventID != "e3" {
		t.Errorf("email = %q, last event %s; the older update must not win", u.Email, u.LastEventID)
	}
	if a := h.actions(); a[len(a)-1] != usersync.ActionIgnoredStale {
		t.Errorf("last action = %s, want ignored_stale", a[len(a)-1])
	}
}

// Same timestamp: the event ID breaks the tie, the same way everywhere.
func TestMirror_TimestampTieIsBrokenByEventID(t *testing.T) {
	a, b := ada0, ada0
	a.Name, b.Name = "From A", "From B"
	ea := updated("evt_a", 2, a, map[string]string{"name": `"Ada"`})
	eb := updated("evt_b", 2, b, map[string]string{"name": `"Ada"`})
	for _, order := range [][]event.Event{{ea, eb}, {eb, ea}} {
		h := newHarness(t, usersync.DeactivateOnDelete)
		h.mustApply(t, created("e1", 1, ada0))
		h.mustApply(t, order...)
		if u := h.user(t, "u_42"); u.Name != "From B" {
			t.Errorf("order %s, %s: name = %q, want the higher ID's", order[0].ID, order[1].ID, u.Name)
		}
	}
}

func TestMirror_DeleteThenLateUpdateStaysDeleted(t *testing.T) {
	late := updated("e2", 2, ada1, map[string]string{"email": `"ada@example.com"`})
	lateCreate := created("e0", 0, ada0)
	t.Run("deactivate", func(t *testing.T) {
		h := newHarness(t, usersync.DeactivateOnDelete)
		h.mustApply(t, deleted("e3", 3, "u_42"), late, lateCreate)
		u := h.user(t, "u_42")
		if !u.Deleted {
			t.Fatalf("user came back: %+v", u)
		}
		// The inactive account still records the newest values.
		if u.Email != ada1.Email || u.LastEventID != "e3" {
			t.Errorf("deactivated user = %+v, want the late update's values recorded", u)
		}
	})
	t.Run("erase", func(t *testing.T) {
		h := newHarness(t, usersync.EraseOnDelete)
		h.mustApply(t, created("e1", 1, ada0), deleted("e3", 3, "u_42"), late, lateCreate)
		u := h.user(t, "u_42")
		if !u.Deleted || u.Email != "" || u.Name != "" || u.Attributes != nil {
			t.Errorf("erased user = %+v, want an empty tombstone", u)
		}
		want := []usersync.Action{usersync.ActionCreated, usersync.ActionDeleted, usersync.ActionIgnoredDeleted, usersync.ActionIgnoredDeleted}
		if got := h.actions(); !reflect.DeepEqual(got, want) {
			t.Errorf("actions = %v, want %v", got, want)
		}
	})
}

// permutations returns every ordering of xs.
func permutations[T any](xs []T) [][]T {
	if len(xs) <= 1 {
		return [][]T{append([]T(nil), xs...)}
	}
	var out [][]T
	for i := range xs {
		rest := append(append([]T(nil), xs[:i]...), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]T{xs[i]}, p...))
		}
	}
	return out
}

// forUser rewrites a history for another user, so that every permutation
// can play out on its own user in one database.
func forUser(events []event.Event, userID string) []event.Event {
	out := make([]event.Event, len(events))
	for i, e := range events {
		e.ID = e.ID + "-" + userID
		e.Data.User.ID = userID
		out[i] = e
	}
	return out
}

func TestMirror_EveryArrivalOrderConverges(t *testing.T) {
	ada3 := ada2
	ada3.Tags = nil
	ada3.Attributes = attrs("plan", `"pro"`, "seats", `5`)
	history := []event.Event{
		created("c", 1, ada0),
		updated("u1", 2, ada1, map[string]string{"email": `"ada@example.com"`, "attributes.plan": `"free"`}),
		updated("u2", 3, ada2, map[string]string{"name": `"Ada"`, "roles": `["member"]`}),
		updated("u3", 4, ada3, map[string]string{"tags": `["beta"]`, "attributes.seats": `1`}),
	}
	// Four events each, so 24 orders per case: every request commits to
	// disk, and the merge tests cover long random histories in memory.
	withDelete := []event.Event{history[0], history[1], history[2], deleted("d", 5, "u_42")}

	tests := []struct {
		name    string
		mode    usersync.DeleteMode
		history []event.Event
		want    usersync.User // for the user "x"; AccountID and ID are set below
	}{
		{"updates", usersync.DeactivateOnDelete, history, usersync.User{
			Email: ada3.Email, Name: ada3.Name, Roles: ada3.Roles, Attributes: ada3.Attributes,
			LastEventAt: t0.Add(4 * time.Second), LastEventID: "u3-x",
		}},
		{"updates and a delete, deactivate", usersync.DeactivateOnDelete, withDelete, usersync.User{
			Email: ada2.Email, Name: ada2.Name, Roles: ada2.Roles, Tags: ada2.Tags, Attributes: ada2.Attributes, Deleted: true,
			LastEventAt: t0.Add(5 * time.Second), LastEventID: "d-x",
		}},
		{"updates and a delete, erase", usersync.EraseOnDelete, withDelete, usersync.User{
			Deleted: true, LastEventAt: t0.Add(5 * time.Second), LastEventID: "d-x",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mode)
			perms := permutations(tt.history)
			for i, p := range perms {
				h.mustApply(t, forUser(p, fmt.Sprintf("p%03d", i))...)
			}
			for i := range perms {
				id := fmt.Sprintf("p%03d", i)
				got := h.user(t, id)
				want := tt.want
				want.AccountID, want.ID = "acme", id
				want.LastEventID = strings.Replace(want.LastEventID, "-x", "-"+id, 1)
				if !reflect.DeepEqual(got, want) {
					order := []string{}
					for _, e := range perms[i] {
						order = append(order, e.ID)
					}
					t.Fatalf("order %v:\n got %+v\nwant %+v", order, got, want)
				}
			}
			if n := len(h.users(t)); n != len(perms) {
				t.Errorf("%d users, want %d", n, len(perms))
			}
		})
	}
}

func TestMirror_AnswersServerErrorWhenTheDatabaseIsClosed(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	h.m.Close()
	if status := h.send(t, created("e1", 1, ada0)); status/100 != 5 {
		t.Fatalf("status %d, want 5xx so that the sender retries", status)
	}
	if got := h.result(t, 0); got.Action != usersync.ActionFailed || got.Err == nil {
		t.Errorf("result = %+v, want failed with an error", got)
	}
	if n := countRows(t, h.path, "users"); n != 0 {
		t.Errorf("%d users written", n)
	}
}

// A write that fails leaves nothing behind, not even the de-duplication
// mark, so that the sender's retry applies the event.
func TestMirror_FailedWriteIsAppliedOnRetry(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	other := openFile(t, h.path)
	if _, err := other.Exec(`ALTER TABLE users RENAME TO users_away`); err != nil {
		t.Fatal(err)
	}
	e := created("e1", 1, ada0)
	if status := h.send(t, e); status != http.StatusInternalServerError {
		t.Fatalf("with the table gone: %d, want 500", status)
	}
	if r := h.result(t, 0); r.Action != usersync.ActionFailed || !errors.Is(r.Err, receiver.ErrHandlerFailed) {
		t.Errorf("result = %+v, want failed", r)
	}
	if n := countRows(t, h.path, receiver.DedupTable); n != 0 {
		t.Errorf("%d dedup rows left after the failure, want none", n)
	}
	if _, err := other.Exec(`ALTER TABLE users_away RENAME TO users`); err != nil {
		t.Fatal(err)
	}
	if status := h.send(t, e); status != http.StatusNoContent {
		t.Fatalf("retry: %d, want 204", status)
	}
	if u := h.user(t, "u_42"); u.Email != ada0.Email {
		t.Errorf("after the retry: %+v", u)
	}
}

func TestMirror_BadSignatureWritesNothing(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	body, err := created("e1", 1, ada0).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{}
	signature.SetHeaders(hdr, "e1", now, body, wrong)
	if status := h.post(t, hdr, body); status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", status)
	}
	if r := h.result(t, 0); r.Action != usersync.ActionRejected || r.Reason != receiver.ReasonBadSignature {
		t.Errorf("result = %+v, want rejected bad_signature", r)
	}
	for _, table := range []string{"users", receiver.DedupTable} {
		if n := countRows(t, h.path, table); n != 0 {
			t.Errorf("%d rows in %s after a refused request", n, table)
		}
	}
}

func TestOpen_CreatesTheFileForItsOwnerOnly(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	fi, err := os.Stat(h.path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %o, want 600: the file holds personal data", perm)
	}
}

func TestOpen_RefusesBadArguments(t *testing.T) {
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	ok := usersync.Options{Secrets: []signature.Secret{secret}}
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		path string
		opts usersync.Options
	}{
		"in-memory":    {":memory:", ok},
		"URI":          {"file:x.db", ok},
		"empty path":   {"", ok},
		"no secret":    {filepath.Join(dir, "a.db"), usersync.Options{}},
		"unknown mode": {filepath.Join(dir, "b.db"), usersync.Options{Secrets: ok.Secrets, OnDelete: 7}},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := usersync.Open(tc.path, tc.opts)
			if err == nil {
				m.Close()
				t.Fatal("Open = nil error")
			}
		})
	}
}

func TestOpen_ReopensAnExistingMirror(t *testing.T) {
	h := newHarness(t, usersync.DeactivateOnDelete)
	h.mustApply(t, created("e1", 1, ada0))
	h.m.Close()
	m, err := usersync.Open(h.path, usersync.Options{Secrets: []signature.Secret{h.secret}, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	us, err := m.Users(context.Background())
	if err != nil || len(us) != 1 || us[0].Email != ada0.Email {
		t.Fatalf("Users = %+v, %v", us, err)
	}
	if _, err := m.User(context.Background(), "acme", "nobody"); !errors.Is(err, usersync.ErrNotFound) {
		t.Errorf("User(nobody) = %v, want ErrNotFound", err)
	}
}
