// Package subscription keeps webhook subscriptions: which account's user
// events, of which types, go to which URL, signed with which secrets and
// retried on which schedule.
//
// Store is the interface that the activities, the API server and the CLI
// use. SQLiteStore is the embedded implementation, PostgresStore the one
// for workers on several hosts; package stores opens either from a DSN.
// Every implementation must pass the contract tests in package storetest.
//
// Secrets are kept by the store in their text form (signature.Secret.Reveal):
// encryption at rest is future work. Nothing in this package puts a secret's
// text into an error, and the package does not log.
package subscription

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
)

// Subscription asks for the events of one account, of some or all event
// types, to be delivered to one URL.
//
// Printing a Subscription (%v, %+v, %#v) or encoding it as JSON never shows
// its secrets: signature.Secret redacts itself.
type Subscription struct {
	// ID is a UUID in canonical text form. Store.Create assigns a UUIDv7
	// when it is empty, so IDs sort by creation time.
	ID string
	// AccountID is the platform's customer (tenant) whose events are
	// delivered. It never changes after creation.
	AccountID string
	// URL is the receiver's endpoint, an absolute http or https URL.
	URL string
	// EventTypes lists the event types delivered; empty means all. Stores
	// keep it sorted and without duplicates, nil when empty.
	EventTypes []string
	// Description is free text for the subscription's owner.
	Description string
	// Enabled is false for a paused subscription: Store.Match skips it.
	Enabled bool
	// Secrets sign deliveries, newest first. There is at least one.
	Secrets []Secret
	// Schedule overrides the retry schedule; nil means
	// delivery.DefaultSchedule().
	Schedule *delivery.Schedule
	// MaxInFlight limits the requests in flight to the endpoint at once,
	// across all workers (0 to MaxInFlightLimit); 0 means no limit of its
	// own: the worker's default applies, which is no limit unless the
	// operator set one.
	MaxInFlight int
	// CreatedAt and UpdatedAt are kept in UTC at microsecond precision.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Health is kept by the store from delivery outcomes and disables. It
	// is read-only: Create and Update ignore the value they are given (see
	// Health).
	Health Health
}

// Health is what the store knows of a subscription's endpoint: when a
// delivery to it last succeeded, since when it has been failing, and why
// and when the subscription was disabled. Times are in UTC at microsecond
// precision; a zero time means "never" or "not now".
//
// Only the store writes it: Store.RecordAttempt with each attempt's outcome,
// Store.Disable and Store.DisableIfFailing when userhooks turns a
// subscription off, and Store.SetEnabled (or Update changing Enabled) when
// its owner pauses or resumes it. Create stores a zero Health whatever it is
// given; Update keeps the stored one and returns it.
type Health struct {
	// LastSuccessAt is when an attempt last delivered, at most
	// LastSuccessResolution behind the latest success; zero if none has.
	LastSuccessAt time.Time
	// FailingSince is the time of the first failed attempt after the last
	// success (or after the subscription was created or re-enabled); zero
	// while the endpoint is not failing. It is the failure clock that
	// automatic disabling measures.
	FailingSince time.Time
	// DisabledReason says why userhooks disabled the subscription (Disable,
	// DisableIfFailing); empty while it is enabled, and when its owner
	// paused it.
	DisabledReason string
	// DisabledAt is when the subscription was disabled, by userhooks or its
	// owner; zero while it is enabled, and for subscriptions disabled before
	// the store kept health.
	DisabledAt time.Time
}

// Failing reports whether the endpoint has failed since its last success.
func (h Health) Failing() bool { return !h.FailingSince.IsZero() }

// LastSuccessResolution is how far Health.LastSuccessAt may lag behind the
// latest success: Store.RecordAttempt writes a success only when the
// endpoint was failing or the stored time is older than this, so that a
// healthy endpoint costs at most one write a minute, not one per delivery.
const LastSuccessResolution = time.Minute

// MaxDisabledReasonLength is the longest reason (in characters) that
// Store.Disable accepts.
const MaxDisabledReasonLength = 512

// Secret is one signing key of a subscription.
type Secret struct {
	Key signature.Secret
	// ExpiresAt is when the key stops signing; zero means never. During a
	// rotation the old key gets an expiry, so that for a while both the new
	// and the old key sign and receivers can switch over without a gap.
	ExpiresAt time.Time
}

// ActiveAt reports whether the key signs at time now: it has no expiry, or
// now is before its expiry.
func (s Secret) ActiveAt(now time.Time) bool {
	return s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt)
}

// ActiveSecrets returns the keys that sign at time now (not expired), newest
// first. It returns nil when every key has expired.
func (s Subscription) ActiveSecrets(now time.Time) []signature.Secret {
	var keys []signature.Secret
	for _, sec := range s.Secrets {
		if sec.ActiveAt(now) {
			keys = append(keys, sec.Key)
		}
	}
	return keys
}

// Matches reports whether the subscription accepts events of eventType: its
// EventTypes is empty or lists eventType. It ignores Enabled and AccountID.
func (s Subscription) Matches(eventType string) bool {
	return len(s.EventTypes) == 0 || slices.Contains(s.EventTypes, eventType)
}

// EffectiveSchedule returns the subscription's retry schedule, or
// delivery.DefaultSchedule() when it sets none.
func (s Subscription) EffectiveSchedule() delivery.Schedule {
	if s.Schedule == nil {
		return delivery.DefaultSchedule()
	}
	return *s.Schedule
}

// Limits on subscription fields.
const (
	MaxAccountIDLength   = 128  // characters
	MaxURLLength         = 2048 // bytes
	MaxDescriptionLength = 1024 // characters
	MaxSecrets           = 10
	// MaxInFlightLimit is the largest MaxInFlight a subscription may set.
	MaxInFlightLimit = 1000
)

// MaxPageSize is the largest limit Store.List and Store.Match accept.
const MaxPageSize = 1000

// eventTypes are the event types a subscription may name. They mirror the
// types of package event; this package keeps its own list so that it does
// not depend on the envelope.
var eventTypes = []string{"user.created", "user.updated", "user.deleted"}

// ErrNotFound is returned (wrapped) when no subscription has the given ID.
var ErrNotFound = errors.New("subscription not found")

// ErrAlreadyExists is returned (wrapped) by Store.Create when a subscription
// with the same ID exists.
var ErrAlreadyExists = errors.New("subscription already exists")

// ValidationError lists every problem found in a subscription. Each problem
// is a sentence that names the field, meant for the subscription's owner; none
// contains a secret.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid subscription: " + strings.Join(e.Problems, "; ")
}

// Validate reports every reason the subscription cannot be stored, as a
// *ValidationError, or nil. An empty ID is valid (Store.Create assigns one).
func (s Subscription) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if s.ID != "" {
		if u, err := uuid.Parse(s.ID); err != nil || u.String() != s.ID {
			add("id must be a UUID in canonical form (lowercase hexadecimal with hyphens)")
		}
	}

	switch n := utf8.RuneCountInString(s.AccountID); {
	case s.AccountID == "":
		add("account_id is required")
	case !utf8.ValidString(s.AccountID):
		add("account_id is not valid UTF-8")
	case n > MaxAccountIDLength:
		add("account_id is %d characters long, at most %d allowed", n, MaxAccountIDLength)
	case strings.ContainsFunc(s.AccountID, unicode.IsControl):
		add("account_id must not contain control characters")
	}

	if problem := checkURL(s.URL); problem != "" {
		add("%s", problem)
	}

	for i, et := range s.EventTypes {
		switch {
		case et == "":
			add("event_types[%d] is empty", i)
		case !slices.Contains(eventTypes, et):
			add("event_types[%d] %s is not a known event type; want one of %s", i, quoteShort(et), strings.Join(eventTypes, ", "))
		}
	}

	switch n := utf8.RuneCountInString(s.Description); {
	case !utf8.ValidString(s.Description):
		add("description is not valid UTF-8")
	case n > MaxDescriptionLength:
		add("description is %d characters long, at most %d allowed", n, MaxDescriptionLength)
	case strings.ContainsRune(s.Description, 0):
		add("description must not contain NUL characters")
	}

	switch {
	case len(s.Secrets) == 0:
		add("secrets: at least one secret is required")
	case len(s.Secrets) > MaxSecrets:
		add("secrets: %d given, at most %d allowed", len(s.Secrets), MaxSecrets)
	}
	for i, sec := range s.Secrets {
		if sec.Key.IsZero() {
			add("secrets[%d] has no key", i)
			continue
		}
		for j := range i {
			if sec.Key.Equal(s.Secrets[j].Key) {
				add("secrets[%d] repeats secrets[%d]", i, j)
				break
			}
		}
	}

	if s.Schedule != nil {
		if err := s.Schedule.Validate(); err != nil {
			add("schedule: %v", err)
		}
	}

	if s.MaxInFlight < 0 || s.MaxInFlight > MaxInFlightLimit {
		add("max_in_flight is %d, want 0 (no limit) to %d", s.MaxInFlight, MaxInFlightLimit)
	}

	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

// validateForUpdate is Validate, with the ID required.
func (s Subscription) validateForUpdate() error {
	err := s.Validate()
	if s.ID != "" {
		return err
	}
	problems := []string{"id is required"}
	var verr *ValidationError
	if errors.As(err, &verr) {
		problems = append(problems, verr.Problems...)
	}
	return &ValidationError{Problems: problems}
}

// checkURL returns what is wrong with a subscription URL, or "". Whether
// the host may be reached (SSRF protection) is decided at delivery time.
func checkURL(raw string) string {
	if raw == "" {
		return "url is required"
	}
	if len(raw) > MaxURLLength {
		return fmt.Sprintf("url is %d bytes long, at most %d allowed", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "url cannot be parsed as a URL"
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return "url must be absolute, starting with http:// or https://"
	default:
		// Name only the scheme: a URL may carry credentials.
		return fmt.Sprintf("url scheme is %s, want http or https", quoteShort(u.Scheme))
	}
	if u.Host == "" || u.Hostname() == "" {
		return "url has no host"
	}
	return ""
}

// quoteShort quotes a user-supplied value for an error message, cut short so
// that a huge value does not make a huge message.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// timePrecision is the precision at which stores keep times: PostgreSQL's,
// so that every implementation returns the same values.
const timePrecision = time.Microsecond

// storedTime returns t as stores keep it: UTC, microsecond precision.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(timePrecision)
}

// normalized returns a copy of s in the form stores keep: event types
// sorted, without duplicates and nil when empty; times in UTC at
// microsecond precision. It never modifies the slices of s.
func (s Subscription) normalized() Subscription {
	if len(s.EventTypes) == 0 {
		s.EventTypes = nil
	} else {
		types := slices.Clone(s.EventTypes)
		slices.Sort(types)
		s.EventTypes = slices.Compact(types)
	}
	secrets := make([]Secret, len(s.Secrets))
	for i, sec := range s.Secrets {
		secrets[i] = Secret{Key: sec.Key, ExpiresAt: storedTime(sec.ExpiresAt)}
	}
	s.Secrets = secrets
	s.CreatedAt = storedTime(s.CreatedAt)
	s.UpdatedAt = storedTime(s.UpdatedAt)
	return s
}

// checkDisable validates the arguments of Store.Disable and
// Store.DisableIfFailing.
func checkDisable(reason string, at time.Time) error {
	switch n := utf8.RuneCountInString(reason); {
	case strings.TrimSpace(reason) == "":
		return errors.New("a reason is required")
	case !utf8.ValidString(reason):
		return errors.New("the reason is not valid UTF-8")
	case n > MaxDisabledReasonLength:
		return fmt.Errorf("the reason is %d characters long, at most %d allowed", n, MaxDisabledReasonLength)
	case strings.ContainsRune(reason, 0):
		return errors.New("the reason must not contain NUL characters")
	case at.IsZero():
		return errors.New("the time of disabling is required")
	}
	return nil
}

// checkPage validates the arguments shared by Store.List and Store.Match.
func checkPage(accountID string, limit int) error {
	switch {
	case accountID == "":
		return errors.New("account ID is required")
	case limit < 1:
		return fmt.Errorf("limit is %d, want at least 1", limit)
	case limit > MaxPageSize:
		return fmt.Errorf("limit is %d, at most %d allowed", limit, MaxPageSize)
	}
	return nil
}

// Store keeps subscriptions. Implementations are safe for concurrent use.
//
// Create and Update validate the subscription (see Subscription.Validate)
// and fail with a *ValidationError, changing nothing, when it is invalid. On
// success they write the stored form back into *s: event types sorted and
// de-duplicated, times in UTC at microsecond precision, and the assigned ID
// and timestamps. Get then returns a value equal to *s.
type Store interface {
	// Create stores a new subscription. It assigns a UUIDv7 ID when s.ID is
	// empty, CreatedAt (now) when zero and UpdatedAt (CreatedAt) when zero.
	// It ignores s.Health: a new subscription has none yet. It fails with
	// ErrAlreadyExists when the ID is taken.
	Create(ctx context.Context, s *Subscription) error
	// Get returns the subscription with the given ID, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, id string) (Subscription, error)
	// List returns up to limit (1 to MaxPageSize) subscriptions of
	// accountID, enabled or not, with ID > afterID, ordered by ID. Pass the
	// last ID of a page as afterID to get the next page; "" starts at the
	// beginning.
	List(ctx context.Context, accountID, afterID string, limit int) ([]Subscription, error)
	// Match returns up to limit (1 to MaxPageSize) enabled subscriptions of
	// accountID that accept eventType, with ID > afterID, ordered by ID. A
	// page shorter than limit is the last.
	Match(ctx context.Context, accountID, eventType, afterID string, limit int) ([]Subscription, error)
	// Update replaces the mutable fields of the subscription s.ID (URL,
	// EventTypes, Description, Enabled, Secrets, Schedule, MaxInFlight) and sets
	// UpdatedAt to now; s.CreatedAt, s.UpdatedAt and s.Health are ignored
	// and overwritten with the stored values. A change of Enabled updates
	// Health as SetEnabled does. A subscription never moves between
	// accounts: when no subscription has both s.ID and s.AccountID, Update
	// fails with ErrNotFound.
	Update(ctx context.Context, s *Subscription) error
	// SetEnabled pauses (false) or resumes (true) a subscription and sets
	// its UpdatedAt to now. It fails with ErrNotFound when id is absent.
	//
	// Pausing an enabled subscription sets Health.DisabledAt to now (with no
	// DisabledReason: its owner paused it). Resuming a disabled one clears
	// Health.FailingSince, DisabledReason and DisabledAt: the failure clock
	// starts again. Update does the same when it changes Enabled. Setting
	// the state a subscription already has leaves Health alone.
	SetEnabled(ctx context.Context, id string, enabled bool) error
	// RecordAttempt records the outcome of a delivery attempt made at time
	// at in Health, and never changes UpdatedAt:
	//   - a success (ok) sets LastSuccessAt to at and clears FailingSince,
	//     but writes only when FailingSince is set or LastSuccessAt is older
	//     than at minus LastSuccessResolution;
	//   - a failure sets FailingSince to at, unless it is already set (to an
	//     earlier time) or a success at or after at is recorded.
	// Outcomes are ordered by their times, not by when they are recorded,
	// so attempts reported out of order leave the same Health. It fails
	// with ErrNotFound when id is absent, and refuses a zero at.
	RecordAttempt(ctx context.Context, id string, ok bool, at time.Time) error
	// Disable turns an enabled subscription off because of reason (a
	// sentence for its owner, at most MaxDisabledReasonLength characters),
	// setting Health.DisabledReason, Health.DisabledAt and UpdatedAt to at.
	// It reports whether this call disabled it: false, changing nothing,
	// when it was already disabled. It fails with ErrNotFound when id is
	// absent, and refuses an empty reason or a zero at.
	Disable(ctx context.Context, id, reason string, at time.Time) (bool, error)
	// DisableIfFailing is Disable, done only when the endpoint has been
	// failing since failingBefore or earlier: Health.FailingSince is set and
	// not after failingBefore. The check and the change are one statement,
	// so a success recorded meanwhile keeps the subscription enabled.
	DisableIfFailing(ctx context.Context, id, reason string, failingBefore, at time.Time) (bool, error)
	// Delete removes a subscription. It fails with ErrNotFound when id is
	// absent.
	Delete(ctx context.Context, id string) error
	// CountDisabled returns how many subscriptions, of all accounts, are
	// disabled: for the operators' gauge of paused endpoints.
	CountDisabled(ctx context.Context) (int, error)
	// Ping checks that the store answers, for readiness probes.
	Ping(ctx context.Context) error
	// Close releases the store's resources. Other methods must not be
	// called after it.
	Close() error
}
