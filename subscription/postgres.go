package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
)

// PostgresStore is the Store kept in a PostgreSQL database, which workers on
// several hosts can share. It is safe for concurrent use; several processes
// may open the same database at once (the first brings the schema up to date,
// the others wait for it). Every write is one statement, so a committed write
// is whole and durable as PostgreSQL makes it.
//
// Secrets are stored in their text form ("whsec_..."); encryption at rest is
// future work. Restrict access to the database accordingly.
type PostgresStore struct {
	pool *pgxpool.Pool
}

var _ Store = (*PostgresStore)(nil)

// Connection pool settings that OpenPostgres uses unless the DSN (or, for
// the last two, PGCONNECT_TIMEOUT and PGAPPNAME) sets them.
const (
	// Every query is one short statement, so ten connections serve
	// thousands of queries a second, and a dozen workers stay within
	// PostgreSQL's default max_connections of 100.
	postgresMaxConns = 10
	// An idle worker keeps few connections.
	postgresMaxConnIdleTime = 5 * time.Minute
	// Connections are replaced regularly, not all at once, so that a
	// failover or a DNS change reaches every worker.
	postgresMaxConnLifetime       = 30 * time.Minute
	postgresMaxConnLifetimeJitter = 5 * time.Minute
	// One connection attempt, whatever the caller's context allows.
	postgresConnectTimeout = 10 * time.Second
	// Names the store's sessions in pg_stat_activity.
	postgresApplicationName = "userhooks"
)

// OpenPostgres connects to the PostgreSQL database named by dsn and brings
// its schema up to date. It is safe to call from several processes at once:
// a transaction-level advisory lock makes each migration run exactly once.
//
// dsn is a URL, postgres://user:password@host:port/database?sslmode=verify-full,
// or a keyword/value string (host=... dbname=...); libpq's PG* environment
// variables fill in what it leaves out. The tables go into the first schema
// of the search_path (add search_path=name to choose one); the role needs
// the right to create tables there on first use.
//
// The store keeps a pool of at most 10 connections, closes those idle for 5
// minutes, replaces each after 30 to 35 minutes, gives up on a connection
// attempt after 10 seconds and names its sessions "userhooks"; the DSN may
// say otherwise (pool_max_conns, pool_max_conn_idle_time,
// pool_max_conn_lifetime, pool_max_conn_lifetime_jitter, connect_timeout,
// application_name). Behind PgBouncer in transaction mode, add
// default_query_exec_mode=exec.
//
// Errors never contain the password, neither from the DSN nor from the
// environment. ctx bounds connecting and migrating, not the store's life.
func OpenPostgres(ctx context.Context, dsn string) (*PostgresStore, error) {
	cfg, err := postgresPoolConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL subscription store: %w", err)
	}
	// The password may also come from PGPASSWORD or a .pgpass file.
	secrets := append(dsnPasswords(dsn), cfg.ConnConfig.Password)
	fail := func(step string, err error) error {
		return fmt.Errorf("open PostgreSQL subscription store %s: %s: %w", postgresWhere(cfg), step, redact(err, secrets))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fail("create connection pool", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fail("connect", err)
	}
	if err := migratePostgres(ctx, pool); err != nil {
		pool.Close()
		return nil, fail("migrate schema", err)
	}
	return &PostgresStore{pool: pool}, nil
}

// postgresPoolConfig parses dsn and applies the store's pool defaults to
// the settings it leaves out.
func postgresPoolConfig(dsn string) (*pgxpool.Config, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("the DSN is empty; want postgres://user:password@host:port/database?sslmode=... (postgres:// alone takes everything from the PG* environment variables)")
	}
	// pgx keeps settings it does not know, pool_* among them, as run-time
	// parameters: this tells which pool settings the DSN makes.
	conn, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, dsnError(dsn, err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, dsnError(dsn, err)
	}
	sets := func(key string) bool { _, ok := conn.RuntimeParams[key]; return ok }
	if !sets("pool_max_conns") {
		cfg.MaxConns = postgresMaxConns
	}
	if !sets("pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = postgresMaxConnIdleTime
	}
	if !sets("pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = postgresMaxConnLifetime
	}
	if !sets("pool_max_conn_lifetime_jitter") {
		cfg.MaxConnLifetimeJitter = postgresMaxConnLifetimeJitter
	}
	// connect_timeout and application_name may also come from PGCONNECT_TIMEOUT
	// and PGAPPNAME, which ParseConfig has already read.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = postgresConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = postgresApplicationName
	}
	return cfg, nil
}

// dsnError describes why dsn cannot be parsed without quoting it: pgx's
// message quotes the DSN with the password masked by pattern, and the
// patterns miss some spellings (a password holding ':', say).
func dsnError(dsn string, err error) error {
	msg := err.Error()
	var perr *pgconn.ParseConfigError
	if errors.As(err, &perr) {
		if _, after, ok := strings.Cut(msg, "`: "); ok {
			msg = after
		} else {
			msg = "invalid DSN"
		}
	}
	return fmt.Errorf("cannot parse the DSN (want postgres://user:password@host:port/database?sslmode=...): %s",
		scrub(msg, dsnPasswords(dsn)))
}

// kvPassword finds the password of a keyword/value DSN.
var kvPassword = regexp.MustCompile(`(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// dsnPasswords returns what may be a password in dsn, as written and
// unescaped, even when dsn does not parse: every error is scrubbed of them.
func dsnPasswords(dsn string) []string {
	var found []string
	add := func(p string) {
		if p != "" {
			found = append(found, p)
			if u, err := url.PathUnescape(p); err == nil && u != p {
				found = append(found, u)
			}
		}
	}
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
			}
		}
		if u, err := url.Parse(dsn); err == nil {
			if pw, ok := u.User.Password(); ok {
				add(pw)
			}
			add(u.Query().Get("password"))
		}
	} else {
		for _, m := range kvPassword.FindAllStringSubmatch(dsn, -1) {
			p := m[1]
			if len(p) >= 2 && p[0] == '\'' {
				add(p[1 : len(p)-1])
				p = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(p[1 : len(p)-1])
			}
			add(p)
		}
	}
	return found
}

// scrub replaces every secret in msg.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// redact returns err unchanged when its text holds none of the secrets
// (pgx's messages never do), and otherwise the scrubbed text alone.
func redact(err error, secrets []string) error {
	msg := err.Error()
	if clean := scrub(msg, secrets); clean != msg {
		return errors.New(clean)
	}
	return err
}

// postgresWhere names the database of cfg for messages: user, host, port
// and database, never the password.
func postgresWhere(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("%s@%s/%s", c.User, net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))), c.Database)
}

// CountDisabled implements Store.
func (st *PostgresStore) CountDisabled(ctx context.Context) (int, error) {
	var n int
	if err := st.pool.QueryRow(ctx, `SELECT COUNT(*) FROM subscriptions WHERE NOT enabled`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count disabled subscriptions: %w", err)
	}
	return n, nil
}

// Ping implements Store.
func (st *PostgresStore) Ping(ctx context.Context) error {
	if err := st.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping subscription store: %w", err)
	}
	return nil
}

// Close closes the store's connections. It is safe to call more than once.
func (st *PostgresStore) Close() error {
	st.pool.Close()
	return nil
}

// Create implements Store.
func (st *PostgresStore) Create(ctx context.Context, s *Subscription) error {
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
	if err := postgresValidate(n, n.Validate()); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	secrets, schedule, err := encodePostgres(n)
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", n.ID, err)
	}
	tag, err := st.pool.Exec(ctx, `
INSERT INTO subscriptions (id, account_id, url, event_types, description, enabled, secrets, schedule, created_at, updated_at, max_in_flight)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO NOTHING`,
		n.ID, n.AccountID, n.URL, postgresTypes(n.EventTypes), n.Description, n.Enabled, secrets, schedule,
		n.CreatedAt, n.UpdatedAt, n.MaxInFlight)
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrAlreadyExists
	}
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", n.ID, err)
	}
	*s = n
	return nil
}

// Update implements Store.
func (st *PostgresStore) Update(ctx context.Context, s *Subscription) error {
	n := s.normalized()
	n.UpdatedAt = storedTime(time.Now())
	if err := postgresValidate(n, n.validateForUpdate()); err != nil {
		return fmt.Errorf("update subscription %s: %w", n.ID, err)
	}
	secrets, schedule, err := encodePostgres(n)
	if err != nil {
		return fmt.Errorf("update subscription %s: %w", n.ID, err)
	}
	var (
		created time.Time
		h       postgresHealth
	)
	err = st.pool.QueryRow(ctx, `
UPDATE subscriptions
SET url = $3, event_types = $4, description = $5, secrets = $6, schedule = $7, max_in_flight = $10, updated_at = $2, enabled = $1,`+postgresEnabledHealth+`
WHERE id = $8 AND account_id = $9
RETURNING created_at, `+postgresHealthColumns,
		n.Enabled, n.UpdatedAt, n.URL, postgresTypes(n.EventTypes), n.Description, secrets, schedule,
		n.ID, n.AccountID, n.MaxInFlight).Scan(&created, &h.lastSuccessAt, &h.failingSince, &h.disabledReason, &h.disabledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("update subscription %s: %w", n.ID, err)
	}
	n.CreatedAt = created.UTC()
	n.Health = h.decode()
	*s = n
	return nil
}

// postgresEnabledHealth is the part of a SET clause that keeps the health
// columns in step with a change of enabled to $1 at time $2 (see
// Store.SetEnabled). SET expressions read the row as it was before the
// statement, so enabled there is the old value.
const postgresEnabledHealth = `
	failing_since   = CASE WHEN $1 AND NOT enabled THEN NULL ELSE failing_since END,
	disabled_reason = CASE WHEN $1 = enabled THEN disabled_reason END,
	disabled_at     = CASE WHEN $1 = enabled THEN disabled_at WHEN $1 THEN NULL ELSE $2::timestamptz END`

// SetEnabled implements Store.
func (st *PostgresStore) SetEnabled(ctx context.Context, id string, enabled bool) error {
	err := ErrNotFound
	if postgresText(id) {
		var tag pgconn.CommandTag
		tag, err = st.pool.Exec(ctx, `UPDATE subscriptions SET enabled = $1, updated_at = $2,`+postgresEnabledHealth+` WHERE id = $3`,
			enabled, storedTime(time.Now()), id)
		if err == nil && tag.RowsAffected() == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("set subscription %s enabled=%t: %w", id, enabled, err)
	}
	return nil
}

// RecordAttempt implements Store. Both statements match no row when there
// is nothing to change, so a healthy endpoint's successes write nothing.
func (st *PostgresStore) RecordAttempt(ctx context.Context, id string, ok bool, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("record attempt of subscription %s: the attempt's time is required", id)
	}
	err := ErrNotFound
	if postgresText(id) {
		at = storedTime(at)
		var tag pgconn.CommandTag
		if ok {
			tag, err = st.pool.Exec(ctx, `
UPDATE subscriptions
SET last_success_at = GREATEST(last_success_at, $1),
    failing_since   = CASE WHEN failing_since > $1 THEN failing_since END
WHERE id = $2 AND (failing_since <= $1 OR last_success_at IS NULL OR last_success_at < $3)`,
				at, id, at.Add(-LastSuccessResolution))
		} else {
			tag, err = st.pool.Exec(ctx, `
UPDATE subscriptions
SET failing_since = $1
WHERE id = $2 AND (failing_since IS NULL OR failing_since > $1) AND (last_success_at IS NULL OR last_success_at < $1)`,
				at, id)
		}
		if err == nil {
			_, err = st.changedOrExists(ctx, tag, id)
		}
	}
	if err != nil {
		return fmt.Errorf("record attempt of subscription %s (success=%t): %w", id, ok, err)
	}
	return nil
}

// Disable implements Store.
func (st *PostgresStore) Disable(ctx context.Context, id, reason string, at time.Time) (bool, error) {
	return st.disable(ctx, id, reason, at, time.Time{})
}

// DisableIfFailing implements Store.
func (st *PostgresStore) DisableIfFailing(ctx context.Context, id, reason string, failingBefore, at time.Time) (bool, error) {
	if failingBefore.IsZero() {
		return false, fmt.Errorf("disable subscription %s if failing: the failure clock's limit is required", id)
	}
	return st.disable(ctx, id, reason, at, failingBefore)
}

// disable disables an enabled subscription; when failingBefore is not zero,
// only one failing since then or earlier.
func (st *PostgresStore) disable(ctx context.Context, id, reason string, at, failingBefore time.Time) (bool, error) {
	if err := checkDisable(reason, at); err != nil {
		return false, fmt.Errorf("disable subscription %s: %w", id, err)
	}
	var changed bool
	err := ErrNotFound
	if postgresText(id) {
		query := `UPDATE subscriptions SET enabled = false, disabled_reason = $1, disabled_at = $2, updated_at = $2 WHERE id = $3 AND enabled`
		args := []any{reason, storedTime(at), id}
		if !failingBefore.IsZero() {
			query += ` AND failing_since <= $4`
			args = append(args, storedTime(failingBefore))
		}
		var tag pgconn.CommandTag
		tag, err = st.pool.Exec(ctx, query, args...)
		if err == nil {
			changed, err = st.changedOrExists(ctx, tag, id)
		}
	}
	if err != nil {
		return false, fmt.Errorf("disable subscription %s: %w", id, err)
	}
	return changed, nil
}

// changedOrExists reports whether a conditional UPDATE changed the row of
// id; when it did not, it returns ErrNotFound if there is no such row.
func (st *PostgresStore) changedOrExists(ctx context.Context, tag pgconn.CommandTag, id string) (bool, error) {
	if tag.RowsAffected() > 0 {
		return true, nil
	}
	var exists bool
	if err := st.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = $1)`, id).Scan(&exists); err != nil {
		return false, err
	}
	if !exists {
		return false, ErrNotFound
	}
	return false, nil
}

// Delete implements Store.
func (st *PostgresStore) Delete(ctx context.Context, id string) error {
	err := ErrNotFound
	if postgresText(id) {
		var tag pgconn.CommandTag
		tag, err = st.pool.Exec(ctx, `DELETE FROM subscriptions WHERE id = $1`, id)
		if err == nil && tag.RowsAffected() == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return nil
}

// The read queries. Each subscription is one row, so LIMIT counts
// subscriptions; the (account_id, id) index yields rows in ID order, and the
// scan stops after LIMIT matches.
const (
	postgresColumns = `id, account_id, url, event_types, description, enabled, secrets, schedule, created_at, updated_at, ` + postgresHealthColumns + `, max_in_flight`

	// postgresHealthColumns are the health columns, in postgresHealth's
	// order.
	postgresHealthColumns = `last_success_at, failing_since, disabled_reason, disabled_at`

	postgresGetQuery = `SELECT ` + postgresColumns + ` FROM subscriptions WHERE id = $1`

	postgresListQuery = `
SELECT ` + postgresColumns + `
FROM subscriptions
WHERE account_id = $1 AND id > $2
ORDER BY id
LIMIT $3`

	postgresMatchQuery = `
SELECT ` + postgresColumns + `
FROM subscriptions
WHERE account_id = $1 AND enabled AND id > $2
AND (cardinality(event_types) = 0 OR $3 = ANY (event_types))
ORDER BY id
LIMIT $4`
)

// Get implements Store.
func (st *PostgresStore) Get(ctx context.Context, id string) (Subscription, error) {
	var (
		subs []Subscription
		err  error
	)
	if postgresText(id) {
		subs, err = st.query(ctx, postgresGetQuery, id)
	}
	if err == nil && len(subs) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription %s: %w", id, err)
	}
	return subs[0], nil
}

// List implements Store.
func (st *PostgresStore) List(ctx context.Context, accountID, afterID string, limit int) ([]Subscription, error) {
	err := checkPage(accountID, limit)
	if err == nil {
		afterID, err = postgresAfterID(afterID)
	}
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	if !postgresText(accountID) {
		return nil, nil // Validate refuses such account IDs: none is stored
	}
	subs, err := st.query(ctx, postgresListQuery, accountID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of account %s: %w", accountID, err)
	}
	return subs, nil
}

// Match implements Store.
func (st *PostgresStore) Match(ctx context.Context, accountID, eventType, afterID string, limit int) ([]Subscription, error) {
	err := checkPage(accountID, limit)
	if err == nil && !slices.Contains(eventTypes, eventType) {
		err = fmt.Errorf("event type %s is not one of %s", quoteShort(eventType), strings.Join(eventTypes, ", "))
	}
	if err == nil {
		afterID, err = postgresAfterID(afterID)
	}
	if err != nil {
		return nil, fmt.Errorf("match subscriptions: %w", err)
	}
	if !postgresText(accountID) {
		return nil, nil // Validate refuses such account IDs: none is stored
	}
	subs, err := st.query(ctx, postgresMatchQuery, accountID, afterID, eventType, limit)
	if err != nil {
		return nil, fmt.Errorf("match subscriptions of account %s to %s: %w", accountID, eventType, err)
	}
	return subs, nil
}

// query runs one of the read queries.
func (st *PostgresStore) query(ctx context.Context, query string, args ...any) ([]Subscription, error) {
	rows, err := st.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var subs []Subscription
	for rows.Next() {
		var r postgresRow
		if err := rows.Scan(&r.id, &r.accountID, &r.url, &r.eventTypes, &r.description, &r.enabled,
			&r.secrets, &r.schedule, &r.createdAt, &r.updatedAt,
			&r.health.lastSuccessAt, &r.health.failingSince, &r.health.disabledReason, &r.health.disabledAt,
			&r.maxInFlight); err != nil {
			return nil, err
		}
		s, err := r.decode()
		if err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	return subs, rows.Err()
}

// postgresText reports whether PostgreSQL can hold s in a text column: it
// is valid UTF-8 without NUL characters. A lookup by a string that is not
// cannot match a stored value.
func postgresText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// postgresAfterID returns afterID in a form PostgreSQL can take, comparing
// as afterID does. Cutting at a NUL keeps the comparison exact: stored IDs
// hold no NUL, so an ID is greater than "abc\x00…" exactly when it is
// greater than "abc". Invalid UTF-8 has no such equivalent and is refused.
func postgresAfterID(afterID string) (string, error) {
	if !utf8.ValidString(afterID) {
		return "", fmt.Errorf("after ID %s is not valid UTF-8", quoteShort(afterID))
	}
	if i := strings.IndexByte(afterID, 0); i >= 0 {
		afterID = afterID[:i]
	}
	return afterID, nil
}

// postgresValidate adds to err (the result of Validate) what PostgreSQL
// cannot store although Validate accepts it: a URL that is not valid UTF-8.
// Every other text field is checked by Validate.
func postgresValidate(s Subscription, err error) error {
	if utf8.ValidString(s.URL) {
		return err
	}
	problem := "url is not valid UTF-8"
	var verr *ValidationError
	if errors.As(err, &verr) {
		return &ValidationError{Problems: append(append([]string(nil), verr.Problems...), problem)}
	}
	return &ValidationError{Problems: []string{problem}}
}

// postgresTypes returns the event_types column value: never NULL.
func postgresTypes(types []string) []string {
	if types == nil {
		return []string{}
	}
	return types
}

// encodePostgres returns the secrets and schedule columns, as JSON text
// (pgx sends a string to a jsonb parameter as is). The JSON is the SQLite
// store's, so data moves between the two unchanged.
func encodePostgres(s Subscription) (secrets string, schedule any, err error) {
	secrets, sched, err := encodeSecretsAndSchedule(s)
	if err != nil {
		return "", nil, err
	}
	if sched.Valid {
		schedule = sched.String
	}
	return secrets, schedule, nil
}

// postgresRow is a subscriptions row as stored.
type postgresRow struct {
	id, accountID, url, description string
	eventTypes                      []string
	enabled                         bool
	secrets, schedule               []byte
	createdAt, updatedAt            time.Time
	health                          postgresHealth
	maxInFlight                     int32
}

// postgresHealth is the health columns of a row; nil is NULL.
type postgresHealth struct {
	lastSuccessAt, failingSince, disabledAt *time.Time
	disabledReason                          *string
}

func (h postgresHealth) decode() Health {
	// pgx returns times in the local zone.
	utc := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return t.UTC()
	}
	out := Health{LastSuccessAt: utc(h.lastSuccessAt), FailingSince: utc(h.failingSince), DisabledAt: utc(h.disabledAt)}
	if h.disabledReason != nil {
		out.DisabledReason = *h.disabledReason
	}
	return out
}

// decode turns a stored row into a Subscription. Its errors never quote the
// secrets column.
func (r postgresRow) decode() (Subscription, error) {
	s := Subscription{
		ID:          r.id,
		AccountID:   r.accountID,
		URL:         r.url,
		Description: r.description,
		Enabled:     r.enabled,
		MaxInFlight: int(r.maxInFlight),
		// pgx returns times in the local zone.
		CreatedAt: r.createdAt.UTC(),
		UpdatedAt: r.updatedAt.UTC(),
		Health:    r.health.decode(),
	}
	if len(r.eventTypes) > 0 {
		s.EventTypes = r.eventTypes
	}
	if r.schedule != nil {
		var sched delivery.Schedule
		if err := json.Unmarshal(r.schedule, &sched); err != nil {
			return Subscription{}, fmt.Errorf("subscription %s: schedule: %w", r.id, err)
		}
		s.Schedule = &sched
	}
	var stored []storedSecret
	if err := json.Unmarshal(r.secrets, &stored); err != nil {
		// Do not wrap: a JSON error may quote part of a key.
		return Subscription{}, fmt.Errorf("subscription %s: stored secrets are not a JSON array of secrets", r.id)
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
