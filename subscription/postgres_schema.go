package subscription

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresMigrations are the schema changes of the PostgreSQL store, in
// order: applying postgresMigrations[i] brings the schema to version i+1.
// Add a change by appending to the list; never edit an entry that has
// shipped. Each runs inside the migration transaction, so it must not use
// statements that refuse transactions (CREATE INDEX CONCURRENTLY).
//
// The tables go into the first schema of the connection's search_path.
// Unlike the SQLite store's, the statements do not say IF NOT EXISTS: a
// migration is all or nothing, so an existing table that the version table
// does not account for belongs to something else, and opening fails rather
// than use it.
var postgresMigrations = []string{
	// 1: subscriptions, with the event types they accept.
	`
CREATE TABLE subscriptions (
	-- COLLATE "C": IDs and account IDs compare byte by byte, as in Go and in
	-- the SQLite store, whatever the database's locale; List and Match page
	-- by id > $after in this order.
	id          text COLLATE "C" NOT NULL PRIMARY KEY,
	account_id  text COLLATE "C" NOT NULL,
	url         text        NOT NULL,
	-- Sorted, without duplicates; empty means all event types. An array
	-- rather than a child table: a subscription is one row, Match filters it
	-- in its WHERE clause, and LIMIT counts subscriptions exactly.
	event_types text[]      NOT NULL DEFAULT '{}',
	description text        NOT NULL DEFAULT '',
	enabled     boolean     NOT NULL,
	-- JSON array of {"key": "whsec_...", "expires_at": "..."}, newest first,
	-- as in the SQLite store. Plain text for now: encryption at rest is
	-- future work.
	secrets     jsonb       NOT NULL,
	-- JSON delivery.Schedule; NULL means the default schedule.
	schedule    jsonb,
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL
);

-- List and Match walk one account's subscriptions in ID order from the
-- given ID and stop after LIMIT matches, checking enabled and event_types on
-- the way. With three event types, an index on event_types (GIN) would
-- select too little to be worth its writes.
CREATE INDEX subscriptions_account_id_id ON subscriptions (account_id, id);
`,
	// 2: endpoint health (see Health), written by RecordAttempt, Disable,
	// DisableIfFailing and SetEnabled. Nullable columns without a default:
	// adding them rewrites no row. NULL means none.
	`
ALTER TABLE subscriptions
	ADD COLUMN last_success_at timestamptz,
	ADD COLUMN failing_since   timestamptz,
	ADD COLUMN disabled_reason text,
	ADD COLUMN disabled_at     timestamptz;
`,
	// 3: the per-endpoint concurrency limit (Subscription.MaxInFlight); 0
	// means none, which is what existing subscriptions get. A constant
	// default: adding the column rewrites no row.
	`
ALTER TABLE subscriptions
	ADD COLUMN max_in_flight integer NOT NULL DEFAULT 0 CHECK (max_in_flight >= 0);
`,
}

// postgresVersionTable records the applied migrations. Not "schema_version":
// that name is taken by Temporal's own PostgreSQL schema, which an operator
// might share a database with.
const postgresVersionTable = "userhooks_schema_version"

// postgresMigrationLock is the key of the transaction-level advisory lock
// that serialises migrations: processes opening the store at once (several
// workers starting together) wait for one another, so each migration is
// applied exactly once. The value is arbitrary but must never change; it is
// database-wide, so migrations of stores in different schemas of one
// database also take turns, which costs a few milliseconds.
const postgresMigrationLock int64 = 0x7573_6572_686f_6f6b // "userhook"

// migratePostgres brings the schema up to date in one transaction, under
// the advisory lock, so a failure leaves the schema as it was.
func migratePostgres(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	// After Commit this does nothing; after a failure it ends the transaction
	// (or, when ctx is done, pgx discards the connection).
	defer tx.Rollback(ctx) //nolint:errcheck // the error that matters is returned below

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, postgresMigrationLock); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	// Every statement below runs after the lock is held; in READ COMMITTED
	// each sees what a migrator that held the lock before committed.
	if _, err := tx.Exec(ctx, `
CREATE TABLE IF NOT EXISTS `+postgresVersionTable+` (
	version    integer     NOT NULL PRIMARY KEY,
	applied_at timestamptz NOT NULL
)`); err != nil {
		return fmt.Errorf("create %s table: %w", postgresVersionTable, err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+postgresVersionTable).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(postgresMigrations) {
		return fmt.Errorf("database schema is version %d, newer than the %d this program knows; upgrade the program", current, len(postgresMigrations))
	}
	for v := current + 1; v <= len(postgresMigrations); v++ {
		if _, err := tx.Exec(ctx, postgresMigrations[v-1]); err != nil {
			return fmt.Errorf("apply schema version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+postgresVersionTable+` (version, applied_at) VALUES ($1, now())`, v); err != nil {
			return fmt.Errorf("record schema version %d: %w", v, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit schema changes: %w", err)
	}
	return nil
}
