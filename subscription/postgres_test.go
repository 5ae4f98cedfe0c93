package subscription_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/subscription/storetest"
)

// The PostgreSQL the tests use, and how to skip them.
const (
	postgresDSNEnv     = "USERHOOKS_TEST_POSTGRES_DSN"
	postgresSkipEnv    = "USERHOOKS_TEST_SKIP_POSTGRES"
	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// postgresUnreachable is why the test server cannot be used, or nil.
var postgresUnreachable = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
})

func adminDSN() string {
	if dsn := os.Getenv(postgresDSNEnv); dsn != "" {
		return dsn
	}
	return defaultPostgresDSN
}

// requirePostgres skips or fails the test when the test server is
// unreachable, and returns its DSN otherwise.
func requirePostgres(t *testing.T) string {
	t.Helper()
	if err := postgresUnreachable(); err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s (%s, or its default) is unreachable: %v\n"+
			"Run scripts/ensure-postgres.sh to start it, or set %s=1 to skip the PostgreSQL tests.",
			redactedDSN(adminDSN()), postgresDSNEnv, err, postgresSkipEnv)
		if os.Getenv(postgresSkipEnv) == "1" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return adminDSN()
}

// redactedDSN returns dsn without its password, for messages.
func redactedDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "the DSN in " + postgresDSNEnv
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// newPostgresSchema creates an empty schema, dropped when the test ends,
// and returns a DSN whose search_path is that schema: each test gets an
// empty store, and test binaries running at once do not collide.
func newPostgresSchema(t *testing.T) (dsn, schema string) {
	t.Helper()
	admin := requirePostgres(t)
	b := make([]byte, 8)
	rand.Read(b)
	schema = "userhooks_test_" + hex.EncodeToString(b)
	execAdmin(t, "CREATE SCHEMA "+schema)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, admin, schema), schema
}

// withSearchPath adds search_path=schema to a URL or keyword/value DSN,
// and synchronous_commit=off: the tests need no durability, and a commit
// that waits for no disk flush makes the thousands of inserts of the
// contract tests several times faster.
func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema + " synchronous_commit=off"
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s is not a URL", postgresDSNEnv)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return u.String()
}

// execAdmin runs SQL on the test server outside any store.
func execAdmin(t *testing.T, sql string, args ...any) {
	t.Helper()
	conn := connect(t, adminDSN())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// connect opens a plain connection, closed when the test ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func openPostgres(t *testing.T, dsn string) *subscription.PostgresStore {
	t.Helper()
	st, err := subscription.OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	return st
}

func TestPostgresStore_Contract(t *testing.T) {
	requirePostgres(t)
	storetest.Run(t, func(t *testing.T) subscription.Store {
		dsn, _ := newPostgresSchema(t)
		return openPostgres(t, dsn)
	})
}

func TestOpenPostgres_ConcurrentOpensMigrateOnce(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	const openers = 6
	start := make(chan struct{})
	errs := make(chan error, openers)
	var wg sync.WaitGroup
	for range openers {
		wg.Go(func() {
			<-start
			st, err := subscription.OpenPostgres(t.Context(), dsn)
			if err == nil {
				err = st.Close()
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("OpenPostgres while %d others open the same empty database: %v", openers-1, err)
		}
	}

	rows, err := connect(t, dsn).Query(t.Context(),
		`SELECT version, count(*) FROM `+subscription.PostgresVersionTable+` GROUP BY version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]int, error) {
		var vc [2]int
		return vc, r.Scan(&vc[0], &vc[1])
	})
	if err != nil {
		t.Fatal(err)
	}
	var want [][2]int
	for v := 1; v <= subscription.PostgresSchemaVersion; v++ {
		want = append(want, [2]int{v, 1})
	}
	if !slices.Equal(counts, want) {
		t.Errorf("(version, times recorded) = %v, want %v", counts, want)
	}
}

func TestOpenPostgres_ReopenKeepsDataAndMigratesNothing(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	st := openPostgres(t, dsn)
	s := newSubscription(t, "acct_reopen")
	if err := st.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openPostgres(t, dsn)
	defer st.Close()
	if _, err := st.Get(t.Context(), s.ID); err != nil {
		t.Fatalf("Get after reopening: %v", err)
	}
	var versions int
	if err := connect(t, dsn).QueryRow(t.Context(), `SELECT count(*) FROM `+subscription.PostgresVersionTable).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != subscription.PostgresSchemaVersion {
		t.Errorf("%s holds %d rows after opening twice, want %d", subscription.PostgresVersionTable, versions, subscription.PostgresSchemaVersion)
	}
}

// TestOpenPostgres_UpgradesAVersion1Database opens a database as the first
// release left it: its subscriptions are kept, with no health yet, and the
// store records health from then on.
func TestOpenPostgres_UpgradesAVersion1Database(t *testing.T) {
	ctx := t.Context()
	dsn, _ := newPostgresSchema(t)
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	const id = "01a2088a-0000-7000-8000-000000000001"
	db := connect(t, dsn)
	for _, stmt := range []string{
		`CREATE TABLE ` + subscription.PostgresVersionTable + ` (version integer NOT NULL PRIMARY KEY, applied_at timestamptz NOT NULL)`,
		subscription.PostgresMigration1,
		`INSERT INTO ` + subscription.PostgresVersionTable + ` VALUES (1, now())`,
		`INSERT INTO subscriptions (id, account_id, url, event_types, description, enabled, secrets, created_at, updated_at)
		 VALUES ('` + id + `', 'acct_v1', 'https://receiver.example/hooks', '{}', 'from v1', false, '[{"key":"` + key.Reveal() + `"}]',
		         '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z')`,
	} {
		if _, err := db.Exec(ctx, stmt); err != nil {
			t.Fatalf("build a version 1 database: %v", err)
		}
	}

	st := openPostgres(t, dsn)
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
	var version int
	if err := db.QueryRow(ctx, `SELECT MAX(version) FROM `+subscription.PostgresVersionTable).Scan(&version); err != nil || version != subscription.PostgresSchemaVersion {
		t.Errorf("schema version %d, %v; want %d", version, err, subscription.PostgresSchemaVersion)
	}
}

func TestOpenPostgres_RefusesNewerSchema(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	openPostgres(t, dsn).Close()
	if _, err := connect(t, dsn).Exec(t.Context(),
		`INSERT INTO `+subscription.PostgresVersionTable+` (version, applied_at) VALUES (99, now())`); err != nil {
		t.Fatal(err)
	}
	st, err := subscription.OpenPostgres(t.Context(), dsn)
	if err == nil {
		st.Close()
		t.Fatal("OpenPostgres of a database from a newer program: no error")
	}
	if !strings.Contains(err.Error(), "version 99") {
		t.Errorf("error %q does not say which version the database has", err)
	}
}

func TestOpenPostgres_RefusesATableItDidNotCreate(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	if _, err := connect(t, dsn).Exec(t.Context(), `CREATE TABLE subscriptions (name text)`); err != nil {
		t.Fatal(err)
	}
	st, err := subscription.OpenPostgres(t.Context(), dsn)
	if err == nil {
		st.Close()
		t.Fatal("OpenPostgres over someone else's subscriptions table: no error")
	}
	if !strings.Contains(err.Error(), `"subscriptions" already exists`) {
		t.Errorf("error %q does not name the table in the way", err)
	}
}

func TestOpenPostgres_SchemaKeepsTimesAndComparesIDsByteWise(t *testing.T) {
	dsn, schema := newPostgresSchema(t)
	openPostgres(t, dsn).Close()
	rows, err := connect(t, dsn).Query(t.Context(), `
SELECT column_name, data_type, COALESCE(collation_name, '')
FROM information_schema.columns
WHERE table_schema = $1 AND table_name = 'subscriptions'`, schema)
	if err != nil {
		t.Fatal(err)
	}
	type column struct{ typ, collation string }
	got := map[string]column{}
	for rows.Next() {
		var name string
		var c column
		if err := rows.Scan(&name, &c.typ, &c.collation); err != nil {
			t.Fatal(err)
		}
		got[name] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]column{
		"id":          {"text", "C"},
		"account_id":  {"text", "C"},
		"event_types": {"ARRAY", ""},
		"created_at":  {"timestamp with time zone", ""},
		"updated_at":  {"timestamp with time zone", ""},
	} {
		if got[name] != want {
			t.Errorf("column %s is %+v, want %+v", name, got[name], want)
		}
	}
}

// TestPostgresStore_PagesInByteOrder checks the order List and Match page
// in: byte order, as in Go and SQLite, not the database's locale (in most
// locales "F" sorts after "a").
func TestPostgresStore_PagesInByteOrder(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	st := openPostgres(t, dsn)
	defer st.Close()
	var want []string
	for _, id := range []string{"10000000-0000-7000-8000-000000000000", "a0000000-0000-7000-8000-000000000000"} {
		s := newSubscription(t, "acct_order")
		s.ID = id
		if err := st.Create(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	for after, want := range map[string][]string{"": want, "F": want[1:], "0": want, "b": nil} {
		listed, err := st.List(t.Context(), "acct_order", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		matched, err := st.Match(t.Context(), "acct_order", "user.created", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(listed), want) || !slices.Equal(ids(matched), want) {
			t.Errorf("after %q: List = %q, Match = %q; want %q", after, ids(listed), ids(matched), want)
		}
	}
}

// TestPostgresStore_TextPostgresCannotHold passes strings that PostgreSQL
// cannot take as text (invalid UTF-8, NUL): lookups find nothing, as in the
// SQLite store, rather than failing; a URL it cannot store is invalid.
func TestPostgresStore_TextPostgresCannotHold(t *testing.T) {
	ctx := t.Context()
	dsn, _ := newPostgresSchema(t)
	st := openPostgres(t, dsn)
	defer st.Close()
	var stored []string
	for range 3 {
		s := newSubscription(t, "acct_text")
		if err := st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, s.ID)
	}
	slices.Sort(stored)

	for _, id := range []string{"\xff", stored[0] + "\x00"} {
		_, getErr := st.Get(ctx, id)
		_, disableErr := st.Disable(ctx, id, "a reason", time.Now())
		_, disableIfErr := st.DisableIfFailing(ctx, id, "a reason", time.Now(), time.Now())
		for op, err := range map[string]error{
			"Get":              getErr,
			"SetEnabled":       st.SetEnabled(ctx, id, false),
			"RecordAttempt":    st.RecordAttempt(ctx, id, false, time.Now()),
			"Disable":          disableErr,
			"DisableIfFailing": disableIfErr,
			"Delete":           st.Delete(ctx, id),
		} {
			if !errors.Is(err, subscription.ErrNotFound) {
				t.Errorf("%s(%q): err = %v, want ErrNotFound", op, id, err)
			}
		}
	}
	for _, account := range []string{"acct_text\xff", "acct_text\x00"} {
		listed, listErr := st.List(ctx, account, "", 10)
		matched, matchErr := st.Match(ctx, account, "user.created", "", 10)
		if len(listed) != 0 || listErr != nil || len(matched) != 0 || matchErr != nil {
			t.Errorf("List, Match of account %q = %d, %v, %d, %v; want nothing, no error", account, len(listed), listErr, len(matched), matchErr)
		}
	}

	// After "ID\x00…" comes exactly what comes after "ID".
	after := stored[0] + "\x00zzz"
	listed, err := st.List(ctx, "acct_text", after, 10)
	if err != nil || !slices.Equal(ids(listed), stored[1:]) {
		t.Errorf("List after %q = %q, %v; want %q", after, ids(listed), err, stored[1:])
	}
	if _, err := st.List(ctx, "acct_text", "\xff", 10); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("List after an invalid UTF-8 ID: err = %v, want one saying so", err)
	}
	if _, err := st.Match(ctx, "acct_text", "user.created", "\xff", 10); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("Match after an invalid UTF-8 ID: err = %v, want one saying so", err)
	}

	bad := newSubscription(t, "acct_text_url")
	bad.URL = "https://receiver.example/\xff"
	var verr *subscription.ValidationError
	if err := st.Create(ctx, bad); !errors.As(err, &verr) || !strings.Contains(err.Error(), "url") {
		t.Errorf("Create with a URL that is not UTF-8: err = %v, want a ValidationError naming url", err)
	}
	if subs, err := st.List(ctx, "acct_text_url", "", 10); err != nil || len(subs) != 0 {
		t.Errorf("after a refused Create, List = %d subscriptions, %v", len(subs), err)
	}
}

// TestPostgresStore_CorruptSecretsAreNotDisclosed damages the stored secrets
// in ways that make reading them fail, and checks that no error quotes them.
func TestPostgresStore_CorruptSecretsAreNotDisclosed(t *testing.T) {
	ctx := t.Context()
	dsn, _ := newPostgresSchema(t)
	st := openPostgres(t, dsn)
	defer st.Close()
	db := connect(t, dsn)

	short := base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key")) // too short to parse
	leaky := "whsec_" + short
	for name, column := range map[string]string{
		"short key":      `[{"key":"` + leaky + `"}]`,
		"not base64":     `[{"key":"whsec_` + short + `!!"}]`,
		"not an array":   `"` + leaky + `"`,
		"object":         `{"key":"` + leaky + `"}`,
		"bad expiry":     `[{"key":"` + leaky + `","expires_at":"soon"}]`,
		"number for key": `[{"key":12345,"note":"` + leaky + `"}]`,
	} {
		t.Run(name, func(t *testing.T) {
			s := newSubscription(t, "acct_corrupt_"+strings.ReplaceAll(name, " ", "_"))
			if err := st.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(ctx, `UPDATE subscriptions SET secrets = $1::jsonb WHERE id = $2`, column, s.ID); err != nil {
				t.Fatal(err)
			}
			_, getErr := st.Get(ctx, s.ID)
			_, listErr := st.List(ctx, s.AccountID, "", 10)
			_, matchErr := st.Match(ctx, s.AccountID, "user.created", "", 10)
			for op, err := range map[string]error{"Get": getErr, "List": listErr, "Match": matchErr} {
				if err == nil {
					t.Errorf("%s of a subscription with corrupt secrets: no error", op)
				} else if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), short) {
					t.Errorf("%s error discloses the stored secret: %v", op, err)
				}
			}
		})
	}
}

// TestOpenPostgres_ErrorsNeverContainThePassword makes opening fail in
// every way it can, with a password in the DSN or the environment, and
// checks that no error shows it, as written or URL-escaped.
func TestOpenPostgres_ErrorsNeverContainThePassword(t *testing.T) {
	const pw = "Hunter2-s3cr3t"
	tests := []struct {
		name, dsn string
		env       string // PGPASSWORD
		secrets   []string
	}{
		{"unreachable port", "postgres://postgres:" + pw + "@127.0.0.1:1/postgres?sslmode=disable", "", nil},
		{"unparsable port", "postgres://postgres:" + pw + "@127.0.0.1:notaport/postgres", "", nil},
		// pgx masks the password in its parse errors by pattern; a ':'
		// in the password defeats the pattern.
		{"colon in password, bad port", "postgres://postgres:" + pw + ":more@127.0.0.1:bad/postgres", "", nil},
		{"escaped password", "postgres://postgres:" + url.PathEscape(pw+"/@%:") + "@127.0.0.1:1/postgres?sslmode=disable", "",
			[]string{url.PathEscape(pw + "/@%:"), url.QueryEscape(pw + "/@%:")}},
		{"bad sslmode", "postgres://postgres:" + pw + "@127.0.0.1:5432/postgres?sslmode=bogus", "", nil},
		{"password parameter", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&password=" + pw, "", nil},
		{"keyword/value, unreachable", "host=127.0.0.1 port=1 user=postgres password=" + pw + " dbname=postgres sslmode=disable", "", nil},
		{"keyword/value, quoted, bad port", "host=127.0.0.1 port=nope user=postgres password='" + pw + " x' dbname=postgres", "", nil},
		{"keyword/value, broken quote", "host=127.0.0.1 user=postgres password='" + pw, "", nil},
		{"PGPASSWORD, unreachable", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable", pw, nil},
		{"bad pool setting", "postgres://postgres:" + pw + "@127.0.0.1:1/postgres?pool_max_conns=many", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("PGPASSWORD", tc.env)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			st, err := subscription.OpenPostgres(ctx, tc.dsn)
			if err == nil {
				st.Close()
				t.Fatal("OpenPostgres: no error")
			}
			assertNoSecret(t, err, append([]string{pw}, tc.secrets...))
			if !strings.Contains(err.Error(), "PostgreSQL") {
				t.Errorf("error %q does not say it is about PostgreSQL", err)
			}
		})
	}

	t.Run("missing database", func(t *testing.T) {
		admin := requirePostgres(t)
		u, err := url.Parse(admin)
		if err != nil || u.Host == "" {
			t.Skipf("%s is not a URL", postgresDSNEnv)
		}
		u.User = url.UserPassword(u.User.Username(), pw)
		u.Path = "/userhooks_no_such_database"
		_, err = subscription.OpenPostgres(t.Context(), u.String())
		if err == nil {
			t.Fatal("OpenPostgres of a missing database: no error")
		}
		assertNoSecret(t, err, []string{pw})
		if !strings.Contains(err.Error(), "userhooks_no_such_database") {
			t.Errorf("error %q does not name the database", err)
		}
	})
}

func assertNoSecret(t *testing.T, err error, secrets []string) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("error discloses the password %q: %s", s, text)
			}
		}
	}
	t.Logf("error: %v", err)
}

func ids(subs []subscription.Subscription) []string {
	var out []string
	for _, s := range subs {
		out = append(out, s.ID)
	}
	return out
}
