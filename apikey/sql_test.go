package apikey_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// backend opens fresh, empty stores of one dialect. open returns the store
// and a separate handle on its database, to inspect rows; reopen opens a
// second store on the same database.
type backend struct {
	name string
	open func(t *testing.T) (st *apikey.SQLStore, raw *sql.DB, reopen func(t *testing.T) (*apikey.SQLStore, error))
}

func backends(t *testing.T) []backend {
	t.Helper()
	return []backend{{name: "SQLite", open: openSQLiteBackend}, {name: "PostgreSQL", open: openPostgresBackend}}
}

func openSQLiteBackend(t *testing.T) (*apikey.SQLStore, *sql.DB, func(t *testing.T) (*apikey.SQLStore, error)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.db")
	reopen := func(t *testing.T) (*apikey.SQLStore, error) {
		st, err := apikey.OpenSQLite(t.Context(), path)
		if err == nil {
			t.Cleanup(func() { st.Close() })
		}
		return st, err
	}
	st, err := reopen(t)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return st, raw, reopen
}

// postgresDSN is the server the PostgreSQL tests use.
func postgresDSN(t *testing.T) string {
	t.Helper()
	if os.Getenv("USERHOOKS_TEST_SKIP_POSTGRES") == "1" {
		t.Skip("USERHOOKS_TEST_SKIP_POSTGRES=1")
	}
	if dsn := os.Getenv("USERHOOKS_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// openPostgresBackend gives each test its own schema, dropped at the end.
func openPostgresBackend(t *testing.T) (*apikey.SQLStore, *sql.DB, func(t *testing.T) (*apikey.SQLStore, error)) {
	t.Helper()
	dsn := postgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 8)
	rand.Read(b)
	schema := "apikey_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("PostgreSQL at %s is required (set USERHOOKS_TEST_SKIP_POSTGRES=1 to skip): create schema: %v", dsn, err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("USERHOOKS_TEST_POSTGRES_DSN must be a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reopen := func(t *testing.T) (*apikey.SQLStore, error) {
		st, err := apikey.NewSQLStore(t.Context(), db, apikey.PostgreSQL)
		if err == nil {
			t.Cleanup(func() { st.Close() })
		}
		return st, err
	}
	st, err := reopen(t)
	if err != nil {
		t.Fatalf("NewSQLStore: %v", err)
	}
	return st, db, reopen
}

// TestSQLStore_Contract runs every behaviour of the store against SQLite and
// PostgreSQL.
func TestSQLStore_Contract(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st *apikey.SQLStore, raw *sql.DB, reopen func(t *testing.T) (*apikey.SQLStore, error))
	}{
		{"CreateShowsTheKeyOnceAndStoresOnlyItsHash", testCreateStoresOnlyHash},
		{"AuthenticateAcceptsAnIssuedKey", testAuthenticateAccepts},
		{"AuthenticateRefusesMalformedUnknownAndRevokedKeys", testAuthenticateRefuses},
		{"CreateRejectsBadArgumentsAndStoresNothing", testCreateRejects},
		{"ListIsPerAccountOldestFirst", testListPerAccount},
		{"RevokeIsPerAccountAndIdempotent", testRevoke},
		{"AuthenticateRecordsLastUse", testLastUsed},
		{"ConcurrentOpensMigrateOnce", testConcurrentOpens},
		{"NewerSchemaIsRefused", testNewerSchemaRefused},
		{"CanceledContextChangesNothing", testCanceledContext},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					st, raw, reopen := b.open(t)
					tt.fn(t, st, raw, reopen)
				})
			}
		})
	}
}

func mustCreate(t *testing.T, st apikey.Store, account, name string) (apikey.Key, string) {
	t.Helper()
	k, plaintext, err := st.Create(t.Context(), account, name)
	if err != nil {
		t.Fatalf("Create(%q, %q): %v", account, name, err)
	}
	return k, plaintext
}

func testCreateStoresOnlyHash(t *testing.T, st *apikey.SQLStore, raw *sql.DB, _ func(t *testing.T) (*apikey.SQLStore, error)) {
	before := time.Now().Add(-time.Second)
	k, plaintext := mustCreate(t, st, "acme", "billing service")
	if !strings.HasPrefix(plaintext, "uhk_") || len(plaintext) != 47 {
		t.Errorf("plaintext = %d characters starting %q; want uhk_ and 43 base64url characters", len(plaintext), plaintext[:4])
	}
	if k.ID == "" || k.AccountID != "acme" || k.Name != "billing service" || !k.Active() {
		t.Errorf("Key = %+v; want an active key of acme named billing service", k)
	}
	if want := plaintext[:12]; k.DisplayPrefix != want {
		t.Errorf("DisplayPrefix = %q, want %q", k.DisplayPrefix, want)
	}
	if k.CreatedAt.Before(before) || k.CreatedAt.After(time.Now()) || k.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want now in UTC", k.CreatedAt)
	}

	// Every column of every row, as text: the key must not be there, in
	// whole or in its random part, only its SHA-256.
	rows, err := raw.QueryContext(t.Context(), `SELECT id, account_id, name, display_prefix, key_hash, CAST(created_at AS TEXT) FROM api_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		cols := make([]string, 6)
		if err := rows.Scan(&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]); err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			if strings.Contains(c, plaintext[4:]) {
				t.Errorf("a stored column holds the key's random part")
			}
		}
		sum := sha256.Sum256([]byte(plaintext))
		if cols[4] != hex.EncodeToString(sum[:]) {
			t.Errorf("key_hash is not the hex SHA-256 of the key")
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("api_keys has %d rows, want 1", n)
	}

	_, second := mustCreate(t, st, "acme", "")
	if second == plaintext {
		t.Error("two keys are equal")
	}
}

func testAuthenticateAccepts(t *testing.T, st *apikey.SQLStore, _ *sql.DB, reopen func(t *testing.T) (*apikey.SQLStore, error)) {
	k, plaintext := mustCreate(t, st, "acme", "ci")
	// Through another store on the same database, as another API replica.
	other, err := reopen(t)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	got, err := other.Authenticate(t.Context(), plaintext)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if got.ID != k.ID || got.AccountID != k.AccountID || got.Name != k.Name || got.DisplayPrefix != k.DisplayPrefix || !got.CreatedAt.Equal(k.CreatedAt) {
		t.Errorf("Authenticate = %+v, want %+v", got, k)
	}
}

func testAuthenticateRefuses(t *testing.T, st *apikey.SQLStore, _ *sql.DB, _ func(t *testing.T) (*apikey.SQLStore, error)) {
	ctx := t.Context()
	revokedKey, revoked := mustCreate(t, st, "acme", "old")
	if err := st.Revoke(ctx, "acme", revokedKey.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	_, valid := mustCreate(t, st, "acme", "current")
	flip := []byte(valid)
	if flip[20] == 'A' {
		flip[20] = 'B'
	} else {
		flip[20] = 'A'
	}
	tests := map[string]string{
		"empty":                "",
		"prefix only":          "uhk_",
		"revoked":              revoked,
		"one character off":    string(flip),
		"unknown but wellform": "uhk_" + strings.Repeat("A", 43),
		"trailing newline":     valid + "\n",
		"with padding":         valid + "=",
		"upper-case prefix":    "UHK_" + valid[4:],
		"other prefix":         "whsec_" + valid[4:],
		"standard base64":      "uhk_" + strings.Repeat("+", 43),
		"too long":             valid + valid,
		"not UTF-8":            "uhk_\xff\xfe" + valid[6:],
		"bearer included":      "Bearer " + valid,
	}
	for name, key := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := st.Authenticate(ctx, key)
			if !errors.Is(err, apikey.ErrInvalid) {
				t.Fatalf("Authenticate = %v, want ErrInvalid", err)
			}
			if len(key) > 8 && strings.Contains(err.Error(), key[4:]) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
	if _, err := st.Authenticate(ctx, valid); err != nil {
		t.Errorf("the valid key stopped working: %v", err)
	}
}

func testCreateRejects(t *testing.T, st *apikey.SQLStore, _ *sql.DB, _ func(t *testing.T) (*apikey.SQLStore, error)) {
	tests := []struct{ name, account, keyName, problem string }{
		{"no account", "", "x", "account_id is required"},
		{"account with space", "acme corp", "x", "account_id may only contain"},
		{"account too long", strings.Repeat("a", 129), "x", "account_id is 129 characters"},
		{"name too long", "acme", strings.Repeat("é", 201), "name is 201 characters"},
		{"name with newline", "acme", "a\nb", "control characters"},
		{"name not UTF-8", "acme", "\xff", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, plaintext, err := st.Create(t.Context(), tt.account, tt.keyName)
			var verr *apikey.ValidationError
			if !errors.As(err, &verr) || !strings.Contains(err.Error(), tt.problem) {
				t.Fatalf("Create = %v, want a ValidationError mentioning %q", err, tt.problem)
			}
			if plaintext != "" {
				t.Error("a rejected Create returned a key")
			}
		})
	}
	for _, account := range []string{"acme", "acme corp", ""} {
		if keys, err := st.List(t.Context(), account); err != nil || len(keys) != 0 {
			t.Errorf("List(%q) = %d keys, %v; want none", account, len(keys), err)
		}
	}
}

func testListPerAccount(t *testing.T, st *apikey.SQLStore, _ *sql.DB, _ func(t *testing.T) (*apikey.SQLStore, error)) {
	var want []string
	for i := range 5 {
		k, _ := mustCreate(t, st, "acme", fmt.Sprintf("key %d", i))
		want = append(want, k.ID)
		mustCreate(t, st, "globex", fmt.Sprintf("other %d", i))
	}
	keys, err := st.List(t.Context(), "acme")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for i, k := range keys {
		got = append(got, k.ID)
		if k.AccountID != "acme" || k.Name != fmt.Sprintf("key %d", i) {
			t.Errorf("keys[%d] = %+v, want acme's key %d", i, k, i)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List IDs = %v, want %v (creation order)", got, want)
	}
	if keys, err := st.List(t.Context(), "initech"); err != nil || len(keys) != 0 {
		t.Errorf("List(initech) = %v, %v; want none", keys, err)
	}
}

func testRevoke(t *testing.T, st *apikey.SQLStore, _ *sql.DB, _ func(t *testing.T) (*apikey.SQLStore, error)) {
	ctx := t.Context()
	k, plaintext := mustCreate(t, st, "acme", "ci")

	// Another account cannot revoke it, and learns nothing: same error as
	// for an unknown ID.
	errOther := st.Revoke(ctx, "globex", k.ID)
	if !errors.Is(errOther, apikey.ErrNotFound) {
		t.Fatalf("Revoke by another account = %v, want ErrNotFound", errOther)
	}
	if _, err := st.Authenticate(ctx, plaintext); err != nil {
		t.Fatalf("key stopped working after another account's Revoke: %v", err)
	}
	if err := st.Revoke(ctx, "acme", "01890000-0000-7000-8000-000000000000"); !errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Revoke of an unknown ID = %v, want ErrNotFound", err)
	}

	if err := st.Revoke(ctx, "acme", k.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := st.Authenticate(ctx, plaintext); !errors.Is(err, apikey.ErrInvalid) {
		t.Fatalf("Authenticate after Revoke = %v, want ErrInvalid", err)
	}
	first := listOne(t, st, "acme").RevokedAt
	if first.IsZero() {
		t.Fatal("RevokedAt is zero after Revoke")
	}
	if err := st.Revoke(ctx, "acme", k.ID); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	if again := listOne(t, st, "acme").RevokedAt; !again.Equal(first) {
		t.Errorf("second Revoke moved RevokedAt from %v to %v", first, again)
	}
}

func listOne(t *testing.T, st apikey.Store, account string) apikey.Key {
	t.Helper()
	keys, err := st.List(t.Context(), account)
	if err != nil || len(keys) != 1 {
		t.Fatalf("List(%s) = %v, %v; want one key", account, keys, err)
	}
	return keys[0]
}

func testLastUsed(t *testing.T, st *apikey.SQLStore, _ *sql.DB, _ func(t *testing.T) (*apikey.SQLStore, error)) {
	_, plaintext := mustCreate(t, st, "acme", "ci")
	if got := listOne(t, st, "acme").LastUsedAt; !got.IsZero() {
		t.Fatalf("LastUsedAt = %v before any use, want zero", got)
	}
	before := time.Now().Add(-time.Second)
	k, err := st.Authenticate(t.Context(), plaintext)
	if err != nil {
		t.Fatal(err)
	}
	stored := listOne(t, st, "acme").LastUsedAt
	if stored.Before(before) || !stored.Equal(k.LastUsedAt) {
		t.Errorf("LastUsedAt = %v (Authenticate said %v), want now", stored, k.LastUsedAt)
	}
	// Within the granularity, a second use writes nothing.
	if _, err := st.Authenticate(t.Context(), plaintext); err != nil {
		t.Fatal(err)
	}
	if again := listOne(t, st, "acme").LastUsedAt; !again.Equal(stored) {
		t.Errorf("LastUsedAt moved from %v to %v within %v", stored, again, apikey.LastUsedGranularity)
	}
}

func testConcurrentOpens(t *testing.T, _ *apikey.SQLStore, raw *sql.DB, reopen func(t *testing.T) (*apikey.SQLStore, error)) {
	// Another store of the same database opened at once from several
	// goroutines (several processes, in production) migrates once.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = reopen(t) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	var n int
	if err := raw.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM apikey_schema_version`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("apikey_schema_version has %d rows, want 1", n)
	}
}

func testNewerSchemaRefused(t *testing.T, _ *apikey.SQLStore, raw *sql.DB, reopen func(t *testing.T) (*apikey.SQLStore, error)) {
	if _, err := raw.ExecContext(t.Context(), `INSERT INTO apikey_schema_version (version, applied_at) VALUES (99, CURRENT_TIMESTAMP)`); err != nil {
		t.Fatal(err)
	}
	_, err := reopen(t)
	if err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("open of a version 99 schema = %v, want an error naming version 99", err)
	}
}

func testCanceledContext(t *testing.T, st *apikey.SQLStore, _ *sql.DB, _ func(t *testing.T) (*apikey.SQLStore, error)) {
	k, plaintext := mustCreate(t, st, "acme", "ci")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := st.Create(ctx, "acme", "late"); err == nil {
		t.Error("Create with a canceled context succeeded")
	}
	if err := st.Revoke(ctx, "acme", k.ID); err == nil {
		t.Error("Revoke with a canceled context succeeded")
	}
	if _, err := st.Authenticate(ctx, plaintext); err == nil || errors.Is(err, apikey.ErrInvalid) {
		t.Errorf("Authenticate with a canceled context = %v, want a context error (not ErrInvalid)", err)
	}
	if got := listOne(t, st, "acme"); !got.Active() {
		t.Error("the key was revoked by a canceled Revoke")
	}
}

// TestOpenSQLite_SharesTheSubscriptionStoreFile opens both stores on one file,
// each with its own migrations, in either order.
func TestOpenSQLite_SharesTheSubscriptionStoreFile(t *testing.T) {
	for _, keysFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("keys first %t", keysFirst), func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "userhooks.db")
			var (
				keys *apikey.SQLStore
				subs *subscription.SQLiteStore
				err  error
			)
			openKeys := func() {
				if keys, err = apikey.OpenSQLite(ctx, path); err != nil {
					t.Fatalf("apikey.OpenSQLite: %v", err)
				}
				t.Cleanup(func() { keys.Close() })
			}
			openSubs := func() {
				if subs, err = subscription.OpenSQLite(path); err != nil {
					t.Fatalf("subscription.OpenSQLite: %v", err)
				}
				t.Cleanup(func() { subs.Close() })
			}
			if keysFirst {
				openKeys()
				openSubs()
			} else {
				openSubs()
				openKeys()
			}
			_, plaintext := mustCreate(t, keys, "acme", "ci")
			secret, err := signature.GenerateSecret()
			if err != nil {
				t.Fatal(err)
			}
			s := &subscription.Subscription{AccountID: "acme", URL: "https://receiver.example/hooks", Enabled: true,
				Secrets: []subscription.Secret{{Key: secret}}}
			if err := subs.Create(ctx, s); err != nil {
				t.Fatalf("subscription Create: %v", err)
			}
			if _, err := keys.Authenticate(ctx, plaintext); err != nil {
				t.Errorf("Authenticate: %v", err)
			}
			if _, err := subs.Get(ctx, s.ID); err != nil {
				t.Errorf("subscription Get: %v", err)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("database file mode = %v, want 0600", perm)
			}
		})
	}
}

func TestOpenSQLite_RefusesInMemoryDatabases(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if st, err := apikey.OpenSQLite(t.Context(), path); err == nil {
			st.Close()
			t.Errorf("OpenSQLite(%q) succeeded, want an error", path)
		}
	}
}

func TestNewSQLStore_RefusesUnknownDialect(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := apikey.NewSQLStore(t.Context(), db, "mysql"); err == nil {
		t.Error("NewSQLStore with dialect mysql succeeded")
	}
}
