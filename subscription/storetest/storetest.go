// Package storetest is the contract test suite of subscription.Store. Every
// implementation runs it from its own tests, so that the SQLite and the
// PostgreSQL stores behave the same way:
//
//	func TestSQLiteStore_Contract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) subscription.Store { ... })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// Run runs the contract tests, each as a subtest with its own store. open
// must return a new, empty store on every call (or fail t); Run closes it when
// the subtest ends.
func Run(t *testing.T, open func(t *testing.T) subscription.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st subscription.Store)
	}{
		{"CreateThenGetRoundTrips", testCreateThenGetRoundTrips},
		{"CreateAssignsIDAndTimestamps", testCreateAssignsIDAndTimestamps},
		{"CreateKeepsGivenIDAndTimestamps", testCreateKeepsGivenIDAndTimestamps},
		{"CreateRefusesTakenID", testCreateRefusesTakenID},
		{"InvalidSubscriptionsChangeNothing", testInvalidSubscriptionsChangeNothing},
		{"MissingSubscriptionsAreNotFound", testMissingSubscriptionsAreNotFound},
		{"ListPagesByID", testListPagesByID},
		{"ListAndMatchRejectBadArguments", testListAndMatchRejectBadArguments},
		{"MatchFiltersByAccountEventTypeAndEnabled", testMatchFilters},
		{"MatchPagesExactlyOverThousandsOfRows", testMatchPagesExactly},
		{"UpdateReplacesMutableFields", testUpdateReplacesMutableFields},
		{"UpdateNeverMovesAccounts", testUpdateNeverMovesAccounts},
		{"SetEnabledPausesAndResumes", testSetEnabled},
		{"CountDisabledCountsEveryAccount", testCountDisabled},
		{"DeleteRemoves", testDeleteRemoves},
		{"ConcurrentCreatesAllLand", testConcurrentCreates},
		{"CanceledContextChangesNothing", testCanceledContext},
		{"ErrorsNeverContainSecrets", testErrorsNeverContainSecrets},
		{"HealthIsReadOnlyForCreateAndUpdate", testHealthIsReadOnly},
		{"RecordAttemptKeepsTheFailureClock", testRecordAttemptKeepsTheFailureClock},
		{"RecordAttemptWritesSuccessesAtMostOnceAMinute", testRecordAttemptThrottlesSuccesses},
		{"RecordAttemptOrdersOutcomesByTime", testRecordAttemptOrdersOutcomesByTime},
		{"RecordAttemptRejectsBadArguments", testRecordAttemptRejectsBadArguments},
		{"DisableRecordsWhyAndReportsTheChange", testDisable},
		{"DisableIfFailingNeedsALongEnoughFailure", testDisableIfFailing},
		{"DisableRejectsBadArgumentsAndChangesNothing", testDisableRejectsBadArguments},
		{"EnablingResetsTheFailureClock", testEnablingResetsTheFailureClock},
		{"UpdateOfEnabledKeepsHealthInStep", testUpdateOfEnabledKeepsHealthInStep},
		{"MaxInFlightIsStoredListedAndMatched", testMaxInFlight},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, st)
		})
	}
}

func testCreateThenGetRoundTrips(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	newKey, oldKey := newKey(t), newKey(t)
	// Nanoseconds and a zone other than UTC: the store keeps UTC microseconds.
	expires := time.Date(2031, 1, 2, 3, 4, 5, 123456789, time.FixedZone("UTC+1", 3600))
	schedule := &delivery.Schedule{
		Delays:        []delivery.Duration{delivery.Duration(10 * time.Second), delivery.Duration(90 * time.Minute)},
		Jitter:        0.125,
		MaxRetryAfter: delivery.Duration(time.Hour),
	}
	s := &subscription.Subscription{
		AccountID:   "acct_roundtrip",
		URL:         "https://receiver.example/hooks?tenant=1",
		EventTypes:  []string{"user.updated", "user.created", "user.updated"},
		Description: "CRM sync — ünïcode",
		Enabled:     true,
		Secrets:     []subscription.Secret{{Key: newKey}, {Key: oldKey, ExpiresAt: expires}},
		Schedule:    schedule,
		MaxInFlight: 7,
	}
	callerTypes := s.EventTypes
	if err := st.Create(ctx, s); err != nil {
		t.Fatalf("Create: %v", err)
	}

	if want := []string{"user.created", "user.updated"}; !slices.Equal(s.EventTypes, want) {
		t.Errorf("after Create, EventTypes = %q, want sorted without duplicates %q", s.EventTypes, want)
	}
	if want := []string{"user.updated", "user.created", "user.updated"}; !slices.Equal(callerTypes, want) {
		t.Errorf("Create modified the caller's EventTypes slice: %q", callerTypes)
	}
	if want := expires.UTC().Truncate(time.Microsecond); s.Secrets[1].ExpiresAt != want {
		t.Errorf("after Create, Secrets[1].ExpiresAt = %v, want %v (UTC, microseconds)", s.Secrets[1].ExpiresAt, want)
	}

	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, *s)
	if got.Schedule == schedule {
		t.Error("Get returned the caller's Schedule pointer, want a value read from the store")
	}

	// Empty event types come back as nil: all types.
	all := newSubscription(t, "acct_roundtrip")
	all.EventTypes = []string{}
	all.Schedule = nil
	mustCreate(t, st, all)
	got, err = st.Get(ctx, all.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.EventTypes != nil || got.Schedule != nil {
		t.Errorf("Get of a subscription of all types with no schedule: EventTypes = %#v, Schedule = %v; want nil, nil", got.EventTypes, got.Schedule)
	}
	assertSame(t, got, *all)
}

func testCreateAssignsIDAndTimestamps(t *testing.T, st subscription.Store) {
	before := time.Now()
	first := newSubscription(t, "acct_ids")
	mustCreate(t, st, first)
	second := newSubscription(t, "acct_ids")
	mustCreate(t, st, second)
	after := time.Now()

	for _, s := range []*subscription.Subscription{first, second} {
		u, err := uuid.Parse(s.ID)
		if err != nil || u.Version() != 7 || u.String() != s.ID {
			t.Errorf("assigned ID %q, want a canonical UUIDv7", s.ID)
		}
		if s.CreatedAt.Before(before.Add(-time.Millisecond)) || s.CreatedAt.After(after) {
			t.Errorf("CreatedAt = %v, want between %v and %v", s.CreatedAt, before, after)
		}
		if s.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt is in %v, want UTC", s.CreatedAt.Location())
		}
		if !s.UpdatedAt.Equal(s.CreatedAt) {
			t.Errorf("UpdatedAt = %v, want CreatedAt %v", s.UpdatedAt, s.CreatedAt)
		}
	}
	if first.ID >= second.ID {
		t.Errorf("IDs %s then %s: want IDs that sort in creation order", first.ID, second.ID)
	}
}

func testCreateKeepsGivenIDAndTimestamps(t *testing.T, st subscription.Store) {
	s := newSubscription(t, "acct_given")
	s.ID = uuid.NewString()
	s.CreatedAt = time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	mustCreate(t, st, s)
	got, err := st.Get(t.Context(), s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !got.CreatedAt.Equal(s.CreatedAt) || !got.UpdatedAt.Equal(s.CreatedAt) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want both the given %v", got.CreatedAt, got.UpdatedAt, s.CreatedAt)
	}
	assertSame(t, got, *s)
}

func testCreateRefusesTakenID(t *testing.T, st subscription.Store) {
	first := newSubscription(t, "acct_taken")
	mustCreate(t, st, first)
	second := newSubscription(t, "acct_taken")
	second.ID = first.ID
	second.URL = "https://other.example/"
	before := clone(*second)
	err := st.Create(t.Context(), second)
	if !errors.Is(err, subscription.ErrAlreadyExists) {
		t.Fatalf("Create with a taken ID: err = %v, want ErrAlreadyExists", err)
	}
	assertSame(t, *second, before)
	got, err := st.Get(t.Context(), first.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, *first)
}

// invalidCases break one rule each; field is what the error must name.
var invalidCases = []struct {
	name   string
	field  string
	mutate func(s *subscription.Subscription)
}{
	{"no account", "account_id", func(s *subscription.Subscription) { s.AccountID = "" }},
	{"long account", "account_id", func(s *subscription.Subscription) { s.AccountID = strings.Repeat("a", 129) }},
	{"non-canonical id", "id", func(s *subscription.Subscription) { s.ID = strings.ToUpper(uuid.NewString()) }},
	{"no url", "url", func(s *subscription.Subscription) { s.URL = "" }},
	{"relative url", "url", func(s *subscription.Subscription) { s.URL = "/hooks" }},
	{"ftp url", "url", func(s *subscription.Subscription) { s.URL = "ftp://receiver.example/hooks" }},
	{"url without host", "url", func(s *subscription.Subscription) { s.URL = "https:///hooks" }},
	{"long url", "url", func(s *subscription.Subscription) { s.URL = "https://receiver.example/" + strings.Repeat("a", 2048) }},
	{"empty event type", "event_types[0]", func(s *subscription.Subscription) { s.EventTypes = []string{""} }},
	{"unknown event type", "event_types[1]", func(s *subscription.Subscription) { s.EventTypes = []string{"user.created", "user.exploded"} }},
	{"long description", "description", func(s *subscription.Subscription) { s.Description = strings.Repeat("é", 1025) }},
	{"no secrets", "secrets", func(s *subscription.Subscription) { s.Secrets = nil }},
	{"empty secret", "secrets[1]", func(s *subscription.Subscription) { s.Secrets = append(s.Secrets, subscription.Secret{}) }},
	{"invalid schedule", "schedule", func(s *subscription.Subscription) { s.Schedule = &delivery.Schedule{Jitter: 0.9} }},
	{"negative max_in_flight", "max_in_flight", func(s *subscription.Subscription) { s.MaxInFlight = -1 }},
	{"max_in_flight over the limit", "max_in_flight", func(s *subscription.Subscription) { s.MaxInFlight = subscription.MaxInFlightLimit + 1 }},
}

func testInvalidSubscriptionsChangeNothing(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	const account = "acct_invalid"
	for _, tc := range invalidCases {
		t.Run("Create/"+tc.name, func(t *testing.T) {
			s := newSubscription(t, account)
			tc.mutate(s)
			before := clone(*s)
			err := st.Create(ctx, s)
			assertValidationError(t, err, tc.field)
			assertSame(t, *s, before)
		})
	}
	if subs := listAll(t, st, account); len(subs) != 0 {
		t.Errorf("after invalid creates, List found %d subscriptions, want none", len(subs))
	}

	stored := newSubscription(t, account)
	mustCreate(t, st, stored)
	for _, tc := range invalidCases {
		t.Run("Update/"+tc.name, func(t *testing.T) {
			s := clone(*stored)
			tc.mutate(&s)
			before := clone(s)
			err := st.Update(ctx, &s)
			assertValidationError(t, err, tc.field)
			assertSame(t, s, before)
			got, err := st.Get(ctx, stored.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			assertSame(t, got, *stored)
		})
	}
	t.Run("Update/no id", func(t *testing.T) {
		s := clone(*stored)
		s.ID = ""
		assertValidationError(t, st.Update(ctx, &s), "id")
	})
}

func testMissingSubscriptionsAreNotFound(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	id := uuid.NewString()
	s := newSubscription(t, "acct_missing")
	s.ID = id
	_, getErr := st.Get(ctx, id)
	for op, err := range map[string]error{
		"Get":        getErr,
		"Update":     st.Update(ctx, s),
		"SetEnabled": st.SetEnabled(ctx, id, false),
		"Delete":     st.Delete(ctx, id),
	} {
		if !errors.Is(err, subscription.ErrNotFound) {
			t.Errorf("%s of a missing subscription: err = %v, want ErrNotFound", op, err)
		} else if !strings.Contains(err.Error(), id) {
			t.Errorf("%s of a missing subscription: error %q does not name the ID %s", op, err, id)
		}
	}
}

func testListPagesByID(t *testing.T, st subscription.Store) {
	var want []subscription.Subscription
	for i := range 23 {
		s := newSubscription(t, "acct_list")
		s.Enabled = i%4 != 0 // List includes disabled subscriptions
		mustCreate(t, st, s)
		want = append(want, *s)
		if i%5 == 0 {
			mustCreate(t, st, newSubscription(t, "acct_list_other"))
		}
	}
	slices.SortFunc(want, func(a, b subscription.Subscription) int { return strings.Compare(a.ID, b.ID) })

	var got []subscription.Subscription
	after := ""
	for {
		page, err := st.List(t.Context(), "acct_list", after, 5)
		if err != nil {
			t.Fatalf("List after %q: %v", after, err)
		}
		if len(page) > 5 {
			t.Fatalf("List with limit 5 returned %d", len(page))
		}
		got = append(got, page...)
		if len(page) < 5 {
			break
		}
		after = page[len(page)-1].ID
	}
	if len(got) != len(want) {
		t.Fatalf("List pages hold %d subscriptions, want %d", len(got), len(want))
	}
	for i := range want {
		assertSame(t, got[i], want[i])
	}
	page, err := st.List(t.Context(), "acct_list", want[len(want)-1].ID, 5)
	if err != nil || len(page) != 0 {
		t.Errorf("List after the last ID = %d subscriptions, %v; want none", len(page), err)
	}
	page, err = st.List(t.Context(), "acct_nobody", "", 5)
	if err != nil || len(page) != 0 {
		t.Errorf("List of an account without subscriptions = %d subscriptions, %v; want none", len(page), err)
	}
}

func testListAndMatchRejectBadArguments(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	for _, limit := range []int{-1, 0, subscription.MaxPageSize + 1} {
		if _, err := st.List(ctx, "acct", "", limit); err == nil {
			t.Errorf("List with limit %d: no error", limit)
		}
		if _, err := st.Match(ctx, "acct", "user.created", "", limit); err == nil {
			t.Errorf("Match with limit %d: no error", limit)
		}
	}
	if _, err := st.List(ctx, "", "", 10); err == nil {
		t.Error("List without an account ID: no error")
	}
	if _, err := st.Match(ctx, "", "user.created", "", 10); err == nil {
		t.Error("Match without an account ID: no error")
	}
	for _, et := range []string{"", "user.exploded"} {
		if _, err := st.Match(ctx, "acct", et, "", 10); err == nil {
			t.Errorf("Match of event type %q: no error", et)
		}
	}
	if _, err := st.Match(ctx, "acct", "user.created", "", subscription.MaxPageSize); err != nil {
		t.Errorf("Match with limit MaxPageSize: %v", err)
	}
}

func testMatchFilters(t *testing.T, st subscription.Store) {
	create := func(account string, enabled bool, types ...string) string {
		s := newSubscription(t, account, types...)
		s.Enabled = enabled
		mustCreate(t, st, s)
		return s.ID
	}
	allA := create("acct_a", true)
	createdA := create("acct_a", true, "user.created")
	updatedDeletedA := create("acct_a", true, "user.updated", "user.deleted")
	create("acct_a", false, "user.created")
	create("acct_a", false)
	allB := create("acct_b", true)
	create("acct_b", true, "user.deleted")

	tests := []struct {
		account, eventType string
		want               []string
	}{
		{"acct_a", "user.created", []string{allA, createdA}},
		{"acct_a", "user.updated", []string{allA, updatedDeletedA}},
		{"acct_a", "user.deleted", []string{allA, updatedDeletedA}},
		{"acct_b", "user.created", []string{allB}},
		{"acct_c", "user.created", nil},
	}
	for _, tc := range tests {
		subs, err := st.Match(t.Context(), tc.account, tc.eventType, "", 100)
		if err != nil {
			t.Fatalf("Match(%s, %s): %v", tc.account, tc.eventType, err)
		}
		if got := ids(subs); !slices.Equal(got, tc.want) {
			t.Errorf("Match(%s, %s) = %q, want %q", tc.account, tc.eventType, got, tc.want)
		}
		for _, s := range subs {
			if !s.Enabled || s.AccountID != tc.account || !s.Matches(tc.eventType) || len(s.Secrets) == 0 {
				t.Errorf("Match(%s, %s) returned %s (account %s, enabled %t, types %q, %d secrets)",
					tc.account, tc.eventType, s.ID, s.AccountID, s.Enabled, s.EventTypes, len(s.Secrets))
			}
		}
	}
}

func testMatchPagesExactly(t *testing.T, st subscription.Store) {
	const (
		account = "acct_big"
		n       = 2500
		limit   = 97 // prime, so pages never line up with the patterns below
	)
	patterns := [][]string{nil, {"user.created"}, {"user.updated"}, {"user.created", "user.deleted"}, {"user.updated", "user.deleted"}}
	key := newKey(t)
	var all []subscription.Subscription
	start := time.Now()
	for i := range n {
		s := &subscription.Subscription{
			AccountID:  account,
			URL:        fmt.Sprintf("https://receiver.example/hooks/%d", i),
			EventTypes: patterns[i%len(patterns)],
			Enabled:    i%7 != 3,
			Secrets:    []subscription.Secret{{Key: key}},
		}
		mustCreate(t, st, s)
		all = append(all, *s)
		if i%10 == 0 {
			other := *s
			other.ID = ""
			other.AccountID = "acct_big_other"
			mustCreate(t, st, &other)
		}
	}
	t.Logf("created %d subscriptions in %v", n+n/10, time.Since(start))
	slices.SortFunc(all, func(a, b subscription.Subscription) int { return strings.Compare(a.ID, b.ID) })

	for _, eventType := range []string{"user.created", "user.updated", "user.deleted"} {
		var want []string
		for _, s := range all {
			if s.Enabled && s.Matches(eventType) {
				want = append(want, s.ID)
			}
		}
		var got []string
		after := ""
		for {
			page, err := st.Match(t.Context(), account, eventType, after, limit)
			if err != nil {
				t.Fatalf("Match(%s) after %q: %v", eventType, after, err)
			}
			if len(got)+limit <= len(want) && len(page) != limit {
				t.Fatalf("Match(%s) after %d results returned a page of %d, want exactly %d", eventType, len(got), len(page), limit)
			}
			got = append(got, ids(page)...)
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(got, want) {
			t.Errorf("Match(%s) pages hold %d IDs, want %d (in ID order, none missing or repeated)", eventType, len(got), len(want))
		}

		// Resuming from the middle picks up right after the given ID.
		mid := len(want) / 2
		page, err := st.Match(t.Context(), account, eventType, want[mid], 3)
		if err != nil {
			t.Fatalf("Match(%s) from the middle: %v", eventType, err)
		}
		if got := ids(page); !slices.Equal(got, want[mid+1:mid+4]) {
			t.Errorf("Match(%s) after %s = %q, want %q", eventType, want[mid], got, want[mid+1:mid+4])
		}
	}
}

func testUpdateReplacesMutableFields(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	s := newSubscription(t, "acct_update", "user.created")
	s.Schedule = &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Minute)}, MaxRetryAfter: delivery.Duration(time.Minute)}
	mustCreate(t, st, s)
	created := clone(*s)
	time.Sleep(2 * time.Millisecond) // so that UpdatedAt visibly moves

	oldKey := s.Secrets[0].Key
	s.URL = "https://new-receiver.example/hooks"
	s.EventTypes = nil
	s.Description = "rotated"
	s.Enabled = false
	s.Secrets = []subscription.Secret{{Key: newKey(t)}, {Key: oldKey, ExpiresAt: time.Now().Add(24 * time.Hour)}}
	s.Schedule = nil
	s.MaxInFlight = 3
	s.CreatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // ignored
	if err := st.Update(ctx, s); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !s.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("after Update, CreatedAt = %v, want the original %v", s.CreatedAt, created.CreatedAt)
	}
	if !s.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("after Update, UpdatedAt = %v, want after %v", s.UpdatedAt, created.UpdatedAt)
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, *s)
	if subs := match(t, st, "acct_update", "user.deleted"); len(subs) != 0 {
		t.Errorf("disabled by Update, but Match still returns %q", ids(subs))
	}

	s.Enabled = true
	if err := st.Update(ctx, s); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if subs := match(t, st, "acct_update", "user.deleted"); !slices.Equal(ids(subs), []string{s.ID}) {
		t.Errorf("after Update to all event types, Match(user.deleted) = %q, want [%s]", ids(subs), s.ID)
	}
}

func testUpdateNeverMovesAccounts(t *testing.T, st subscription.Store) {
	s := newSubscription(t, "acct_owner")
	mustCreate(t, st, s)
	moved := clone(*s)
	moved.AccountID = "acct_thief"
	if err := st.Update(t.Context(), &moved); !errors.Is(err, subscription.ErrNotFound) {
		t.Errorf("Update to another account: err = %v, want ErrNotFound", err)
	}
	got, err := st.Get(t.Context(), s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, *s)
}

func testSetEnabled(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	s := newSubscription(t, "acct_pause")
	mustCreate(t, st, s)
	time.Sleep(2 * time.Millisecond)

	if err := st.SetEnabled(ctx, s.ID, false); err != nil {
		t.Fatalf("SetEnabled(false): %v", err)
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Enabled {
		t.Error("after SetEnabled(false), Enabled = true")
	}
	if !got.UpdatedAt.After(s.UpdatedAt) {
		t.Errorf("after SetEnabled, UpdatedAt = %v, want after %v", got.UpdatedAt, s.UpdatedAt)
	}
	want := clone(*s)
	want.Enabled, want.UpdatedAt = false, got.UpdatedAt
	want.Health.DisabledAt = got.UpdatedAt // paused by its owner: a time, no reason
	assertSame(t, got, want)
	if subs := match(t, st, "acct_pause", "user.created"); len(subs) != 0 {
		t.Errorf("paused, but Match returns %q", ids(subs))
	}
	if subs := listAll(t, st, "acct_pause"); len(subs) != 1 {
		t.Errorf("paused: List returns %d subscriptions, want 1", len(subs))
	}

	if err := st.SetEnabled(ctx, s.ID, true); err != nil {
		t.Fatalf("SetEnabled(true): %v", err)
	}
	if subs := match(t, st, "acct_pause", "user.created"); !slices.Equal(ids(subs), []string{s.ID}) {
		t.Errorf("resumed: Match = %q, want [%s]", ids(subs), s.ID)
	}
}

func testCountDisabled(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	count := func() int {
		t.Helper()
		n, err := st.CountDisabled(ctx)
		if err != nil {
			t.Fatalf("CountDisabled: %v", err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("empty store: CountDisabled = %d, want 0", n)
	}
	var subs []*subscription.Subscription
	for _, acct := range []string{"acct_count_a", "acct_count_a", "acct_count_b"} {
		s := newSubscription(t, acct)
		mustCreate(t, st, s)
		subs = append(subs, s)
	}
	for i, s := range subs {
		if err := st.SetEnabled(ctx, s.ID, false); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != i+1 {
			t.Errorf("after disabling %d: CountDisabled = %d", i+1, n)
		}
	}
	if err := st.SetEnabled(ctx, subs[0].ID, true); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, subs[1].ID); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("after enabling one and deleting one: CountDisabled = %d, want 1", n)
	}
}

func testDeleteRemoves(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	gone := newSubscription(t, "acct_delete", "user.created", "user.updated")
	kept := newSubscription(t, "acct_delete")
	mustCreate(t, st, gone)
	mustCreate(t, st, kept)

	if err := st.Delete(ctx, gone.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Get(ctx, gone.ID); !errors.Is(err, subscription.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, gone.ID); !errors.Is(err, subscription.ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	}
	if got := ids(listAll(t, st, "acct_delete")); !slices.Equal(got, []string{kept.ID}) {
		t.Errorf("List after Delete = %q, want [%s]", got, kept.ID)
	}
	if got := ids(match(t, st, "acct_delete", "user.created")); !slices.Equal(got, []string{kept.ID}) {
		t.Errorf("Match after Delete = %q, want [%s]", got, kept.ID)
	}

	// The ID is free again, and nothing of the old subscription remains.
	again := newSubscription(t, "acct_delete", "user.deleted")
	again.ID = gone.ID
	mustCreate(t, st, again)
	got, err := st.Get(ctx, again.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, *again)
}

func testConcurrentCreates(t *testing.T, st subscription.Store) {
	const (
		account    = "acct_concurrent"
		writers    = 8
		perWriter  = 40
		wantCreate = writers * perWriter
	)
	ctx := t.Context()
	key := newKey(t)
	done := make(chan struct{})
	var readers, wg sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := st.Match(ctx, account, "user.created", "", 50); err != nil {
					t.Errorf("concurrent Match: %v", err)
					return
				}
			}
		})
	}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				s := &subscription.Subscription{
					AccountID: account,
					URL:       fmt.Sprintf("https://receiver.example/%d/%d", w, i),
					Enabled:   true,
					Secrets:   []subscription.Secret{{Key: key}},
				}
				if err := st.Create(ctx, s); err != nil {
					t.Errorf("concurrent Create: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()

	subs := listAll(t, st, account)
	seen := make(map[string]bool)
	for _, s := range subs {
		seen[s.URL] = true
	}
	if len(subs) != wantCreate || len(seen) != wantCreate {
		t.Errorf("after %d concurrent creates, List holds %d subscriptions with %d distinct URLs", wantCreate, len(subs), len(seen))
	}
}

func testCanceledContext(t *testing.T, st subscription.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := newSubscription(t, "acct_canceled")
	before := clone(*s)
	if err := st.Create(ctx, s); !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a canceled context: err = %v, want context.Canceled", err)
	}
	assertSame(t, *s, before)
	if subs := listAll(t, st, "acct_canceled"); len(subs) != 0 {
		t.Errorf("after a canceled Create, List holds %d subscriptions", len(subs))
	}
}

func testErrorsNeverContainSecrets(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	key := newKey(t)
	keyText := strings.TrimPrefix(key.Reveal(), signature.SecretPrefix)
	base := subscription.Subscription{
		AccountID: "acct_secret",
		URL:       "https://receiver.example/hooks",
		Enabled:   true,
		Secrets:   []subscription.Secret{{Key: key}},
	}

	var errs []error
	expectErr := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", op)
			return
		}
		errs = append(errs, err)
	}
	invalid := clone(base)
	invalid.URL = "ftp://receiver.example"
	invalid.Secrets = append(invalid.Secrets, subscription.Secret{Key: key}) // a repeated key
	expectErr("Create invalid", st.Create(ctx, &invalid))

	stored := clone(base)
	mustCreate(t, st, &stored)
	taken := clone(stored)
	expectErr("Create with a taken ID", st.Create(ctx, &taken))
	moved := clone(stored)
	moved.AccountID = "acct_other"
	expectErr("Update to another account", st.Update(ctx, &moved))
	missing := clone(stored)
	missing.ID = uuid.NewString()
	expectErr("Update missing", st.Update(ctx, &missing))
	badUpdate := clone(stored)
	badUpdate.Secrets = append(badUpdate.Secrets, subscription.Secret{Key: key}, subscription.Secret{})
	badUpdate.Schedule = &delivery.Schedule{Jitter: -1}
	expectErr("Update invalid", st.Update(ctx, &badUpdate))
	_, err := st.Get(ctx, missing.ID)
	expectErr("Get missing", err)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = st.Get(canceled, stored.ID)
	expectErr("Get with a canceled context", err)
	_, err = st.Match(canceled, stored.AccountID, "user.created", "", 10)
	expectErr("Match with a canceled context", err)
	canceledCreate := clone(base)
	expectErr("Create with a canceled context", st.Create(canceled, &canceledCreate))

	for _, err := range errs {
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(text, keyText) {
				t.Errorf("an error discloses the secret: %s", text)
			}
		}
	}
}

// newSubscription returns a valid, enabled subscription with one fresh key.
func newSubscription(t *testing.T, accountID string, eventTypes ...string) *subscription.Subscription {
	t.Helper()
	return &subscription.Subscription{
		AccountID:   accountID,
		URL:         "https://receiver.example/hooks",
		EventTypes:  eventTypes,
		Description: "contract test",
		Enabled:     true,
		Secrets:     []subscription.Secret{{Key: newKey(t)}},
	}
}

func newKey(t *testing.T) signature.Secret {
	t.Helper()
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func mustCreate(t *testing.T, st subscription.Store, s *subscription.Subscription) {
	t.Helper()
	if err := st.Create(t.Context(), s); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// listAll returns every subscription of the account, paging through List.
func listAll(t *testing.T, st subscription.Store, accountID string) []subscription.Subscription {
	t.Helper()
	var all []subscription.Subscription
	after := ""
	for {
		page, err := st.List(t.Context(), accountID, after, subscription.MaxPageSize)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		all = append(all, page...)
		if len(page) < subscription.MaxPageSize {
			return all
		}
		after = page[len(page)-1].ID
	}
}

// match returns the first page of Match, which the callers keep small.
func match(t *testing.T, st subscription.Store, accountID, eventType string) []subscription.Subscription {
	t.Helper()
	subs, err := st.Match(t.Context(), accountID, eventType, "", subscription.MaxPageSize)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	return subs
}

func ids(subs []subscription.Subscription) []string {
	var out []string
	for _, s := range subs {
		out = append(out, s.ID)
	}
	return out
}

// clone copies s deeply enough that changing the copy leaves s alone.
func clone(s subscription.Subscription) subscription.Subscription {
	s.EventTypes = slices.Clone(s.EventTypes)
	s.Secrets = slices.Clone(s.Secrets)
	if s.Schedule != nil {
		sched := *s.Schedule
		sched.Delays = slices.Clone(sched.Delays)
		s.Schedule = &sched
	}
	return s
}

func assertValidationError(t *testing.T, err error, field string) {
	t.Helper()
	var verr *subscription.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a *subscription.ValidationError", err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name the field %s", err, field)
	}
}

// assertSame reports every field in which got differs from want. Secrets
// are compared by key and expiry, and never printed.
func assertSame(t *testing.T, got, want subscription.Subscription) {
	t.Helper()
	if got.ID != want.ID || got.AccountID != want.AccountID || got.URL != want.URL ||
		got.Description != want.Description || got.Enabled != want.Enabled {
		t.Errorf("got subscription {ID %q, AccountID %q, URL %q, Description %q, Enabled %t}, want {%q, %q, %q, %q, %t}",
			got.ID, got.AccountID, got.URL, got.Description, got.Enabled,
			want.ID, want.AccountID, want.URL, want.Description, want.Enabled)
	}
	if !slices.Equal(got.EventTypes, want.EventTypes) {
		t.Errorf("%s: EventTypes = %q, want %q", want.ID, got.EventTypes, want.EventTypes)
	}
	if len(got.Secrets) != len(want.Secrets) {
		t.Errorf("%s: %d secrets, want %d", want.ID, len(got.Secrets), len(want.Secrets))
	} else {
		for i := range want.Secrets {
			if !got.Secrets[i].Key.Equal(want.Secrets[i].Key) {
				t.Errorf("%s: Secrets[%d] holds another key", want.ID, i)
			}
			if got.Secrets[i].ExpiresAt != want.Secrets[i].ExpiresAt {
				t.Errorf("%s: Secrets[%d].ExpiresAt = %v, want %v", want.ID, i, got.Secrets[i].ExpiresAt, want.Secrets[i].ExpiresAt)
			}
		}
	}
	if !reflect.DeepEqual(got.Schedule, want.Schedule) {
		t.Errorf("%s: Schedule = %+v, want %+v", want.ID, got.Schedule, want.Schedule)
	}
	if got.MaxInFlight != want.MaxInFlight {
		t.Errorf("%s: MaxInFlight = %d, want %d", want.ID, got.MaxInFlight, want.MaxInFlight)
	}
	// == rather than Equal: the location (UTC) must match too.
	if got.CreatedAt != want.CreatedAt || got.UpdatedAt != want.UpdatedAt {
		t.Errorf("%s: CreatedAt, UpdatedAt = %v, %v; want %v, %v", want.ID, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	if got.Health != want.Health {
		t.Errorf("%s: Health = %+v, want %+v", want.ID, got.Health, want.Health)
	}
}

// healthOf returns the stored health of a subscription.
func healthOf(t *testing.T, st subscription.Store, id string) subscription.Health {
	t.Helper()
	s, err := st.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return s.Health
}

func record(t *testing.T, st subscription.Store, id string, ok bool, at time.Time) {
	t.Helper()
	if err := st.RecordAttempt(t.Context(), id, ok, at); err != nil {
		t.Fatalf("RecordAttempt(ok=%t, %v): %v", ok, at, err)
	}
}

// base is a time in the past with nanoseconds and a zone other than UTC:
// stores keep health times in UTC at microsecond precision.
var base = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.FixedZone("UTC+2", 2*3600))

// stored is t as stores keep it.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func testHealthIsReadOnly(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	s := newSubscription(t, "acct_health_ro")
	s.Health = subscription.Health{LastSuccessAt: base, FailingSince: base, DisabledReason: "made up", DisabledAt: base}
	mustCreate(t, st, s)
	if s.Health != (subscription.Health{}) {
		t.Errorf("after Create, Health = %+v, want zero: Create ignores it", s.Health)
	}
	if h := healthOf(t, st, s.ID); h != (subscription.Health{}) {
		t.Errorf("stored Health after Create = %+v, want zero", h)
	}

	record(t, st, s.ID, true, base)
	record(t, st, s.ID, false, base.Add(time.Hour))
	want := subscription.Health{LastSuccessAt: stored(base), FailingSince: stored(base.Add(time.Hour))}
	s.Description = "changed"
	s.Health = subscription.Health{DisabledReason: "made up"}
	if err := st.Update(ctx, s); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if s.Health != want {
		t.Errorf("after Update, Health = %+v, want the stored %+v", s.Health, want)
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, *s)
}

func testRecordAttemptKeepsTheFailureClock(t *testing.T, st subscription.Store) {
	s := newSubscription(t, "acct_health_clock")
	mustCreate(t, st, s)
	steps := []struct {
		name string
		ok   bool
		at   time.Time
		want subscription.Health
	}{
		{"first failure starts the clock", false, base, subscription.Health{FailingSince: stored(base)}},
		{"later failure keeps it", false, base.Add(time.Hour), subscription.Health{FailingSince: stored(base)}},
		{"success stops it", true, base.Add(2 * time.Hour), subscription.Health{LastSuccessAt: stored(base.Add(2 * time.Hour))}},
		{"next failure starts it again", false, base.Add(3 * time.Hour),
			subscription.Health{LastSuccessAt: stored(base.Add(2 * time.Hour)), FailingSince: stored(base.Add(3 * time.Hour))}},
		// Seconds after the last recorded success, but the endpoint was
		// failing: written at once.
		{"success while failing is written at once", true, base.Add(3*time.Hour + time.Second),
			subscription.Health{LastSuccessAt: stored(base.Add(3*time.Hour + time.Second))}},
	}
	for _, step := range steps {
		record(t, st, s.ID, step.ok, step.at)
		got := healthOf(t, st, s.ID)
		if got != step.want {
			t.Errorf("%s: Health = %+v, want %+v", step.name, got, step.want)
		}
		if got.Failing() == step.ok { // failing after a failure, not after a success
			t.Errorf("%s: Failing() = %t after a success=%t", step.name, got.Failing(), step.ok)
		}
	}
	got, err := st.Get(t.Context(), s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.UpdatedAt != s.UpdatedAt || !got.Enabled {
		t.Errorf("after recording attempts: UpdatedAt = %v, Enabled = %t; want %v, true (health is not an update)", got.UpdatedAt, got.Enabled, s.UpdatedAt)
	}
}

func testRecordAttemptThrottlesSuccesses(t *testing.T, st subscription.Store) {
	s := newSubscription(t, "acct_health_throttle")
	mustCreate(t, st, s)
	record(t, st, s.ID, true, base)
	within := base.Add(subscription.LastSuccessResolution - time.Second)
	record(t, st, s.ID, true, within)
	if got := healthOf(t, st, s.ID).LastSuccessAt; got != stored(base) {
		t.Errorf("success %s after the last: LastSuccessAt = %v, want it unchanged at %v (at most one write a minute)",
			within.Sub(base), got, stored(base))
	}
	after := base.Add(subscription.LastSuccessResolution + time.Second)
	record(t, st, s.ID, true, after)
	if got := healthOf(t, st, s.ID).LastSuccessAt; got != stored(after) {
		t.Errorf("success %s after the last: LastSuccessAt = %v, want %v", after.Sub(base), got, stored(after))
	}
}

func testRecordAttemptOrdersOutcomesByTime(t *testing.T, st subscription.Store) {
	s := newSubscription(t, "acct_health_order")
	mustCreate(t, st, s)
	// A failure reported after a later success is old news.
	record(t, st, s.ID, true, base.Add(time.Hour))
	record(t, st, s.ID, false, base)
	if got, want := healthOf(t, st, s.ID), (subscription.Health{LastSuccessAt: stored(base.Add(time.Hour))}); got != want {
		t.Errorf("failure reported after a later success: Health = %+v, want %+v", got, want)
	}
	// A success reported after a later failure neither stops the clock
	// nor moves LastSuccessAt back.
	record(t, st, s.ID, false, base.Add(3*time.Hour))
	record(t, st, s.ID, true, base.Add(2*time.Hour))
	want := subscription.Health{LastSuccessAt: stored(base.Add(2 * time.Hour)), FailingSince: stored(base.Add(3 * time.Hour))}
	if got := healthOf(t, st, s.ID); got != want {
		t.Errorf("success reported after a later failure: Health = %+v, want %+v", got, want)
	}
	record(t, st, s.ID, true, base.Add(30*time.Minute))
	if got := healthOf(t, st, s.ID); got != want {
		t.Errorf("success older than the last one: Health = %+v, want unchanged %+v", got, want)
	}
	// An earlier failure reported late moves the clock's start back.
	record(t, st, s.ID, false, base.Add(150*time.Minute))
	want.FailingSince = stored(base.Add(150 * time.Minute))
	if got := healthOf(t, st, s.ID); got != want {
		t.Errorf("earlier failure reported late: Health = %+v, want %+v", got, want)
	}
}

func testRecordAttemptRejectsBadArguments(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	id := uuid.NewString()
	for _, ok := range []bool{true, false} {
		err := st.RecordAttempt(ctx, id, ok, base)
		if !errors.Is(err, subscription.ErrNotFound) || !strings.Contains(err.Error(), id) {
			t.Errorf("RecordAttempt(ok=%t) of a missing subscription: err = %v, want ErrNotFound naming %s", ok, err, id)
		}
	}
	s := newSubscription(t, "acct_health_bad")
	mustCreate(t, st, s)
	if err := st.RecordAttempt(ctx, s.ID, false, time.Time{}); err == nil {
		t.Error("RecordAttempt at the zero time: no error")
	}
	if h := healthOf(t, st, s.ID); h != (subscription.Health{}) {
		t.Errorf("after a refused RecordAttempt, Health = %+v, want zero", h)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.RecordAttempt(canceled, s.ID, false, base); !errors.Is(err, context.Canceled) {
		t.Errorf("RecordAttempt with a canceled context: err = %v, want context.Canceled", err)
	}
	if h := healthOf(t, st, s.ID); h != (subscription.Health{}) {
		t.Errorf("after a canceled RecordAttempt, Health = %+v, want zero", h)
	}
}

func testDisable(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	s := newSubscription(t, "acct_health_disable")
	mustCreate(t, st, s)
	record(t, st, s.ID, false, base)
	const reason = "endpoint answered 410 Gone"
	at := base.Add(time.Minute)
	changed, err := st.Disable(ctx, s.ID, reason, at)
	if err != nil || !changed {
		t.Fatalf("Disable = %t, %v; want true, nil", changed, err)
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := clone(*s)
	want.Enabled = false
	want.UpdatedAt = stored(at)
	want.Health = subscription.Health{FailingSince: stored(base), DisabledReason: reason, DisabledAt: stored(at)}
	assertSame(t, got, want)
	if subs := match(t, st, s.AccountID, "user.created"); len(subs) != 0 {
		t.Errorf("disabled, but Match returns %q", ids(subs))
	}
	if n, err := st.CountDisabled(ctx); err != nil || n != 1 {
		t.Errorf("CountDisabled = %d, %v; want 1", n, err)
	}

	// Again: nothing changes, the first reason stays.
	changed, err = st.Disable(ctx, s.ID, "another reason", at.Add(time.Hour))
	if err != nil || changed {
		t.Errorf("second Disable = %t, %v; want false, nil", changed, err)
	}
	got, err = st.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, want)

	missing := uuid.NewString()
	if _, err := st.Disable(ctx, missing, reason, at); !errors.Is(err, subscription.ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Disable of a missing subscription: err = %v, want ErrNotFound naming %s", err, missing)
	}
}

func testDisableIfFailing(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	const reason = "no successful delivery for 5 days"
	at := base.Add(10 * 24 * time.Hour)
	disable := func(id string, failingBefore time.Time) bool {
		t.Helper()
		changed, err := st.DisableIfFailing(ctx, id, reason, failingBefore, at)
		if err != nil {
			t.Fatalf("DisableIfFailing: %v", err)
		}
		return changed
	}

	healthy := newSubscription(t, "acct_health_iffailing")
	mustCreate(t, st, healthy)
	record(t, st, healthy.ID, true, base)
	if disable(healthy.ID, at) {
		t.Error("DisableIfFailing of an endpoint that is not failing disabled it")
	}

	failing := newSubscription(t, "acct_health_iffailing")
	mustCreate(t, st, failing)
	record(t, st, failing.ID, false, base)
	if disable(failing.ID, base.Add(-time.Microsecond)) {
		t.Error("DisableIfFailing disabled an endpoint failing since after the limit")
	}
	if h := healthOf(t, st, failing.ID); h.DisabledReason != "" || !h.DisabledAt.IsZero() {
		t.Errorf("after a DisableIfFailing that did nothing, Health = %+v", h)
	}
	if !disable(failing.ID, base) {
		t.Fatal("DisableIfFailing did not disable an endpoint failing since exactly the limit")
	}
	got, err := st.Get(ctx, failing.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := subscription.Health{FailingSince: stored(base), DisabledReason: reason, DisabledAt: stored(at)}
	if got.Enabled || got.Health != want {
		t.Errorf("after DisableIfFailing: Enabled = %t, Health = %+v; want false, %+v", got.Enabled, got.Health, want)
	}
	if disable(failing.ID, at) {
		t.Error("DisableIfFailing of a disabled subscription reported a change")
	}

	// A success recorded after the failure stops the clock.
	recovered := newSubscription(t, "acct_health_iffailing")
	mustCreate(t, st, recovered)
	record(t, st, recovered.ID, false, base)
	record(t, st, recovered.ID, true, base.Add(time.Hour))
	if disable(recovered.ID, at) {
		t.Error("DisableIfFailing disabled an endpoint that succeeded after failing")
	}
	if subs := match(t, st, "acct_health_iffailing", "user.created"); !slices.Equal(ids(subs), sortedIDs(healthy.ID, recovered.ID)) {
		t.Errorf("Match = %q, want the two subscriptions left enabled", ids(subs))
	}

	missing := uuid.NewString()
	if _, err := st.DisableIfFailing(ctx, missing, reason, at, at); !errors.Is(err, subscription.ErrNotFound) {
		t.Errorf("DisableIfFailing of a missing subscription: err = %v, want ErrNotFound", err)
	}
	if _, err := st.DisableIfFailing(ctx, healthy.ID, reason, time.Time{}, at); err == nil {
		t.Error("DisableIfFailing without a limit: no error")
	}
}

func testDisableRejectsBadArguments(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	s := newSubscription(t, "acct_health_badreason")
	mustCreate(t, st, s)
	tests := []struct {
		name, reason string
		at           time.Time
	}{
		{"empty reason", "", base},
		{"blank reason", " \t", base},
		{"long reason", strings.Repeat("é", subscription.MaxDisabledReasonLength+1), base},
		{"reason not UTF-8", "bad \xff", base},
		{"reason with NUL", "bad \x00", base},
		{"zero time", "a reason", time.Time{}},
	}
	for _, tc := range tests {
		if _, err := st.Disable(ctx, s.ID, tc.reason, tc.at); err == nil {
			t.Errorf("Disable with %s: no error", tc.name)
		}
		if _, err := st.DisableIfFailing(ctx, s.ID, tc.reason, base, tc.at); err == nil {
			t.Errorf("DisableIfFailing with %s: no error", tc.name)
		}
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSame(t, got, *s)
	if _, err := st.Disable(ctx, s.ID, strings.Repeat("é", subscription.MaxDisabledReasonLength), base); err != nil {
		t.Errorf("Disable with a reason of the largest length: %v", err)
	}
}

func testEnablingResetsTheFailureClock(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	s := newSubscription(t, "acct_health_enable")
	mustCreate(t, st, s)
	record(t, st, s.ID, true, base)
	record(t, st, s.ID, false, base.Add(time.Hour))
	if _, err := st.Disable(ctx, s.ID, "failing", base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Resuming an enabled subscription, or pausing a paused one, leaves health alone.
	if err := st.SetEnabled(ctx, s.ID, false); err != nil {
		t.Fatal(err)
	}
	if h := healthOf(t, st, s.ID); h.DisabledReason != "failing" || h.DisabledAt != stored(base.Add(2*time.Hour)) {
		t.Errorf("after pausing a disabled subscription, Health = %+v, want the first disable's reason and time", h)
	}

	if err := st.SetEnabled(ctx, s.ID, true); err != nil {
		t.Fatalf("SetEnabled(true): %v", err)
	}
	want := subscription.Health{LastSuccessAt: stored(base)}
	if h := healthOf(t, st, s.ID); h != want {
		t.Errorf("after SetEnabled(true), Health = %+v, want %+v (failure clock and disable cleared, last success kept)", h, want)
	}
	record(t, st, s.ID, false, base.Add(3*time.Hour))
	if err := st.SetEnabled(ctx, s.ID, true); err != nil {
		t.Fatal(err)
	}
	if h := healthOf(t, st, s.ID); h.FailingSince != stored(base.Add(3*time.Hour)) {
		t.Errorf("SetEnabled(true) of an enabled subscription changed FailingSince to %v", h.FailingSince)
	}

	// Pausing by its owner: a time, no reason.
	before := time.Now()
	if err := st.SetEnabled(ctx, s.ID, false); err != nil {
		t.Fatal(err)
	}
	h := healthOf(t, st, s.ID)
	if h.DisabledReason != "" || h.DisabledAt.Before(before.Add(-time.Millisecond)) || h.DisabledAt.After(time.Now()) {
		t.Errorf("after SetEnabled(false), Health = %+v, want DisabledAt now and no reason", h)
	}
	if h.FailingSince != stored(base.Add(3*time.Hour)) {
		t.Errorf("pausing changed FailingSince to %v", h.FailingSince)
	}
}

func testUpdateOfEnabledKeepsHealthInStep(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	s := newSubscription(t, "acct_health_update")
	mustCreate(t, st, s)
	record(t, st, s.ID, false, base)
	if _, err := st.Disable(ctx, s.ID, "failing", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Description = "still off"
	if err := st.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if want := (subscription.Health{FailingSince: stored(base), DisabledReason: "failing", DisabledAt: stored(base.Add(time.Hour))}); got.Health != want {
		t.Errorf("Update leaving Enabled false: Health = %+v, want %+v", got.Health, want)
	}
	got.Enabled = true
	if err := st.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got.Health != (subscription.Health{}) {
		t.Errorf("Update enabling: Health = %+v, want zero (as SetEnabled(true))", got.Health)
	}
	got.Enabled = false
	before := time.Now()
	if err := st.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if h := got.Health; h.DisabledReason != "" || h.DisabledAt.Before(before.Add(-time.Millisecond)) || h.DisabledAt.After(time.Now()) {
		t.Errorf("Update disabling: Health = %+v, want DisabledAt now and no reason", h)
	}
	again, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, again, got)
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// testMaxInFlight checks that the concurrency limit goes through every read
// path (Get, List, Match, Update's write-back), from its largest value back
// to none.
func testMaxInFlight(t *testing.T, st subscription.Store) {
	ctx := t.Context()
	const account = "acct_max_in_flight"
	limited := newSubscription(t, account)
	limited.MaxInFlight = subscription.MaxInFlightLimit
	mustCreate(t, st, limited)
	unlimited := newSubscription(t, account)
	mustCreate(t, st, unlimited)

	want := map[string]int{limited.ID: subscription.MaxInFlightLimit, unlimited.ID: 0}
	check := func(how string, subs []subscription.Subscription) {
		t.Helper()
		if len(subs) != len(want) {
			t.Fatalf("%s returned %d subscriptions, want %d", how, len(subs), len(want))
		}
		for _, s := range subs {
			if s.MaxInFlight != want[s.ID] {
				t.Errorf("%s: %s has MaxInFlight %d, want %d", how, s.ID, s.MaxInFlight, want[s.ID])
			}
		}
	}
	check("List", listAll(t, st, account))
	check("Match", match(t, st, account, "user.created"))

	limited.MaxInFlight = 0
	unlimited.MaxInFlight = 1
	for _, s := range []*subscription.Subscription{limited, unlimited} {
		if err := st.Update(ctx, s); err != nil {
			t.Fatalf("Update: %v", err)
		}
		got, err := st.Get(ctx, s.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertSame(t, got, *s)
	}
	want = map[string]int{limited.ID: 0, unlimited.ID: 1}
	check("Match after Update", match(t, st, account, "user.deleted"))
}
