// Package event defines the envelope of a user lifecycle event — the JSON
// body every receiver gets — and its validation.
//
// It is a leaf package (standard library and github.com/google/uuid only), so
// receivers can decode events with it without pulling in Temporal.
//
// The body is a pure function of the Event value: Marshal gives the same
// bytes for the same event on every call and every worker, and decoding
// those bytes and marshalling again gives them back unchanged. That is what
// lets every attempt of a delivery sign the identical body.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Type is an event type.
type Type string

// The event types userhooks delivers.
const (
	TypeUserCreated Type = "user.created"
	TypeUserUpdated Type = "user.updated"
	TypeUserDeleted Type = "user.deleted"
)

// Types lists every event type, in a stable order.
func Types() []Type { return []Type{TypeUserCreated, TypeUserUpdated, TypeUserDeleted} }

// Valid reports whether t is a known event type.
func (t Type) Valid() bool {
	switch t {
	case TypeUserCreated, TypeUserUpdated, TypeUserDeleted:
		return true
	}
	return false
}

// Size limits. MaxBodyBytes bounds the signed JSON body; it keeps a fan-out
// of a thousand deliveries well inside Temporal's history limits (every
// delivery carries the event).
const (
	MaxBodyBytes  = 64 << 10
	MaxIDLength   = 128
	MaxRoles      = 100
	MaxAttributes = 100
)

// Event is the envelope of one user lifecycle event.
type Event struct {
	// ID identifies the event. Publishing the same ID twice delivers once.
	// It is also the webhook-id header, so receivers de-duplicate by it.
	// Assigned (a UUIDv7) when empty.
	ID string `json:"id"`
	// Type is user.created, user.updated or user.deleted.
	Type Type `json:"type"`
	// Timestamp is when the change happened in the source system (UTC,
	// millisecond precision). Set to the publish time when zero.
	Timestamp time.Time `json:"timestamp"`
	// AccountID is the platform's customer (tenant) the user belongs to;
	// only that account's subscriptions receive the event.
	AccountID string `json:"account_id"`
	// Data carries the user.
	Data Data `json:"data"`
}

// Data is the payload of a user event.
type Data struct {
	// User is the user's state after the change (for user.deleted, the last
	// known state; only the ID is required).
	User User `json:"user"`
	// PreviousAttributes is set on user.updated only: each key is a changed
	// field of User (its JSON name, "attributes.<key>" for a custom
	// attribute) and its value is the field's value before the change (null
	// if it was unset).
	PreviousAttributes map[string]json.RawMessage `json:"previous_attributes,omitempty"`
}

// User is the user a lifecycle event is about.
type User struct {
	ID       string   `json:"id"`
	Email    string   `json:"email,omitempty"`
	Username string   `json:"username,omitempty"`
	Name     string   `json:"name,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	// Status is the platform's own account status (e.g. "active",
	// "suspended"); free text.
	Status string `json:"status,omitempty"`
	// Attributes holds any further fields as raw JSON, kept byte for byte.
	Attributes map[string]json.RawMessage `json:"attributes,omitempty"`
}

// userFields are the JSON names of User's fields that previous_attributes
// may name directly.
var userFields = map[string]bool{
	"email": true, "username": true, "name": true, "roles": true, "tags": true, "status": true, "attributes": true,
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// ValidationError lists every problem found in an event. Its Problems are
// written for the publisher: each names the field and what is wrong.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid event: " + strings.Join(e.Problems, "; ")
}

// ErrInvalid matches every *ValidationError with errors.Is.
var ErrInvalid = errors.New("invalid event")

// Is makes errors.Is(err, ErrInvalid) true for validation errors.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Prepare fills in what the publisher may leave out — a UUIDv7 ID and the
// timestamp now — normalises the timestamp to UTC milliseconds, and
// validates the result. It returns the event as it will be delivered.
func Prepare(e Event, now time.Time) (Event, error) {
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return Event{}, fmt.Errorf("assign event id: %w", err)
		}
		e.ID = id.String()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = now
	}
	e.Timestamp = e.Timestamp.UTC().Truncate(time.Millisecond)
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// Validate reports every problem with the event as a *ValidationError, or
// nil. It checks identifiers (they become parts of workflow IDs), the type,
// the user, previous_attributes against the type, and the body size.
func (e Event) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	checkID := func(field, v string, required bool) {
		switch {
		case v == "" && required:
			add("%s is required", field)
		case len(v) > MaxIDLength:
			add("%s is %d characters, at most %d allowed", field, len(v), MaxIDLength)
		case v != "" && !idPattern.MatchString(v):
			add("%s %q may only contain letters, digits and . _ : - (and must start with a letter or digit)", field, v)
		}
	}
	checkID("id", e.ID, true)
	checkID("account_id", e.AccountID, true)
	checkID("data.user.id", e.Data.User.ID, true)

	if !e.Type.Valid() {
		add("type %q is unknown, want one of user.created, user.updated, user.deleted", e.Type)
	}
	if e.Timestamp.IsZero() {
		add("timestamp is required")
	}
	u := e.Data.User
	if len(u.Roles) > MaxRoles {
		add("data.user.roles has %d entries, at most %d allowed", len(u.Roles), MaxRoles)
	}
	if len(u.Tags) > MaxRoles {
		add("data.user.tags has %d entries, at most %d allowed", len(u.Tags), MaxRoles)
	}
	if len(u.Attributes) > MaxAttributes {
		add("data.user.attributes has %d keys, at most %d allowed", len(u.Attributes), MaxAttributes)
	}
	for _, k := range sortedKeys(u.Attributes) {
		if !json.Valid(u.Attributes[k]) {
			add("data.user.attributes.%s is not valid JSON", k)
		}
	}

	switch {
	case e.Type == TypeUserUpdated && len(e.Data.PreviousAttributes) == 0:
		add("data.previous_attributes is required for user.updated: name each changed field with its previous value")
	case e.Type != TypeUserUpdated && e.Type.Valid() && len(e.Data.PreviousAttributes) > 0:
		add("data.previous_attributes is only allowed on user.updated")
	}
	for _, k := range sortedKeys(e.Data.PreviousAttributes) {
		name, _, custom := strings.Cut(k, ".")
		if !(userFields[k] || (custom && name == "attributes")) {
			add("data.previous_attributes.%s is not a field of the user", k)
		}
		if !json.Valid(e.Data.PreviousAttributes[k]) {
			add("data.previous_attributes.%s is not valid JSON", k)
		}
	}

	if len(p) == 0 {
		body, err := e.Marshal()
		if err != nil {
			add("event cannot be encoded: %v", err)
		} else if len(body) > MaxBodyBytes {
			add("event body is %d bytes, at most %d allowed", len(body), MaxBodyBytes)
		}
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

// Marshal returns the JSON body delivered to receivers. It is deterministic
// (see the package comment) and does not validate.
func (e Event) Marshal() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return b, nil
}

// Decode reads an event from a JSON body and validates it. It ignores
// unknown fields, so receivers keep working when later versions add fields.
// It never panics on any input.
func Decode(body []byte) (Event, error) { return decode(body, false) }

// DecodeStrict is Decode for publishers: unknown fields are an error, so a
// misspelt field is reported instead of silently dropped.
func DecodeStrict(body []byte) (Event, error) { return decode(body, true) }

func decode(body []byte, strict bool) (Event, error) {
	if len(body) > MaxBodyBytes {
		return Event{}, &ValidationError{Problems: []string{fmt.Sprintf("event body is %d bytes, at most %d allowed", len(body), MaxBodyBytes)}}
	}
	var e Event
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(&e); err != nil {
		return Event{}, &ValidationError{Problems: []string{"body is not a valid event: " + err.Error()}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, &ValidationError{Problems: []string{"body has data after the event object"}}
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
