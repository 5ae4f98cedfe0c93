package stores_test

import (
	"context"
	"crypto/rand"
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

	"github.com/jackc/pgx/v5"

	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/subscription/stores"
)

// roundTrip checks that st works: what it creates, it returns.
func roundTrip(t *testing.T, st subscription.Store) {
	t.Helper()
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	s := &subscription.Subscription{
		AccountID: "acct_stores",
		URL:       "https://receiver.example/hooks",
		Enabled:   true,
		Secrets:   []subscription.Secret{{Key: key}},
	}
	if err := st.Create(t.Context(), s); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := st.Get(t.Context(), s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.URL != s.URL || !got.Secrets[0].Key.Equal(key) {
		t.Errorf("Get returned %s with URL %q, want %q and the created key", got.ID, got.URL, s.URL)
	}
}

func open(t *testing.T, dsn string) subscription.Store {
	t.Helper()
	st, err := stores.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open(%q): %v", stores.Redacted(dsn), err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestOpen_SQLiteFormsOpenTheNamedFile(t *testing.T) {
	dir := t.TempDir()
	escapedDir := (&url.URL{Path: filepath.ToSlash(dir)}).EscapedPath()
	tests := []struct {
		name, dsn, file string
	}{
		{"absolute path", filepath.Join(dir, "plain.db"), "plain.db"},
		{"relative path", "relative.db", "relative.db"},
		{"relative path in a directory", "./sub/rel.db", "sub/rel.db"},
		{"sqlite: absolute", "sqlite:" + filepath.Join(dir, "a.db"), "a.db"},
		{"sqlite: relative", "sqlite:rel.db", "rel.db"},
		{"sqlite:///", "sqlite://" + escapedDir + "/b.db", "b.db"},
		{"sqlite://localhost/", "sqlite://localhost" + escapedDir + "/c.db", "c.db"},
		{"SQLITE: in capitals", "SQLITE:" + filepath.Join(dir, "caps.db"), "caps.db"},
		{"file: absolute", "file:" + filepath.Join(dir, "d.db"), "d.db"},
		{"file:///", "file://" + escapedDir + "/e.db", "e.db"},
		{"percent-escaped name", "sqlite://" + escapedDir + "/odd%20name%3F.db", "odd name?.db"},
	}
	t.Chdir(dir)
	if err := os.Mkdir("sub", 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t, tc.dsn)
			if _, ok := st.(*subscription.SQLiteStore); !ok {
				t.Fatalf("Open(%q) returned a %T, want a *subscription.SQLiteStore", tc.dsn, st)
			}
			roundTrip(t, st)
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Errorf("Open(%q) did not create %s: %v", tc.dsn, tc.file, err)
			}
		})
	}
}

func TestOpen_RefusesWhatItCannotOpen(t *testing.T) {
	const pw = "Hunter2-s3cr3t"
	tests := []struct {
		name, dsn string
		want      string // in the error
	}{
		{"empty", "", "no store given"},
		{"blank", "  ", "no store given"},
		{"mysql URL", "mysql://root:" + pw + "@db:3306/userhooks", `unsupported store scheme "mysql"`},
		{"http URL", "https://db.example/", `unsupported store scheme "https"`},
		{"colon in a file name", "backup:subs.db", "write ./NAME"},
		{"long scheme", strings.Repeat("x", 100) + ":" + pw, "unsupported store scheme"},
		{"postgres without //", "postgres:" + pw + "@db/userhooks", "postgres://user:password@host"},
		{"keyword/value", "host=127.0.0.1 user=postgres password=" + pw + " dbname=userhooks", "keyword/value"},
		{"sqlite with parameters", "sqlite:subs.db?mode=ro", "takes no parameters"},
		{"sqlite with a fragment", "file:subs.db#x", "takes no parameters"},
		{"sqlite with a host", "sqlite://data/subs.db", "names a host"},
		{"sqlite with user info", "sqlite://me:" + pw + "@/subs.db", "names a host"},
		{"sqlite without a path", "sqlite:", "names no file"},
		{"file:// without a path", "file://", "names no file"},
		{"bad escape", "sqlite:bad%zz.db", "%"},
		{"in-memory", "file::memory:", "in-memory"},
		{"postgres parse error", "postgres://postgres:" + pw + "@127.0.0.1:bad/userhooks", "cannot parse"},
		{"postgres unreachable", "postgresql://postgres:" + pw + "@127.0.0.1:1/userhooks?sslmode=disable", "connect"},
	}
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := stores.Open(t.Context(), tc.dsn)
			if err == nil {
				st.Close()
				t.Fatalf("Open: no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), pw) {
				t.Errorf("error discloses the password: %v", err)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused stores left files behind: %v", entries)
	}
}

func TestOpen_CanceledContextOpensNothing(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	st, err := stores.Open(ctx, filepath.Join(dir, "never.db"))
	if !errors.Is(err, context.Canceled) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("Open with a canceled context: err = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a canceled Open created %v", entries)
	}
}

func TestOpen_PostgresURLsOpenPostgres(t *testing.T) {
	dsn := newPostgresSchema(t)
	for _, scheme := range []string{"postgres", "postgresql", "PostgreSQL"} {
		t.Run(scheme, func(t *testing.T) {
			_, rest, _ := strings.Cut(dsn, "://")
			st := open(t, scheme+"://"+rest)
			if _, ok := st.(*subscription.PostgresStore); !ok {
				t.Fatalf("Open returned a %T, want a *subscription.PostgresStore", st)
			}
			roundTrip(t, st)
		})
	}
}

func TestSQLitePath_NamesTheFileOfSQLiteStoresOnly(t *testing.T) {
	tests := []struct {
		dsn    string
		want   string
		sqlite bool
	}{
		{".userhooks/userhooks.db", ".userhooks/userhooks.db", true},
		{"/var/lib/userhooks/subs.db", "/var/lib/userhooks/subs.db", true},
		{"sqlite:data/subs.db", "data/subs.db", true},
		{"sqlite:///var/lib/my%20subs.db", "/var/lib/my subs.db", true},
		{"file:/var/lib/subs.db", "/var/lib/subs.db", true},
		{"postgres://app:pw@db/userhooks", "", false},
		{"postgresql://db/userhooks", "", false},
		{"mysql://db/userhooks", "", false},
		{"sqlite://host/subs.db", "", false},
		{"host=db dbname=userhooks", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := stores.SQLitePath(tc.dsn)
		if got != tc.want || ok != tc.sqlite {
			t.Errorf("SQLitePath(%q) = %q, %t; want %q, %t", tc.dsn, got, ok, tc.want, tc.sqlite)
		}
	}
}

func TestRedacted_HidesPasswordsOnly(t *testing.T) {
	for dsn, want := range map[string]string{
		"/var/lib/userhooks/subs.db":                         "/var/lib/userhooks/subs.db",
		"sqlite:///var/lib/subs.db":                          "/var/lib/subs.db",
		"postgres://app:Hunter2@db:5432/userhooks?sslmode=x": "postgres://app:xxxxx@db:5432/userhooks?sslmode=x",
		"postgresql://app@db/userhooks?password=Hunter2":     "postgresql://app@db/userhooks?password=xxxxx",
		"postgres://app@db/userhooks":                        "postgres://app@db/userhooks",
		"mysql://root:Hunter2@db/userhooks":                  "mysql:…",
		"host=db password=Hunter2":                           "(invalid store)",
		"":                                                   "(invalid store)",
	} {
		if got := stores.Redacted(dsn); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", dsn, got, want)
		}
	}
}

// The PostgreSQL the tests use; the same settings as the subscription
// package's tests.
const (
	postgresDSNEnv     = "USERHOOKS_TEST_POSTGRES_DSN"
	postgresSkipEnv    = "USERHOOKS_TEST_SKIP_POSTGRES"
	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

func adminDSN() string {
	if dsn := os.Getenv(postgresDSNEnv); dsn != "" {
		return dsn
	}
	return defaultPostgresDSN
}

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

// newPostgresSchema creates an empty schema, dropped when the test ends,
// and returns a postgres:// DSN whose search_path is that schema. It skips
// or fails the test when PostgreSQL is unreachable.
func newPostgresSchema(t *testing.T) string {
	t.Helper()
	if err := postgresUnreachable(); err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s (%s, or its default) is unreachable: %v\n"+
			"Run scripts/ensure-postgres.sh to start it, or set %s=1 to skip the PostgreSQL tests.",
			stores.Redacted(adminDSN()), postgresDSNEnv, err, postgresSkipEnv)
		if os.Getenv(postgresSkipEnv) == "1" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	u, err := url.Parse(adminDSN())
	if err != nil || u.Host == "" {
		t.Skipf("%s is not a postgres:// URL", postgresDSNEnv)
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "userhooks_test_" + hex.EncodeToString(b)
	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, adminDSN())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
