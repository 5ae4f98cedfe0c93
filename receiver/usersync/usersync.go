// Package usersync is a reference receiver: it mirrors the users of a
// userhooks account into its own SQLite database, as a membership plugin of
// a website (a WordPress membership site, say) keeps its local accounts in
// step with the platform. It is built on package receiver, and it is what
// `worker dev` and cmd/usersync run.
//
// # What each event does
//
//   - user.created creates the local account, or, if it exists, updates it
//     in place: there is never a second account for one user ID.
//   - user.updated changes only the fields its previous_attributes names
//     (attributes.<key> for one custom attribute), taking their new values
//     from the event's user. Fields the mirror has never had a value for are
//     filled from the event's user too: the event carries the user's whole
//     state, so an update that arrives before its create creates the
//     account.
//   - user.deleted deactivates the account (DeactivateOnDelete, the default:
//     the row stays, with Deleted set) or erases it (EraseOnDelete: the
//     profile is wiped and only the ID remains, as a tombstone).
//
// # Order
//
// Deliveries are retried independently, so events arrive in any order. The
// mirror ends in the same state whatever the order:
//
//   - Each field remembers the event (timestamp, then event ID) that set it,
//     and an event changes a field only if it is newer. An event older than
//     everything it would change is ignored (answered 2xx, nothing applied).
//     Remembering per field, rather than one version per user, is needed:
//     with one version per user, an update of the email that arrives after a
//     newer update of the name would be dropped, and since an update changes
//     only its listed fields, the new email would never be applied.
//   - A delete wins over everything, whatever its timestamp: a deleted
//     account never becomes active again, so a create or update that arrives
//     after the delete cannot bring it back. In EraseOnDelete mode such a late
//     event is ignored (no personal data is written back); in
//     DeactivateOnDelete mode its field values are still recorded on the
//     inactive account, so that the profile converges too. User IDs must not
//     be reused after a delete.
//
// # Exactly once
//
// The receiver de-duplicates by webhook-id with a receiver.SQLDedup in the
// same database, and the handler marks the event done in the same
// transaction as the user write (receiver.SQLDedup.MarkDoneTx): it answers
// 2xx only after both committed, and a crash loses both or keeps both.
package usersync

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/signature"
)

// DeleteMode says what user.deleted does to the local account.
type DeleteMode int

const (
	// DeactivateOnDelete keeps the account, marked Deleted (inactive), with
	// its profile: what a membership site does when the account owns
	// content. The default.
	DeactivateOnDelete DeleteMode = iota
	// EraseOnDelete wipes the account's profile (email, names, roles, tags,
	// attributes) and keeps only its ID as a tombstone, marked Deleted.
	EraseOnDelete
)

// String names the mode as the -on-delete flag spells it.
func (m DeleteMode) String() string {
	if m == EraseOnDelete {
		return "erase"
	}
	return "deactivate"
}

// ParseDeleteMode reads "deactivate" or "erase".
func ParseDeleteMode(s string) (DeleteMode, error) {
	switch s {
	case "deactivate":
		return DeactivateOnDelete, nil
	case "erase":
		return EraseOnDelete, nil
	}
	return 0, fmt.Errorf("delete mode %q: want deactivate or erase", s)
}

// Options configures a Mirror.
type Options struct {
	// Secrets verify deliveries (see receiver.Options.Secrets). Required.
	Secrets []signature.Secret
	// Tolerance of webhook-timestamp; zero means 5 minutes.
	Tolerance time.Duration
	// OnDelete says what user.deleted does; the zero value deactivates.
	OnDelete DeleteMode
	// OnResult, if set, is called once per request with what the mirror
	// did. LogResults makes one that logs with zap.
	OnResult func(Result)
	// DedupLease is how long a delivery may hold its webhook-id before a
	// retry may take it over (see receiver.SQLDedupOptions.Lease).
	DedupLease time.Duration
	// Now returns the current time (signature timestamps, dedup leases);
	// nil means time.Now. Tests set it.
	Now func() time.Time
}

// Action is what the mirror did with one request.
type Action string

// The actions. Created, updated and deleted changed the mirror; the others
// did not.
const (
	ActionCreated Action = "created"
	ActionUpdated Action = "updated"
	ActionDeleted Action = "deleted"
	// ActionIgnoredStale: every field the event would set was already set
	// by a newer event.
	ActionIgnoredStale Action = "ignored_stale"
	// ActionIgnoredDeleted: the user is deleted (a repeated delete, or a
	// create or update after an erase).
	ActionIgnoredDeleted Action = "ignored_deleted"
	// ActionDuplicate: this event ID was applied before.
	ActionDuplicate Action = "duplicate"
	// ActionRetryLater: the same event ID is being applied right now; the
	// sender is told to retry (503).
	ActionRetryLater Action = "retry_later"
	// ActionRejected: the request was refused (bad signature, stale
	// timestamp, invalid event, ...): see Result.Reason.
	ActionRejected Action = "rejected"
	// ActionFailed: the database failed; nothing was applied and the
	// sender retries (5xx).
	ActionFailed Action = "failed"
)

// Result is what the mirror did with one request. It holds the user's ID but
// no other personal data, and never a secret.
type Result struct {
	Action Action
	// Status is the HTTP status answered.
	Status int
	// Reason is the receiver's reason code.
	Reason receiver.Reason
	// Err explains a rejection or failure.
	Err error
	// EventID is the webhook-id as sent (unverified when Action is
	// ActionRejected).
	EventID   string
	EventType event.Type
	AccountID string
	UserID    string
	Duration  time.Duration
}

// User is one mirrored account.
type User struct {
	AccountID  string
	ID         string
	Email      string
	Username   string
	Name       string
	Status     string
	Roles      []string
	Tags       []string
	Attributes map[string]json.RawMessage
	// Deleted is set by user.deleted, for good: the account is inactive.
	Deleted bool
	// LastEventAt and LastEventID name the newest event (by timestamp, then
	// ID) the mirror has received for this user, whether or not it changed
	// anything. An older event never moves them back.
	LastEventAt time.Time
	LastEventID string
}

// ErrNotFound is returned by Mirror.User for a user the mirror does not hold.
var ErrNotFound = errors.New("user not in the mirror")

// Mirror is the reference receiver: an http.Handler that applies user events
// to a SQLite database, and read access to what it holds. It is safe for
// concurrent use.
type Mirror struct {
	db       *sql.DB
	ownDB    bool
	dedup    *receiver.SQLDedup
	handler  http.Handler
	mode     DeleteMode
	onResult func(Result)
}

var _ http.Handler = (*Mirror)(nil)

// busyTimeout is how long a statement waits for another process's write.
const busyTimeout = 5 * time.Second

// Open opens (creating it, readable by its owner only, since it holds
// personal data) the SQLite database file at path and returns a Mirror on
// it. Close the Mirror to close the file.
//
// The database runs in WAL mode with synchronous=FULL: a 2xx tells the
// sender the event is stored and it will never send it again, so a commit
// waits until it is on disk.
func Open(path string, opts Options) (*Mirror, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open user mirror: want the path of a database file, got %q", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open user mirror %s: %w", path, err)
	}
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open user mirror %s: %w", path, err)
	}
	dsn := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: url.Values{
		"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()), "journal_mode(WAL)", "synchronous(FULL)"},
		"_txlock": {"immediate"},
	}.Encode()}
	db, err := sql.Open("sqlite", dsn.String())
	if err != nil {
		return nil, fmt.Errorf("open user mirror %s: %w", path, err)
	}
	// One connection: this process's writes queue in Go, where waiting
	// honours contexts, and each request's few statements are short.
	db.SetMaxOpenConns(1)
	m, err := New(db, opts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open user mirror %s: %w", path, err)
	}
	m.ownDB = true
	return m, nil
}

// New returns a Mirror on db, creating its tables (users, and the
// receiver's webhook_dedup) if they do not exist. db stays the caller's to
// close. With SQLite, give it a busy timeout, or a single connection, so
// that concurrent requests wait for each other instead of failing.
func New(db *sql.DB, opts Options) (*Mirror, error) {
	ctx := context.Background()
	if db == nil {
		return nil, errors.New("new user mirror: db is nil")
	}
	if opts.OnDelete != DeactivateOnDelete && opts.OnDelete != EraseOnDelete {
		return nil, fmt.Errorf("new user mirror: unknown delete mode %d", opts.OnDelete)
	}
	if _, err := db.ExecContext(ctx, usersSchema); err != nil {
		return nil, fmt.Errorf("new user mirror: create tables: %w", err)
	}
	dedup, err := receiver.OpenSQLDedup(ctx, db, receiver.SQLDedupOptions{Lease: opts.DedupLease, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("new user mirror: %w", err)
	}
	m := &Mirror{db: db, dedup: dedup, mode: opts.OnDelete, onResult: opts.OnResult}
	rc, err := receiver.New(receiver.Options{
		Secrets:   opts.Secrets,
		Tolerance: opts.Tolerance,
		Dedup:     dedup,
		OnOutcome: m.report,
		Now:       opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("new user mirror: %w", err)
	}
	m.handler = rc.Handle(m.apply)
	return m, nil
}

// Close closes the database if Open opened it. It is safe to call more
// than once.
func (m *Mirror) Close() error {
	if !m.ownDB {
		return nil
	}
	return m.db.Close()
}

// ServeHTTP receives one delivery: verify, de-duplicate, apply. It answers
// 204 once the event is applied (or ignored as stale) and committed, 200 for
// a duplicate, 4xx for a request it refuses, and 5xx when the database
// fails, so that the sender retries.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := &Result{}
	m.handler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), resultKey{}, res)))
}

type resultKey struct{}

// report is the receiver's OnOutcome: it completes the request's Result
// (whose Action apply set when the event got that far) and hands it on.
func (m *Mirror) report(r *http.Request, o receiver.Outcome) {
	res, ok := r.Context().Value(resultKey{}).(*Result)
	if !ok || m.onResult == nil {
		return
	}
	res.Status, res.Reason, res.Err, res.Duration = o.Status, o.Reason, o.Err, o.Duration
	res.EventID, res.EventType, res.AccountID, res.UserID = o.MessageID, o.EventType, o.AccountID, o.UserID
	switch o.Reason {
	case receiver.ReasonAccepted:
		// apply set the action (if it did not, the outcome says why).
	case receiver.ReasonDuplicate:
		res.Action = ActionDuplicate
	case receiver.ReasonInProgress:
		res.Action = ActionRetryLater
	case receiver.ReasonHandlerFailed, receiver.ReasonDedupFailed, receiver.ReasonMisconfigured:
		res.Action = ActionFailed
	default:
		res.Action = ActionRejected
	}
	m.onResult(*res)
}

// apply is the receiver's handler: one transaction marks the event done and
// writes the user.
func (m *Mirror) apply(ctx context.Context, e event.Event) error {
	action, err := m.applyTx(ctx, e)
	if err != nil {
		return fmt.Errorf("apply %s %s to user %s: %w", e.Type, e.ID, e.Data.User.ID, err)
	}
	if res, ok := ctx.Value(resultKey{}).(*Result); ok {
		res.Action = action
	}
	return nil
}

func (m *Mirror) applyTx(ctx context.Context, e event.Event) (Action, error) {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	// The mark first: its write takes the database's write lock, so the
	// read below sees the latest row and no other writer can interleave.
	first, err := m.dedup.MarkDoneTx(ctx, tx, e.ID)
	if err != nil {
		return "", err
	}
	if !first {
		return ActionDuplicate, nil
	}
	cur, err := loadRecord(ctx, tx, e.AccountID, e.Data.User.ID)
	if err != nil {
		return "", err
	}
	next, action := merge(cur, e, m.mode)
	// A stale event changes nothing, not even the last event (it is older).
	if action != ActionIgnoredStale {
		if err := saveRecord(ctx, tx, next); err != nil {
			return "", err
		}
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	return action, nil
}

// Users returns every mirrored user, deleted ones included, ordered by
// account and ID.
func (m *Mirror) Users(ctx context.Context) ([]User, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY account_id, id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, r.User)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// User returns one mirrored user, or an error wrapping ErrNotFound.
func (m *Mirror) User(ctx context.Context, accountID, userID string) (User, error) {
	r, err := loadRecord(ctx, m.db, accountID, userID)
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", userID, err)
	}
	if r == nil {
		return User{}, fmt.Errorf("get user %s of account %s: %w", userID, accountID, ErrNotFound)
	}
	return r.User, nil
}
