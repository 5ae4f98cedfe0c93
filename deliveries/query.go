package deliveries

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/workflows"
)

// Filter selects deliveries for List. AccountID is required; every other
// field narrows the list when set.
type Filter struct {
	AccountID      string
	SubscriptionID string
	EventID        string
	UserID         string
	EventType      string
	Status         delivery.Status
	// StartedAfter and StartedBefore bound the run's start time: at or
	// after StartedAfter, before StartedBefore.
	StartedAfter, StartedBefore time.Time
}

// idPattern is the syntax of event, account and user IDs (package event
// enforces it on publish).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

func validID(s string) bool {
	return len(s) <= event.MaxIDLength && idPattern.MatchString(s)
}

// validUUID accepts the canonical form only (lowercase, hyphenated), the one
// subscription and run IDs have.
func validUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// statusQueries are the visibility conditions of each status ({status}
// stands for the delivery-status search attribute). They agree with
// statusOf on every run the delivery workflow can leave behind: closed runs
// that did not deliver are told by Temporal's execution status (the
// attribute of a terminated run still says what it was doing), the others
// by the search attribute.
var statusQueries = map[delivery.Status]string{
	delivery.StatusPending:   "ExecutionStatus = 'Running' AND {status} = 'pending'",
	delivery.StatusRetrying:  "ExecutionStatus = 'Running' AND {status} = 'retrying'",
	delivery.StatusDelivered: "ExecutionStatus = 'Completed' AND {status} = 'delivered'",
	delivery.StatusSkipped:   "ExecutionStatus = 'Completed' AND {status} = 'skipped'",
	delivery.StatusFailed:    "(ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut')",
	delivery.StatusCanceled:  "(ExecutionStatus = 'Canceled' OR ExecutionStatus = 'Terminated')",
}

// Query returns the Temporal visibility query that selects f's deliveries,
// the same text `temporal workflow list -q` takes. Every value is checked
// (IDs against their syntax, type and status against their known values)
// and quoted; a malformed filter returns an error matching
// ErrInvalidFilter.
func (f Filter) Query() (string, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if f.AccountID == "" {
		bad("account ID is required")
	} else if !validID(f.AccountID) {
		bad("account ID is malformed")
	}
	if f.SubscriptionID != "" && !validUUID(f.SubscriptionID) {
		bad("subscription ID must be a UUID in canonical form")
	}
	if f.EventID != "" && !validID(f.EventID) {
		bad("event ID is malformed")
	}
	if f.UserID != "" && !validID(f.UserID) {
		bad("user ID is malformed")
	}
	if f.EventType != "" && !event.Type(f.EventType).Valid() {
		bad("event type is unknown, want one of user.created, user.updated, user.deleted")
	}
	if _, ok := statusQueries[f.Status]; f.Status != "" && !ok {
		bad("status is unknown, want one of pending, retrying, delivered, failed, canceled, skipped")
	}
	if !f.StartedAfter.IsZero() && !f.StartedBefore.IsZero() && !f.StartedAfter.Before(f.StartedBefore) {
		bad("started_after must be before started_before")
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("%w: %s", ErrInvalidFilter, strings.Join(problems, "; "))
	}

	var b strings.Builder
	b.WriteString("WorkflowType = " + quote(deliveryWorkflowType))
	eq := func(name, value string) {
		if value != "" {
			b.WriteString(" AND " + name + " = " + quote(value))
		}
	}
	eq(workflows.AttrAccountID.GetName(), f.AccountID)
	eq(workflows.AttrSubscriptionID.GetName(), f.SubscriptionID)
	eq(workflows.AttrEventID.GetName(), f.EventID)
	eq(workflows.AttrUserID.GetName(), f.UserID)
	eq(workflows.AttrEventType.GetName(), f.EventType)
	if f.Status != "" {
		b.WriteString(" AND " + strings.ReplaceAll(statusQueries[f.Status], "{status}", workflows.AttrDeliveryStatus.GetName()))
	}
	if !f.StartedAfter.IsZero() {
		b.WriteString(" AND StartTime >= " + quote(f.StartedAfter.UTC().Format(time.RFC3339Nano)))
	}
	if !f.StartedBefore.IsZero() {
		b.WriteString(" AND StartTime < " + quote(f.StartedBefore.UTC().Format(time.RFC3339Nano)))
	}
	return b.String(), nil
}

// quote makes a string literal of Temporal's visibility query language,
// whose parser reads backslash escapes inside quotes. Filter.Query only
// quotes values it has checked, so this is the second line of defence.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\', '\'', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Page tokens wrap Temporal's: unpadded URL-safe base64 (so they travel in
// a query string untouched) of Temporal's token followed by a MAC over the
// query and that token. A forged or corrupted token, or one from another
// filter, is refused before it reaches Temporal: Temporal answers a
// malformed token with an internal error, which the SDK retries until its
// deadline.
const pageTokenMACSize = 16

func (s *Service) pageTokenMAC(query string, token []byte) []byte {
	m := hmac.New(sha256.New, s.opts.PageTokenKey)
	m.Write([]byte("userhooks deliveries page token\x00"))
	m.Write([]byte(query))
	m.Write([]byte{0})
	m.Write(token)
	return m.Sum(nil)[:pageTokenMACSize]
}

func (s *Service) encodePageToken(query string, token []byte) string {
	if len(token) == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(append(slices.Clip(token), s.pageTokenMAC(query, token)...))
}

func (s *Service) decodePageToken(query, pageToken string) ([]byte, error) {
	if pageToken == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(pageToken)
	if err != nil || len(raw) <= pageTokenMACSize {
		return nil, fmt.Errorf("%w: malformed page token", ErrInvalidFilter)
	}
	token, mac := raw[:len(raw)-pageTokenMACSize], raw[len(raw)-pageTokenMACSize:]
	if !hmac.Equal(mac, s.pageTokenMAC(query, token)) {
		return nil, fmt.Errorf("%w: page token not issued for this filter (or by another service key)", ErrInvalidFilter)
	}
	return token, nil
}
