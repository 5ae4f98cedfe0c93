package subscription_test

import (
	"database/sql"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/subscription/storetest"
)

func openSQLite(t *testing.T, path string) *subscription.SQLiteStore {
	t.Helper()
	st, err := subscription.OpenSQLite(path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return st
}

// openRaw opens the store's file directly, to inspect or tamper with rows.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSubscription(t *testing.T, accountID string) *subscription.Subscription {
	t.Helper()
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return &subscription.Subscription{
		AccountID: accountID,
		URL:       "https://receiver.example/hooks",
		Enabled:   true,
		Secrets:   []subscription.Secret{{Key: key}},
	}
}

func TestSQLiteStore_Contract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) subscription.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "subscriptions.db"))
	})
}

func TestSQLiteStore_TwoStoresOnOneFileSeeEachOthersWrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "shared.db")
	a := openSQLite(t, path)
	defer a.Close()
	b := openSQLite(t, path)
	defer b.Close()

	s := newSubscription(t, "acct_shared")
	if err := a.Create(ctx, s); err != nil {
		t.Fatalf("Create through a: %v", err)
	}
	if _, err := b.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get through b of what a created: %v", err)
	}
	if err := b.SetEnabled(ctx, s.ID, false); err != nil {
		t.Fatalf("SetEnabled through b: %v", err)
	}
	if got, err := a.Get(ctx, s.ID); err != nil || got.Enabled {
		t.Fatalf("Get through a after b disabled: Enabled = %t, err = %v; want false, nil", got.Enabled, err)
	}
	if err := a.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete through a: %v", err)
	}
	if _, err := b.Get(ctx, s.ID); !errors.Is(err, subscription.ErrNotFound) {
		t.Fatalf("Get through b after a deleted: err = %v, want ErrNotFound", err)
	}

	// Both write at once: each waits for the other's lock instead of failing.
	const perStore = 100
	var wg sync.WaitGroup
	for _, st := range []*subscription.SQLiteStore{a, b} {
		wg.Go(func() {
			for range perStore {
				if err := st.Create(ctx, newSubscription(t, "acct_both")); err != nil {
					t.Errorf("Create while the other store writes: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for name, st := range map[string]*subscription.SQLiteStore{"a": a, "b": b} {
		subs, err := st.List(ctx, "acct_both", "", subscription.MaxPageSize)
		if err != nil || len(subs) != 2*perStore {
			t.Errorf("List through %s = %d subscriptions, %v; want %d", name, len(subs), err, 2*perStore)
		}
	}
}

func TestOpenSQLite_ReopenKeepsDataInWALMode(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "reopen.db")
	st := openSQLite(t, path)
	s := newSubscription(t, "acct_reopen")
	if err := st.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	st = openSQLite(t, path)
	defer st.Close()
	if _, err := st.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get after reopening: %v", err)
	}
	db := openRaw(t, path)
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var versions int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_version`).Scan(&versions); err != nil || versions != subscription.SQLiteSchemaVersion {
		t.Errorf("schema_version holds %d rows, %v; want %d after opening twice", versions, err, subscription.SQLiteSchemaVersion)
	}
}

// TestOpenSQLite_UpgradesAVersion1Database opens a database as the first
// release left it: its subscriptions are kept, with no health yet, and
// the store records health from then on.
func TestOpenSQLite_UpgradesAVersion1Database(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v1.db")
	db := openRaw(t, path)
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	const id = "01a2088a-0000-7000-8000-000000000001"
	for _, stmt := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)`,
		subscription.SQLiteMigration1,
		`INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00.000000Z')`,
		`INSERT INTO subscriptions (id, account_id, url, description, enabled, secrets, schedule, created_at, updated_at)
		 VALUES ('` + id + `', 'acct_v1', 'https://receiver.example/hooks', 'from v1', 0, '[{"key":"` + key.Reveal() + `"}]', NULL,
		         '2026-01-01T00:00:00.000000Z', '2026-01-02T00:00:00.000000Z')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("build a version 1 database: %v", err)
		}
	}
	db.Close()

	st := openSQLite(t, path)
	defer st.Close()
	got, err := st.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get after upgrading: %v", err)
	}
	if got.Description != "from v1" || got.Enabled || got.Health != (subscription.Health{}) {
		t.Errorf("after upgrading: Description %q, Enabled %t, Health %+v; want the v1 row with no health", got.Description, got.Enabled, got.Health)
	}
	if err := st.SetEnabled(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := st.RecordAttempt(ctx, id, false, at); err != nil {
		t.Fatalf("RecordAttempt after upgrading: %v", err)
	}
	if got, err := st.Get(ctx, id); err != nil || got.Health.FailingSince != at {
		t.Errorf("after upgrading and recording a failure: Health = %+v, %v; want FailingSince %v", got.Health, err, at)
	}
	var versions int
	if err := openRaw(t, path).QueryRow(`SELECT MAX(version) FROM schema_version`).Scan(&versions); err != nil || versions != subscription.SQLiteSchemaVersion {
		t.Errorf("schema version %d, %v; want %d", versions, err, subscription.SQLiteSchemaVersion)
	}
}

func TestOpenSQLite_RefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.db")
	openSQLite(t, path).Close()
	if _, err := openRaw(t, path).Exec(`INSERT INTO schema_version (version, applied_at) VALUES (99, 'later')`); err != nil {
		t.Fatal(err)
	}
	st, err := subscription.OpenSQLite(path)
	if err == nil {
		st.Close()
		t.Fatal("OpenSQLite of a database from a newer program: no error")
	}
	if !strings.Contains(err.Error(), "version 99") {
		t.Errorf("error %q does not say which version the database has", err)
	}
}

func TestOpenSQLite_RefusesInMemoryDatabases(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if st, err := subscription.OpenSQLite(path); err == nil {
			st.Close()
			t.Errorf("OpenSQLite(%q): no error", path)
		}
	}
}

func TestOpenSQLite_PathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "odd ?name#with%25")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "subs.db")
	st := openSQLite(t, path)
	defer st.Close()
	if err := st.Create(t.Context(), newSubscription(t, "acct_odd")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not where asked: %v", err)
	}
}

func TestSQLiteStore_StoresUTCMicrosecondText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "times.db")
	st := openSQLite(t, path)
	defer st.Close()
	s := newSubscription(t, "acct_times")
	if err := st.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	var created string
	if err := openRaw(t, path).QueryRow(`SELECT created_at FROM subscriptions WHERE id = ?`, s.ID).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if want := s.CreatedAt.Format("2006-01-02T15:04:05.000000Z"); created != want {
		t.Errorf("created_at stored as %q, want %q", created, want)
	}
}

// TestSQLiteStore_CorruptSecretsAreNotDisclosed damages the stored secrets
// in ways that make reading them fail, and checks that no error quotes them.
func TestSQLiteStore_CorruptSecretsAreNotDisclosed(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "corrupt.db")
	st := openSQLite(t, path)
	defer st.Close()
	db := openRaw(t, path)

	short := base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key")) // too short to parse
	leaky := "whsec_" + short
	for name, column := range map[string]string{
		"short key":      `[{"key":"` + leaky + `"}]`,
		"not base64":     `[{"key":"whsec_` + short + `!!"}]`,
		"broken JSON":    `[{"key":"` + leaky + `"`,
		"not an array":   `"` + leaky + `"`,
		"bad expiry":     `[{"key":"` + leaky + `","expires_at":"soon"}]`,
		"number for key": `[{"key":12345,"note":"` + leaky + `"}]`,
	} {
		t.Run(name, func(t *testing.T) {
			s := newSubscription(t, "acct_corrupt_"+strings.ReplaceAll(name, " ", "_"))
			if err := st.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`UPDATE subscriptions SET secrets = ? WHERE id = ?`, column, s.ID); err != nil {
				t.Fatal(err)
			}
			_, getErr := st.Get(ctx, s.ID)
			_, listErr := st.List(ctx, s.AccountID, "", 10)
			_, matchErr := st.Match(ctx, s.AccountID, "user.created", "", 10)
			for op, err := range map[string]error{"Get": getErr, "List": listErr, "Match": matchErr} {
				if err == nil {
					t.Errorf("%s of a subscription with corrupt secrets: no error", op)
				} else if strings.Contains(err.Error(), short) {
					t.Errorf("%s error discloses the stored secret: %v", op, err)
				}
			}
		})
	}
}

func TestOpenSQLite_NewFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.db")
	st := openSQLite(t, path)
	defer st.Close()
	if err := st.Create(t.Context(), newSubscription(t, "acct_private")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others (it holds secrets)", filepath.Base(name), perm)
		}
	}
}
