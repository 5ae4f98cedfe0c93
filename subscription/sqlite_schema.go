package subscription

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// sqliteMigrations are the schema changes of the SQLite store, in order:
// applying sqliteMigrations[i] brings the schema to version i+1. Add a
// change by appending to the list; never edit an entry that has shipped.
//
// The statements use IF NOT EXISTS so that a half-created schema (or one made
// before versioning existed) is completed rather than refused.
var sqliteMigrations = []string{
	// 1: subscriptions and the event types they accept.
	`
CREATE TABLE IF NOT EXISTS subscriptions (
	id          TEXT    NOT NULL PRIMARY KEY,
	account_id  TEXT    NOT NULL,
	url         TEXT    NOT NULL,
	description TEXT    NOT NULL DEFAULT '',
	enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
	-- JSON array of {"key": "whsec_...", "expires_at": "..."}, newest first.
	-- Plain text for now: encryption at rest is future work.
	secrets     TEXT    NOT NULL,
	-- JSON delivery.Schedule; NULL means the default schedule.
	schedule    TEXT,
	-- UTC, RFC 3339 with microseconds: text order is time order.
	created_at  TEXT    NOT NULL,
	updated_at  TEXT    NOT NULL
);

-- Match and List walk one account's subscriptions in ID order.
CREATE INDEX IF NOT EXISTS subscriptions_account_id_id ON subscriptions (account_id, id);

-- One row per accepted event type; no rows means all types. A child table
-- rather than a JSON column, so that Match filters in plain SQL and its
-- LIMIT is exact.
CREATE TABLE IF NOT EXISTS subscription_event_types (
	subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
	event_type      TEXT NOT NULL,
	PRIMARY KEY (subscription_id, event_type)
);
`,
	// 2: endpoint health (see Health), written by RecordAttempt, Disable,
	// DisableIfFailing and SetEnabled. ADD COLUMN has no IF NOT EXISTS in
	// SQLite; the migration transaction makes the four all or nothing.
	// Times as in migration 1; NULL means none.
	`
ALTER TABLE subscriptions ADD COLUMN last_success_at TEXT;
ALTER TABLE subscriptions ADD COLUMN failing_since   TEXT;
ALTER TABLE subscriptions ADD COLUMN disabled_reason TEXT;
ALTER TABLE subscriptions ADD COLUMN disabled_at     TEXT;
`,
	// 3: the per-endpoint concurrency limit (Subscription.MaxInFlight); 0
	// means none, which is what existing subscriptions get.
	`
ALTER TABLE subscriptions ADD COLUMN max_in_flight INTEGER NOT NULL DEFAULT 0 CHECK (max_in_flight >= 0);
`,
}

// migrateSQLite brings the schema of db up to date, in one transaction, so
// that processes opening the same file at once apply each migration exactly
// once (the transaction takes the write lock up front; see _txlock in the
// DSN).
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `
CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at TEXT    NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_version table: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(sqliteMigrations) {
		return fmt.Errorf("database schema is version %d, newer than the %d this program knows; upgrade the program", current, len(sqliteMigrations))
	}
	for v := current + 1; v <= len(sqliteMigrations); v++ {
		if _, err := tx.ExecContext(ctx, sqliteMigrations[v-1]); err != nil {
			return fmt.Errorf("apply schema version %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
			v, formatTime(time.Now())); err != nil {
			return fmt.Errorf("record schema version %d: %w", v, err)
		}
	}
	return tx.Commit()
}
