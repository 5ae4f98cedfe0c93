package usersync

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// usersSchema is the mirror's own table; the receiver's SQLDedup adds
// webhook_dedup beside it.
const usersSchema = `
CREATE TABLE IF NOT EXISTS users (
	account_id     TEXT    NOT NULL,
	id             TEXT    NOT NULL,
	email          TEXT    NOT NULL DEFAULT '',
	username       TEXT    NOT NULL DEFAULT '',
	name           TEXT    NOT NULL DEFAULT '',
	status         TEXT    NOT NULL DEFAULT '',
	roles          TEXT    NOT NULL DEFAULT '[]', -- JSON array
	tags           TEXT    NOT NULL DEFAULT '[]', -- JSON array
	attributes     TEXT    NOT NULL DEFAULT '{}', -- JSON object, values kept verbatim
	deleted        INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
	-- The newest event received for the user: Unix milliseconds, event ID.
	last_event_at  INTEGER NOT NULL,
	last_event_id  TEXT    NOT NULL,
	-- JSON object: field name → {"t": Unix ms, "id": event ID} of the event
	-- that set it last. Not unique on email: while events are in flight two
	-- users can briefly hold the same address.
	field_versions TEXT    NOT NULL DEFAULT '{}',
	PRIMARY KEY (account_id, id)
);
CREATE INDEX IF NOT EXISTS users_account_email ON users (account_id, email);
`

const userColumns = `account_id, id, email, username, name, status, roles, tags, attributes, deleted, last_event_at, last_event_id, field_versions`

type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type scanner interface {
	Scan(dest ...any) error
}

// loadRecord returns the user's record, or nil if the mirror has none.
func loadRecord(ctx context.Context, q rowQueryer, accountID, userID string) (*record, error) {
	r, err := scanRecord(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE account_id = ? AND id = ?`, accountID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	return r, nil
}

func scanRecord(s scanner) (*record, error) {
	var (
		r                            record
		roles, tags, attrs, versions string
		lastAt                       int64
	)
	err := s.Scan(&r.AccountID, &r.ID, &r.Email, &r.Username, &r.Name, &r.Status, &roles, &tags, &attrs,
		&r.Deleted, &lastAt, &r.LastEventID, &versions)
	if err != nil {
		return nil, err
	}
	for _, col := range []struct {
		name string
		text string
		dst  any
	}{
		{"roles", roles, &r.Roles},
		{"tags", tags, &r.Tags},
		{"attributes", attrs, &r.Attributes},
		{"field_versions", versions, &r.versions},
	} {
		if err := json.Unmarshal([]byte(col.text), col.dst); err != nil {
			return nil, fmt.Errorf("user %s: column %s: %w", r.ID, col.name, err)
		}
	}
	r.Roles, r.Tags = nonEmpty(r.Roles), nonEmpty(r.Tags)
	if len(r.Attributes) == 0 {
		r.Attributes = nil
	}
	if r.versions == nil {
		r.versions = map[string]version{}
	}
	r.LastEventAt = time.UnixMilli(lastAt).UTC()
	return &r, nil
}

// saveRecord writes r, replacing the user's row.
func saveRecord(ctx context.Context, tx *sql.Tx, r *record) error {
	roles, err := jsonText(r.Roles, "[]")
	if err != nil {
		return err
	}
	tags, err := jsonText(r.Tags, "[]")
	if err != nil {
		return err
	}
	attrs, err := jsonText(r.Attributes, "{}")
	if err != nil {
		return err
	}
	versions, err := jsonText(r.versions, "{}")
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account_id, id) DO UPDATE SET
	email = excluded.email, username = excluded.username, name = excluded.name, status = excluded.status,
	roles = excluded.roles, tags = excluded.tags, attributes = excluded.attributes, deleted = excluded.deleted,
	last_event_at = excluded.last_event_at, last_event_id = excluded.last_event_id,
	field_versions = excluded.field_versions`,
		r.AccountID, r.ID, r.Email, r.Username, r.Name, r.Status, roles, tags, attrs,
		r.Deleted, r.LastEventAt.UnixMilli(), r.LastEventID, versions)
	if err != nil {
		return fmt.Errorf("save user: %w", err)
	}
	return nil
}

// jsonText encodes v, or returns empty for a nil or empty value.
func jsonText[T any](v T, empty string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("save user: encode: %w", err)
	}
	if s := string(b); s != "null" && s != "[]" && s != "{}" {
		return s, nil
	}
	return empty, nil
}
