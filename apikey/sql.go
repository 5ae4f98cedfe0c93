package apikey

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)
)

// Dialect names the SQL database behind a SQLStore. The two differ in
// placeholders (? against $1), timestamp types and migration locking.
type Dialect string

// The supported dialects.
const (
	// SQLite is modernc.org/sqlite, driver name "sqlite".
	SQLite Dialect = "sqlite"
	// PostgreSQL is github.com/jackc/pgx/v5/stdlib, driver name "pgx".
	PostgreSQL Dialect = "postgres"
)

// SQLStore is the Store kept in a SQL database, SQLite or PostgreSQL. It is
// safe for concurrent use, by several processes too. Its tables (api_keys,
// and apikey_schema_version for its migrations) may live in the same
// database as other stores' tables: the subscription store's file, say.
type SQLStore struct {
	db      *sql.DB
	dialect Dialect
	ownsDB  bool
	now     func() time.Time
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store over db, an open database of the given dialect,
// after bringing its tables up to date. The caller keeps ownership of db:
// Close does not close it. A SQLite db should set a busy timeout on its
// connections (OpenSQLite does), so that writers in several processes wait
// for one another instead of failing.
func NewSQLStore(ctx context.Context, db *sql.DB, d Dialect) (*SQLStore, error) {
	if d != SQLite && d != PostgreSQL {
		return nil, fmt.Errorf("open API key store: unknown dialect %q, want %q or %q", d, SQLite, PostgreSQL)
	}
	st := &SQLStore{db: db, dialect: d, now: time.Now}
	if err := st.migrate(ctx); err != nil {
		return nil, fmt.Errorf("open API key store: %w", err)
	}
	return st, nil
}

// sqliteBusyTimeout is how long a statement waits for another connection's
// (or process's) write lock.
const sqliteBusyTimeout = 5 * time.Second

// OpenSQLite opens (creating it, readable and writable by its owner only, if
// needed) the SQLite database file at path and returns a store over it. The
// file may be the subscription store's: the tables do not clash. Close
// closes the database. In-memory databases are refused, since each of the
// store's connections would see its own.
func OpenSQLite(ctx context.Context, path string) (*SQLStore, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open API key store: want the path of a database file, got %q (in-memory databases and URIs are not supported)", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open API key store %s: %w", path, err)
	}
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open API key store %s: %w", path, err)
	}
	dsn := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: url.Values{
		// busy_timeout first: switching to WAL needs a lock too. WAL lets
		// Authenticate read while another connection writes.
		"_pragma": {fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()), "journal_mode(WAL)", "synchronous(NORMAL)"},
		// Transactions take the write lock when they begin, so none fails
		// half-way upgrading a read lock.
		"_txlock": {"immediate"},
	}.Encode()}
	db, err := sql.Open("sqlite", dsn.String())
	if err != nil {
		return nil, fmt.Errorf("open API key store %s: %w", path, err)
	}
	st, err := NewSQLStore(ctx, db, SQLite)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open API key store %s: %w", path, err)
	}
	st.ownsDB = true
	return st, nil
}

// Close closes the database if OpenSQLite opened it. It is safe to call more
// than once.
func (st *SQLStore) Close() error {
	if st.ownsDB {
		return st.db.Close()
	}
	return nil
}

// Create implements Store.
func (st *SQLStore) Create(ctx context.Context, accountID, name string) (Key, string, error) {
	if err := validateCreate(accountID, name); err != nil {
		return Key{}, "", fmt.Errorf("create API key: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Key{}, "", fmt.Errorf("create API key: assign ID: %w", err)
	}
	plaintext, hash, err := newToken()
	if err != nil {
		return Key{}, "", fmt.Errorf("create API key: %w", err)
	}
	k := Key{
		ID:            id.String(),
		AccountID:     accountID,
		Name:          name,
		DisplayPrefix: displayPrefix(plaintext),
		CreatedAt:     storedTime(st.now()),
	}
	_, err = st.db.ExecContext(ctx, st.q(`
INSERT INTO api_keys (id, account_id, name, display_prefix, key_hash, created_at)
VALUES (?, ?, ?, ?, ?, ?)`),
		k.ID, k.AccountID, k.Name, k.DisplayPrefix, hash, st.timeArg(k.CreatedAt))
	if err != nil {
		return Key{}, "", fmt.Errorf("create API key for account %s: %w", accountID, err)
	}
	return k, plaintext, nil
}

// Authenticate implements Store. A successful call records the key's use
// when LastUsedAt is older than LastUsedGranularity; failing to record it
// does not refuse the key.
func (st *SQLStore) Authenticate(ctx context.Context, plaintext string) (Key, error) {
	// Malformed keys are refused before the database is asked.
	if !wellFormed(plaintext) {
		return Key{}, ErrInvalid
	}
	hash := hashToken(plaintext)
	var (
		k          Key
		storedHash string
		created    dbTime
		revoked    dbTime
		lastUsed   dbTime
	)
	err := st.db.QueryRowContext(ctx, st.q(`
SELECT id, account_id, name, display_prefix, key_hash, created_at, revoked_at, last_used_at
FROM api_keys WHERE key_hash = ?`), hash).
		Scan(&k.ID, &k.AccountID, &k.Name, &k.DisplayPrefix, &storedHash, &created, &revoked, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrInvalid
	}
	if err != nil {
		return Key{}, fmt.Errorf("authenticate API key: %w", err)
	}
	// The database matched on equality already; comparing again in constant
	// time costs nothing and does not rely on how the index compares.
	if subtle.ConstantTimeCompare([]byte(storedHash), []byte(hash)) != 1 {
		return Key{}, ErrInvalid
	}
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = created.t, revoked.t, lastUsed.t
	if !k.Active() {
		return Key{}, ErrInvalid
	}
	if now := storedTime(st.now()); now.Sub(k.LastUsedAt) >= LastUsedGranularity {
		// The condition keeps concurrent requests from moving the time
		// backwards and makes most of them no-ops.
		_, err := st.db.ExecContext(ctx, st.q(`
UPDATE api_keys SET last_used_at = ?
WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`),
			st.timeArg(now), k.ID, st.timeArg(now.Add(-LastUsedGranularity)))
		if err == nil {
			k.LastUsedAt = now
		}
	}
	return k, nil
}

// List implements Store.
func (st *SQLStore) List(ctx context.Context, accountID string) ([]Key, error) {
	rows, err := st.db.QueryContext(ctx, st.q(`
SELECT id, account_id, name, display_prefix, created_at, revoked_at, last_used_at
FROM api_keys WHERE account_id = ? ORDER BY id`), accountID)
	if err != nil {
		return nil, fmt.Errorf("list API keys of account %s: %w", accountID, err)
	}
	defer rows.Close()
	var keys []Key
	for rows.Next() {
		var (
			k                          Key
			created, revoked, lastUsed dbTime
		)
		if err := rows.Scan(&k.ID, &k.AccountID, &k.Name, &k.DisplayPrefix, &created, &revoked, &lastUsed); err != nil {
			return nil, fmt.Errorf("list API keys of account %s: %w", accountID, err)
		}
		k.CreatedAt, k.RevokedAt, k.LastUsedAt = created.t, revoked.t, lastUsed.t
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API keys of account %s: %w", accountID, err)
	}
	return keys, nil
}

// Revoke implements Store.
func (st *SQLStore) Revoke(ctx context.Context, accountID, id string) error {
	res, err := st.db.ExecContext(ctx, st.q(`
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?)
WHERE id = ? AND account_id = ?`),
		st.timeArg(storedTime(st.now())), id, accountID)
	if err != nil {
		return fmt.Errorf("revoke API key %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke API key %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("revoke API key %s of account %s: %w", id, accountID, ErrNotFound)
	}
	return nil
}

// q rewrites a query written with ? placeholders for the store's dialect.
// The queries of this package contain no other question marks.
func (st *SQLStore) q(query string) string {
	if st.dialect != PostgreSQL {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// timeLayout is how SQLite stores times: UTC, fixed width, so that text
// order is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// timeArg returns t as a query argument: text on SQLite, a timestamptz on
// PostgreSQL.
func (st *SQLStore) timeArg(t time.Time) any {
	if st.dialect == SQLite {
		return t.UTC().Format(timeLayout)
	}
	return t.UTC()
}

// storedTime returns t as the store keeps it: UTC at microsecond precision
// (PostgreSQL's).
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// dbTime scans a nullable time column of either dialect: a time.Time from
// PostgreSQL, text from SQLite.
type dbTime struct{ t time.Time }

func (d *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		d.t = time.Time{}
	case time.Time:
		d.t = v.UTC()
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("stored time has type %T, want a time or text", src)
	}
	return nil
}

func (d *dbTime) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("stored time %q is not RFC 3339", s)
	}
	d.t = t.UTC()
	return nil
}
