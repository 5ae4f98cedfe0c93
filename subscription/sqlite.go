package subscription

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
)

// SQLiteStore is the Store kept in one SQLite database file. It is safe for
// concurrent use, and several processes (a worker and a CLI, say) may open the
// same file: the database runs in WAL mode, so readers never wait for the
// writer, and a writer waits up to five seconds for another process's write
// to finish. A committed write survives a crash of the process; an OS crash
// or power loss may undo the last few (the file stays consistent).
//
// Secrets are stored in their text form ("whsec_..."); encryption at rest is
// future work. Protect the file accordingly.
type SQLiteStore struct {
	// w has a single connection: writes of this process queue in Go, where
	// waiting honours contexts, instead of spinning on SQLite's busy handler.
	w *sql.DB
	// r serves reads, which WAL mode runs alongside the writer.
	r *sql.DB
}

var _ Store = (*SQLiteStore)(nil)

// sqliteBusyTimeout is how long a statement waits for a lock held by another
// connection (or process) before failing with SQLITE_BUSY.
const sqliteBusyTimeout = 5 * time.Second

// OpenSQLite opens the SQLite database at path, creating it (readable and
// writable by its owner only) if needed, and brings its schema up to date. It
// is safe to call from several processes at once. In-memory databases are
// refused, since the store uses several connections and each would see its
// own database: tests should use a file in t.TempDir().
func OpenSQLite(path string) (*SQLiteStore, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open subscription store: want the path of a database file, got %q (in-memory databases and URIs are not supported; use a file in a temporary directory)", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open subscription store %s: %w", path, err)
	}
	// The file holds secrets in clear: create it readable by its owner only.
	// SQLite gives the -wal and -shm files the database file's permissions.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open subscription store %s: %w", path, err)
	}
	busy := fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds())
	writeDSN := sqliteDSN(abs, url.Values{
		// busy_timeout first: switching to WAL needs a lock too.
		// synchronous(NORMAL) is SQLite's recommended pairing with WAL: a
		// commit does not wait for fsync, so an OS crash or power loss may
		// undo the last few commits, but never corrupts the file, and an
		// application crash loses nothing. About 3x faster writes here.
		"_pragma": {busy, "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"},
		// BEGIN IMMEDIATE: take the write lock when a transaction starts, so a
		// transaction never fails half-way upgrading a read lock.
		"_txlock": {"immediate"},
	})
	readDSN := sqliteDSN(abs, url.Values{
		"_pragma":     {busy},
		"_query_only": {"1"},
	})

	w, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("open subscription store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := migrateSQLite(context.Background(), w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open subscription store %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", readDSN)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open subscription store %s: %w", path, err)
	}
	if err := r.Ping(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open subscription store %s: %w", path, err)
	}
	return &SQLiteStore{w: w, r: r}, nil
}

// sqliteDSN builds a "file:" URI for the driver. The path is escaped, so
// names holding '?', '#' or '%' open the intended file; the driver reads the
// underscore parameters and SQLite ignores them.
func sqliteDSN(absPath string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(absPath), RawQuery: params.Encode()}
	return u.String()
}

// CountDisabled implements Store.
func (st *SQLiteStore) CountDisabled(ctx context.Context) (int, error) {
	var n int
	if err := st.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM subscriptions WHERE enabled = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count disabled subscriptions: %w", err)
	}
	return n, nil
}

// Ping implements Store.
func (st *SQLiteStore) Ping(ctx context.Context) error {
	var one int
	if err := st.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping subscription store: %w", err)
	}
	return nil
}

// Close closes the database. It is safe to call more than once.
func (st *SQLiteStore) Close() error {
	return errors.Join(st.r.Close(), st.w.Close())
}

// Create implements Store.
func (st *SQLiteStore) Create(ctx context.Context, s *Subscription) error {
	n := s.normalized()
	if n.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("create subscription: assign ID: %w", err)
		}
		n.ID = id.String()
	}
	if n.CreatedAt.IsZero() {
		n.CreatedAt = storedTime(time.Now())
	}
	if n.UpdatedAt.IsZero() {
		n.UpdatedAt = n.CreatedAt
	}
	n.Health = Health{}
	if err := n.Validate(); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	secrets, schedule, err := encodeSecretsAndSchedule(n)
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", n.ID, err)
	}
	err = st.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
INSERT INTO subscriptions (id, account_id, url, description, enabled, secrets, schedule, created_at, updated_at, max_in_flight)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING`,
			n.ID, n.AccountID, n.URL, n.Description, n.Enabled, secrets, schedule,
			formatTime(n.CreatedAt), formatTime(n.UpdatedAt), n.MaxInFlight)
		if err != nil {
			return err
		}
		if rows, err := res.RowsAffected(); err != nil {
			return err
		} else if rows == 0 {
			return ErrAlreadyExists
		}
		return insertEventTypes(ctx, tx, n.ID, n.EventTypes)
	})
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", n.ID, err)
	}
	*s = n
	return nil
}

// Update implements Store.
func (st *SQLiteStore) Update(ctx context.Context, s *Subscription) error {
	n := s.normalized()
	n.UpdatedAt = storedTime(time.Now())
	if err := n.validateForUpdate(); err != nil {
		return fmt.Errorf("update subscription %s: %w", n.ID, err)
	}
	secrets, schedule, err := encodeSecretsAndSchedule(n)
	if err != nil {
		return fmt.Errorf("update subscription %s: %w", n.ID, err)
	}
	err = st.writeTx(ctx, func(tx *sql.Tx) error {
		var (
			created string
			h       sqliteHealth
		)
		err := tx.QueryRowContext(ctx, `
UPDATE subscriptions
SET url = ?3, description = ?4, secrets = ?5, schedule = ?6, max_in_flight = ?9, updated_at = ?2, enabled = ?1,`+sqliteEnabledHealth+`
WHERE id = ?7 AND account_id = ?8
RETURNING created_at, `+sqliteHealthColumns,
			n.Enabled, formatTime(n.UpdatedAt), n.URL, n.Description, secrets, schedule,
			n.ID, n.AccountID, n.MaxInFlight).Scan(&created, &h.lastSuccessAt, &h.failingSince, &h.disabledReason, &h.disabledAt)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if n.CreatedAt, err = parseTime(created); err != nil {
			return fmt.Errorf("created_at: %w", err)
		}
		if n.Health, err = h.decode(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscription_event_types WHERE subscription_id = ?`, n.ID); err != nil {
			return err
		}
		return insertEventTypes(ctx, tx, n.ID, n.EventTypes)
	})
	if err != nil {
		return fmt.Errorf("update subscription %s: %w", n.ID, err)
	}
	*s = n
	return nil
}

// sqliteEnabledHealth is the part of a SET clause that keeps the health
// columns in step with a change of enabled to ?1 at time ?2 (see
// Store.SetEnabled). SET expressions read the row as it was before the
// statement, so enabled there is the old value.
const sqliteEnabledHealth = `
	failing_since   = CASE WHEN ?1 AND NOT enabled THEN NULL ELSE failing_since END,
	disabled_reason = CASE WHEN ?1 = enabled THEN disabled_reason ELSE NULL END,
	disabled_at     = CASE WHEN ?1 = enabled THEN disabled_at WHEN ?1 THEN NULL ELSE ?2 END`

// SetEnabled implements Store.
func (st *SQLiteStore) SetEnabled(ctx context.Context, id string, enabled bool) error {
	res, err := st.w.ExecContext(ctx, `UPDATE subscriptions SET enabled = ?1, updated_at = ?2,`+sqliteEnabledHealth+` WHERE id = ?3`,
		enabled, formatTime(time.Now()), id)
	if err == nil {
		err = mustAffectOne(res)
	}
	if err != nil {
		return fmt.Errorf("set subscription %s enabled=%t: %w", id, enabled, err)
	}
	return nil
}

// RecordAttempt implements Store. Both statements match no row when there
// is nothing to change, so a healthy endpoint's successes write nothing.
func (st *SQLiteStore) RecordAttempt(ctx context.Context, id string, ok bool, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("record attempt of subscription %s: the attempt's time is required", id)
	}
	var (
		res sql.Result
		err error
	)
	if ok {
		res, err = st.w.ExecContext(ctx, `
UPDATE subscriptions
SET last_success_at = CASE WHEN last_success_at IS NULL OR last_success_at < ?1 THEN ?1 ELSE last_success_at END,
    failing_since   = CASE WHEN failing_since > ?1 THEN failing_since END
WHERE id = ?2 AND (failing_since <= ?1 OR last_success_at IS NULL OR last_success_at < ?3)`,
			formatTime(at), id, formatTime(at.Add(-LastSuccessResolution)))
	} else {
		res, err = st.w.ExecContext(ctx, `
UPDATE subscriptions
SET failing_since = ?1
WHERE id = ?2 AND (failing_since IS NULL OR failing_since > ?1) AND (last_success_at IS NULL OR last_success_at < ?1)`,
			formatTime(at), id)
	}
	if err == nil {
		_, err = st.changedOrExists(ctx, res, id)
	}
	if err != nil {
		return fmt.Errorf("record attempt of subscription %s (success=%t): %w", id, ok, err)
	}
	return nil
}

// Disable implements Store.
func (st *SQLiteStore) Disable(ctx context.Context, id, reason string, at time.Time) (bool, error) {
	return st.disable(ctx, id, reason, at, time.Time{})
}

// DisableIfFailing implements Store.
func (st *SQLiteStore) DisableIfFailing(ctx context.Context, id, reason string, failingBefore, at time.Time) (bool, error) {
	if failingBefore.IsZero() {
		return false, fmt.Errorf("disable subscription %s if failing: the failure clock's limit is required", id)
	}
	return st.disable(ctx, id, reason, at, failingBefore)
}

// disable disables an enabled subscription; when failingBefore is not zero,
// only one failing since then or earlier.
func (st *SQLiteStore) disable(ctx context.Context, id, reason string, at, failingBefore time.Time) (bool, error) {
	if err := checkDisable(reason, at); err != nil {
		return false, fmt.Errorf("disable subscription %s: %w", id, err)
	}
	query := `UPDATE subscriptions SET enabled = 0, disabled_reason = ?1, disabled_at = ?2, updated_at = ?2 WHERE id = ?3 AND enabled = 1`
	args := []any{reason, formatTime(at), id}
	if !failingBefore.IsZero() {
		query += ` AND failing_since <= ?4`
		args = append(args, formatTime(failingBefore))
	}
	res, err := st.w.ExecContext(ctx, query, args...)
	var changed bool
	if err == nil {
		changed, err = st.changedOrExists(ctx, res, id)
	}
	if err != nil {
		return false, fmt.Errorf("disable subscription %s: %w", id, err)
	}
	return changed, nil
}

// changedOrExists reports whether a conditional UPDATE changed the row of
// id; when it did not, it returns ErrNotFound if there is no such row.
func (st *SQLiteStore) changedOrExists(ctx context.Context, res sql.Result, id string) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil || n > 0 {
		return n > 0, err
	}
	var one int
	err = st.r.QueryRowContext(ctx, `SELECT 1 FROM subscriptions WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	return false, err
}

// Delete implements Store.
func (st *SQLiteStore) Delete(ctx context.Context, id string) error {
	err := st.writeTx(ctx, func(tx *sql.Tx) error {
		// Explicit, although the foreign key cascades: this store's
		// connections enable foreign keys, but other tools may not.
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscription_event_types WHERE subscription_id = ?`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffectOne(res)
	})
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return nil
}

// The read queries select whole subscriptions joined to their event types,
// one row per (subscription, event type), or one row with a NULL type for a
// subscription of all types. Each is a single statement, so it reads one
// consistent snapshot. The page is chosen in a subquery, so LIMIT counts
// subscriptions, not rows.
const (
	selectColumns = `s.id, s.account_id, s.url, s.description, s.enabled, s.secrets, s.schedule, s.created_at, s.updated_at,
	s.last_success_at, s.failing_since, s.disabled_reason, s.disabled_at, s.max_in_flight, et.event_type`

	// sqliteHealthColumns are the health columns, in sqliteHealth's order.
	sqliteHealthColumns = `last_success_at, failing_since, disabled_reason, disabled_at`

	getQuery = `
SELECT ` + selectColumns + `
FROM subscriptions s
LEFT JOIN subscription_event_types et ON et.subscription_id = s.id
WHERE s.id = ?
ORDER BY et.event_type`

	listQuery = `
SELECT ` + selectColumns + `
FROM (
	SELECT * FROM subscriptions
	WHERE account_id = ? AND id > ?
	ORDER BY id
	LIMIT ?
) s
LEFT JOIN subscription_event_types et ON et.subscription_id = s.id
ORDER BY s.id, et.event_type`

	matchQuery = `
SELECT ` + selectColumns + `
FROM (
	SELECT * FROM subscriptions p
	WHERE p.account_id = ? AND p.enabled = 1 AND p.id > ?
	AND (
		NOT EXISTS (SELECT 1 FROM subscription_event_types t WHERE t.subscription_id = p.id)
		OR EXISTS (SELECT 1 FROM subscription_event_types t WHERE t.subscription_id = p.id AND t.event_type = ?)
	)
	ORDER BY p.id
	LIMIT ?
) s
LEFT JOIN subscription_event_types et ON et.subscription_id = s.id
ORDER BY s.id, et.event_type`
)

// Get implements Store.
func (st *SQLiteStore) Get(ctx context.Context, id string) (Subscription, error) {
	subs, err := st.query(ctx, getQuery, id)
	if err == nil && len(subs) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription %s: %w", id, err)
	}
	return subs[0], nil
}

// List implements Store.
func (st *SQLiteStore) List(ctx context.Context, accountID, afterID string, limit int) ([]Subscription, error) {
	if err := checkPage(accountID, limit); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	subs, err := st.query(ctx, listQuery, accountID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of account %s: %w", accountID, err)
	}
	return subs, nil
}

// Match implements Store.
func (st *SQLiteStore) Match(ctx context.Context, accountID, eventType, afterID string, limit int) ([]Subscription, error) {
	err := checkPage(accountID, limit)
	if err == nil && !slices.Contains(eventTypes, eventType) {
		err = fmt.Errorf("event type %s is not one of %s", quoteShort(eventType), strings.Join(eventTypes, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("match subscriptions: %w", err)
	}
	subs, err := st.query(ctx, matchQuery, accountID, afterID, eventType, limit)
	if err != nil {
		return nil, fmt.Errorf("match subscriptions of account %s to %s: %w", accountID, eventType, err)
	}
	return subs, nil
}

// query runs one of the read queries and folds its rows into subscriptions.
func (st *SQLiteStore) query(ctx context.Context, query string, args ...any) ([]Subscription, error) {
	rows, err := st.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var subs []Subscription
	for rows.Next() {
		var (
			row       sqliteRow
			eventType sql.NullString
		)
		if err := rows.Scan(&row.id, &row.accountID, &row.url, &row.description, &row.enabled,
			&row.secrets, &row.schedule, &row.createdAt, &row.updatedAt,
			&row.health.lastSuccessAt, &row.health.failingSince, &row.health.disabledReason, &row.health.disabledAt,
			&row.maxInFlight, &eventType); err != nil {
			return nil, err
		}
		if len(subs) == 0 || subs[len(subs)-1].ID != row.id {
			s, err := row.decode()
			if err != nil {
				return nil, err
			}
			subs = append(subs, s)
		}
		if eventType.Valid {
			last := &subs[len(subs)-1]
			last.EventTypes = append(last.EventTypes, eventType.String)
		}
	}
	return subs, rows.Err()
}

// writeTx runs fn in a transaction on the writer connection.
func (st *SQLiteStore) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func insertEventTypes(ctx context.Context, tx *sql.Tx, id string, types []string) error {
	for _, et := range types {
		if _, err := tx.ExecContext(ctx, `INSERT INTO subscription_event_types (subscription_id, event_type) VALUES (?, ?)`, id, et); err != nil {
			return err
		}
	}
	return nil
}

// mustAffectOne turns an UPDATE or DELETE that matched no row into
// ErrNotFound.
func mustAffectOne(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// sqliteRow is a subscriptions row as stored.
type sqliteRow struct {
	id, accountID, url, description string
	enabled                         bool
	secrets                         string
	schedule                        sql.NullString
	createdAt, updatedAt            string
	health                          sqliteHealth
	maxInFlight                     int
}

// sqliteHealth is the health columns of a row as stored.
type sqliteHealth struct {
	lastSuccessAt, failingSince, disabledReason, disabledAt sql.NullString
}

func (h sqliteHealth) decode() (Health, error) {
	var out Health
	for _, c := range []struct {
		name string
		col  sql.NullString
		dst  *time.Time
	}{
		{"last_success_at", h.lastSuccessAt, &out.LastSuccessAt},
		{"failing_since", h.failingSince, &out.FailingSince},
		{"disabled_at", h.disabledAt, &out.DisabledAt},
	} {
		if !c.col.Valid {
			continue
		}
		t, err := parseTime(c.col.String)
		if err != nil {
			return Health{}, fmt.Errorf("%s: %w", c.name, err)
		}
		*c.dst = t
	}
	out.DisabledReason = h.disabledReason.String
	return out, nil
}

// storedSecret is one element of the secrets column.
type storedSecret struct {
	Key       string `json:"key"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

func encodeSecretsAndSchedule(s Subscription) (secrets string, schedule sql.NullString, err error) {
	stored := make([]storedSecret, len(s.Secrets))
	for i, sec := range s.Secrets {
		stored[i].Key = sec.Key.Reveal()
		if !sec.ExpiresAt.IsZero() {
			stored[i].ExpiresAt = formatTime(sec.ExpiresAt)
		}
	}
	b, err := json.Marshal(stored)
	if err != nil {
		// Cannot happen for strings; say nothing that could hold a key.
		return "", schedule, errors.New("encode secrets failed")
	}
	if s.Schedule != nil {
		sb, err := json.Marshal(s.Schedule)
		if err != nil {
			return "", schedule, fmt.Errorf("encode schedule: %w", err)
		}
		schedule = sql.NullString{String: string(sb), Valid: true}
	}
	return string(b), schedule, nil
}

// decode turns a stored row into a Subscription (without event types). Its
// errors never quote the secrets column.
func (r sqliteRow) decode() (Subscription, error) {
	s := Subscription{
		ID:          r.id,
		AccountID:   r.accountID,
		URL:         r.url,
		Description: r.description,
		Enabled:     r.enabled,
		MaxInFlight: r.maxInFlight,
	}
	var err error
	if s.CreatedAt, err = parseTime(r.createdAt); err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: created_at: %w", r.id, err)
	}
	if s.UpdatedAt, err = parseTime(r.updatedAt); err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: updated_at: %w", r.id, err)
	}
	if s.Health, err = r.health.decode(); err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: %w", r.id, err)
	}
	if r.schedule.Valid {
		var sched delivery.Schedule
		if err := json.Unmarshal([]byte(r.schedule.String), &sched); err != nil {
			return Subscription{}, fmt.Errorf("subscription %s: schedule: %w", r.id, err)
		}
		s.Schedule = &sched
	}
	var stored []storedSecret
	if err := json.Unmarshal([]byte(r.secrets), &stored); err != nil {
		// Do not wrap: a JSON syntax error may quote part of a key.
		return Subscription{}, fmt.Errorf("subscription %s: stored secrets are not a valid JSON array of secrets", r.id)
	}
	for i, ss := range stored {
		key, err := signature.ParseSecret(ss.Key)
		if err != nil {
			// ParseSecret's errors describe the key without quoting it.
			return Subscription{}, fmt.Errorf("subscription %s: stored secrets[%d]: %w", r.id, i, err)
		}
		sec := Secret{Key: key}
		if ss.ExpiresAt != "" {
			if sec.ExpiresAt, err = parseTime(ss.ExpiresAt); err != nil {
				return Subscription{}, fmt.Errorf("subscription %s: stored secrets[%d] expiry: %w", r.id, i, err)
			}
		}
		s.Secrets = append(s.Secrets, sec)
	}
	return s, nil
}

// timeLayout is how times are stored: UTC, fixed width, so that text order
// is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Truncate(timePrecision).Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q is not RFC 3339", s)
	}
	return t.UTC(), nil
}
