package receiver

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// DedupTable is the table SQLDedup keeps its marks in.
const DedupTable = "webhook_dedup"

// DefaultDedupLease is how long an SQLDedup claim lasts when
// SQLDedupOptions.Lease is zero.
const DefaultDedupLease = 2 * time.Minute

// dedupSchema creates DedupTable. A row is either a claim (state 'claimed',
// a holder's token and when the claim lapses) or a done mark (state 'done',
// when it was completed). Times are Unix milliseconds.
const dedupSchema = `
CREATE TABLE IF NOT EXISTS ` + DedupTable + ` (
	id          TEXT    NOT NULL PRIMARY KEY,
	state       TEXT    NOT NULL CHECK (state IN ('claimed', 'done')),
	token       TEXT    NOT NULL DEFAULT '',
	lease_until INTEGER NOT NULL DEFAULT 0,
	done_at     INTEGER NOT NULL DEFAULT 0
)`

// SQLDedupOptions configures an SQLDedup.
type SQLDedupOptions struct {
	// Lease is how long a claim lasts. A claim whose holder crashed lapses
	// after it, and the sender's next retry takes it over, so it must be
	// longer than the handler ever runs: after it, a second delivery of
	// the same id may run the handler alongside the first. (MarkDoneTx
	// lets a handler make that harmless.) Zero means DefaultDedupLease.
	Lease time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// SQLDedup is a DedupStore in a SQL database, through database/sql, so that
// marks survive restarts and are shared by every process that uses the
// database. It is written and tested for SQLite (modernc.org/sqlite, or any
// driver that takes "?" placeholders and ON CONFLICT upserts); it is safe
// for concurrent use by goroutines and processes.
//
// Claims are leases: a claim whose holder died lapses after
// SQLDedupOptions.Lease, and a later delivery takes it over.
//
// Done marks are kept until Prune removes them. With SQLite, give the
// database a busy timeout (the _pragma busy_timeout DSN parameter of
// modernc.org/sqlite) so that concurrent writers wait for each other instead
// of failing.
type SQLDedup struct {
	db    *sql.DB
	lease time.Duration
	now   func() time.Time
}

var _ DedupStore = (*SQLDedup)(nil)

// OpenSQLDedup returns an SQLDedup on db, creating its table if it does not
// exist. It is safe to call more than once on the same database. db stays
// the caller's to close.
func OpenSQLDedup(ctx context.Context, db *sql.DB, opts SQLDedupOptions) (*SQLDedup, error) {
	if db == nil {
		return nil, errors.New("open SQL dedup store: db is nil")
	}
	if opts.Lease < 0 {
		return nil, fmt.Errorf("open SQL dedup store: lease %s is negative", opts.Lease)
	}
	if opts.Lease == 0 {
		opts.Lease = DefaultDedupLease
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := db.ExecContext(ctx, dedupSchema); err != nil {
		return nil, fmt.Errorf("open SQL dedup store: create table %s: %w", DedupTable, err)
	}
	return &SQLDedup{db: db, lease: opts.Lease, now: opts.Now}, nil
}

// claimAttempts bounds how often Claim retries when a claim it saw vanishes
// (released) between its two statements.
const claimAttempts = 3

// Claim implements DedupStore. A lapsed claim is taken over.
func (s *SQLDedup) Claim(ctx context.Context, id string) (Claim, error) {
	token, err := newToken()
	if err != nil {
		return Claim{}, fmt.Errorf("claim %s: %w", id, err)
	}
	for range claimAttempts {
		now := s.now()
		// One statement, so it is atomic: insert a claim, or take over a
		// lapsed one; a live claim or a done mark is left alone.
		res, err := s.db.ExecContext(ctx, `
INSERT INTO `+DedupTable+` (id, state, token, lease_until) VALUES (?, 'claimed', ?, ?)
ON CONFLICT (id) DO UPDATE SET token = excluded.token, lease_until = excluded.lease_until
WHERE `+DedupTable+`.state = 'claimed' AND `+DedupTable+`.lease_until <= ?`,
			id, token, now.Add(s.lease).UnixMilli(), now.UnixMilli())
		if err != nil {
			return Claim{}, fmt.Errorf("claim %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return Claim{}, fmt.Errorf("claim %s: %w", id, err)
		} else if n == 1 {
			return Claim{ID: id, State: ClaimAcquired, Token: token}, nil
		}
		var state string
		err = s.db.QueryRowContext(ctx, `SELECT state FROM `+DedupTable+` WHERE id = ?`, id).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // released in between: try again
		case err != nil:
			return Claim{}, fmt.Errorf("claim %s: %w", id, err)
		case state == "done":
			return Claim{ID: id, State: ClaimAlreadyDone}, nil
		default:
			return Claim{ID: id, State: ClaimInProgress}, nil
		}
	}
	return Claim{ID: id, State: ClaimInProgress}, nil
}

// Complete implements DedupStore.
func (s *SQLDedup) Complete(ctx context.Context, c Claim) error {
	if _, err := s.markDone(ctx, s.db, c.ID); err != nil {
		return fmt.Errorf("complete %s: %w", c.ID, err)
	}
	return nil
}

// MarkDoneTx marks id done inside the caller's transaction and reports
// whether this call did it (false: id was already done). It is how a
// handler makes its own write and the mark one atomic step: call it first in
// the transaction that applies the event, and apply only if it returns true.
// Then a crash before the commit loses both, a crash after it keeps both,
// and two deliveries of the same id that both got to run the handler (a
// lapsed lease) apply it once: the second waits for the first's commit and
// finds the id done.
//
// tx must be on the database the store was opened on. The receiver's own
// Complete after the handler then finds the id done and changes nothing.
func (s *SQLDedup) MarkDoneTx(ctx context.Context, tx *sql.Tx, id string) (bool, error) {
	first, err := s.markDone(ctx, tx, id)
	if err != nil {
		return false, fmt.Errorf("mark %s done: %w", id, err)
	}
	return first, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// markDone makes id a done mark, whatever its row held (nothing, anyone's
// claim), and reports whether it was not done before.
func (s *SQLDedup) markDone(ctx context.Context, db execer, id string) (bool, error) {
	res, err := db.ExecContext(ctx, `
INSERT INTO `+DedupTable+` (id, state, done_at) VALUES (?, 'done', ?)
ON CONFLICT (id) DO UPDATE SET state = 'done', token = '', lease_until = 0, done_at = excluded.done_at
WHERE `+DedupTable+`.state <> 'done'`,
		id, s.now().UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// Release implements DedupStore.
func (s *SQLDedup) Release(ctx context.Context, c Claim) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM `+DedupTable+` WHERE id = ? AND state = 'claimed' AND token = ?`, c.ID, c.Token)
	if err != nil {
		return fmt.Errorf("release %s: %w", c.ID, err)
	}
	return nil
}

// Prune forgets done marks made before t, and claims that lapsed before t,
// and reports how many rows it removed. Keep marks for longer than the
// sender retries and redeliveries happen (userhooks retries for about three
// days): a duplicate that arrives after its mark was pruned is applied
// again.
func (s *SQLDedup) Prune(ctx context.Context, before time.Time) (int64, error) {
	ms := before.UnixMilli()
	res, err := s.db.ExecContext(ctx, `
DELETE FROM `+DedupTable+`
WHERE (state = 'done' AND done_at < ?) OR (state = 'claimed' AND lease_until < ?)`, ms, ms)
	if err != nil {
		return 0, fmt.Errorf("prune %s: %w", DedupTable, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune %s: %w", DedupTable, err)
	}
	return n, nil
}

// newToken returns a random claim token, unique across processes.
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make claim token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
