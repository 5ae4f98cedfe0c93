package apikey

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// migration is one schema change, in each dialect's statements.
type migration struct {
	sqlite, postgres []string
}

// migrations are the schema changes of SQLStore, in order: applying
// migrations[i] brings the schema to version i+1. Add a change by appending;
// never edit an entry that has shipped. The versions are kept in the table
// apikey_schema_version, apart from any other store's, so that the tables
// can share a database.
//
// The statements use IF NOT EXISTS so that a half-created schema is
// completed rather than refused.
var migrations = []migration{
	// 1: the keys. key_hash is the hex SHA-256 of the key's text form (see
	// hashToken); the key itself is never stored. Times are UTC: RFC 3339
	// text with microseconds on SQLite (text order is time order),
	// timestamptz on PostgreSQL.
	{
		sqlite: []string{`
CREATE TABLE IF NOT EXISTS api_keys (
	id             TEXT NOT NULL PRIMARY KEY,
	account_id     TEXT NOT NULL,
	name           TEXT NOT NULL DEFAULT '',
	display_prefix TEXT NOT NULL,
	key_hash       TEXT NOT NULL UNIQUE,
	created_at     TEXT NOT NULL,
	revoked_at     TEXT,
	last_used_at   TEXT
)`,
			`CREATE INDEX IF NOT EXISTS api_keys_account_id_id ON api_keys (account_id, id)`,
		},
		postgres: []string{`
CREATE TABLE IF NOT EXISTS api_keys (
	id             TEXT        NOT NULL PRIMARY KEY,
	account_id     TEXT        NOT NULL,
	name           TEXT        NOT NULL DEFAULT '',
	display_prefix TEXT        NOT NULL,
	key_hash       TEXT        NOT NULL UNIQUE,
	created_at     TIMESTAMPTZ NOT NULL,
	revoked_at     TIMESTAMPTZ,
	last_used_at   TIMESTAMPTZ
)`,
			`CREATE INDEX IF NOT EXISTS api_keys_account_id_id ON api_keys (account_id, id)`,
		},
	},
}

// migrationLockID is the PostgreSQL advisory lock that serialises
// migrations of this store across processes ("uhk_mig" in ASCII).
const migrationLockID = 0x75686b5f6d6967

// migrate brings the schema up to date in one transaction that holds the
// database's write lock (SQLite) or an advisory lock (PostgreSQL) from its
// start, so that processes opening the store at once apply each migration
// exactly once.
func (st *SQLStore) migrate(ctx context.Context) error {
	conn, err := st.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	// database/sql's BeginTx cannot ask SQLite for BEGIN IMMEDIATE unless the
	// DSN says so, and db may come from the caller: begin by hand on a
	// dedicated connection instead.
	begin := "BEGIN IMMEDIATE"
	if st.dialect == PostgreSQL {
		begin = "BEGIN"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	if err := st.migrateLocked(ctx, conn); err != nil {
		// Use a fresh context: ctx may be the reason for the failure.
		if _, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
			// The connection's state is unknown: do not return it to the pool.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

func (st *SQLStore) migrateLocked(ctx context.Context, conn *sql.Conn) error {
	timeType := "TEXT"
	if st.dialect == PostgreSQL {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockID)); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		timeType = "TIMESTAMPTZ"
	}
	if _, err := conn.ExecContext(ctx, `
CREATE TABLE IF NOT EXISTS apikey_schema_version (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at `+timeType+` NOT NULL
)`); err != nil {
		return fmt.Errorf("create apikey_schema_version table: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM apikey_schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("API key schema is version %d, newer than the %d this program knows; upgrade the program", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		stmts := migrations[v-1].sqlite
		if st.dialect == PostgreSQL {
			stmts = migrations[v-1].postgres
		}
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("apply schema version %d: %w", v, err)
			}
		}
		if _, err := conn.ExecContext(ctx, st.q(`INSERT INTO apikey_schema_version (version, applied_at) VALUES (?, ?)`),
			v, st.timeArg(storedTime(st.now()))); err != nil {
			return fmt.Errorf("record schema version %d: %w", v, err)
		}
	}
	return nil
}
