// Package apikey issues and checks the API keys that authenticate callers of
// the userhooks HTTP API. Every key belongs to exactly one account and
// grants access to that account's events, subscriptions and deliveries only.
//
// A key's text form is "uhk_" followed by 32 random bytes in unpadded
// base64url (43 characters). It is shown once, when the key is created:
// stores keep only its SHA-256 hash and a short display prefix, so neither a
// leaked database nor a log line can be turned back into a working key.
//
// Nothing in this package puts a key's text into an error, and the package
// does not log.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Prefix starts every key in its text form, so keys are recognisable (and
// found by secret scanners) when they leak.
const Prefix = "uhk_"

// randomBytes is the key material of a key: 256 bits, far beyond guessing.
const randomBytes = 32

// tokenLength is the length of a key's text form.
var tokenLength = len(Prefix) + base64.RawURLEncoding.EncodedLen(randomBytes)

// displayChars is how many characters of the random part the display prefix
// keeps. Eight base64url characters (48 bits) tell a handful of keys apart;
// the 208 bits left hidden keep the key unguessable.
const displayChars = 8

// Limits on key fields.
const (
	MaxAccountIDLength = 128 // characters
	MaxNameLength      = 200 // characters
)

// accountIDPattern is the rule for account IDs in event envelopes (package
// event), so that a key's account can always publish events.
var accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// Key is an API key as stored: everything but the key itself.
type Key struct {
	// ID is a UUIDv7, so IDs sort by creation time.
	ID string
	// AccountID is the account whose data the key may see and change. It
	// never changes.
	AccountID string
	// Name says what the key is for ("billing service, production").
	Name string
	// DisplayPrefix is the first characters of the key ("uhk_AbCdEfGh"), for
	// telling keys apart in lists. It does not authenticate.
	DisplayPrefix string
	// CreatedAt, RevokedAt and LastUsedAt are in UTC at microsecond
	// precision. RevokedAt is zero while the key is active; LastUsedAt is
	// zero until the key is first used, and is updated at most once per
	// LastUsedGranularity.
	CreatedAt  time.Time
	RevokedAt  time.Time
	LastUsedAt time.Time
}

// Active reports whether the key authenticates: it has not been revoked.
func (k Key) Active() bool { return k.RevokedAt.IsZero() }

// LastUsedGranularity is how stale Key.LastUsedAt may be. Recording every use
// would make each API request a database write; once a minute per key is
// enough to tell a key in use from a forgotten one.
const LastUsedGranularity = time.Minute

// ErrInvalid is returned (wrapped) by Store.Authenticate for a key that is
// malformed, unknown or revoked. The three cases are deliberately not told
// apart.
var ErrInvalid = errors.New("invalid API key")

// ErrNotFound is returned (wrapped) by Store.Revoke when the account has no
// key with the given ID.
var ErrNotFound = errors.New("API key not found")

// ValidationError lists every problem with the arguments of Store.Create.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid API key request: " + strings.Join(e.Problems, "; ")
}

// Store keeps API keys. Implementations are safe for concurrent use.
type Store interface {
	// Create issues a new key for accountID. It returns the stored key and
	// its text form, which is not kept anywhere: show it to its owner once.
	// Invalid arguments fail with a *ValidationError and store nothing.
	Create(ctx context.Context, accountID, name string) (Key, string, error)
	// Authenticate returns the active key whose text form is plaintext. A
	// malformed, unknown or revoked key fails with an error wrapping
	// ErrInvalid. Keys are looked up by their hash, so the time taken does
	// not depend on how much of a guess matches a real key.
	Authenticate(ctx context.Context, plaintext string) (Key, error)
	// List returns every key of accountID, revoked ones included, oldest
	// first.
	List(ctx context.Context, accountID string) ([]Key, error)
	// Revoke makes the key id of accountID stop authenticating at once. It
	// is idempotent: revoking a revoked key succeeds and keeps the first
	// revocation time. It fails with ErrNotFound when accountID has no key
	// id (whether or not another account has).
	Revoke(ctx context.Context, accountID, id string) error
	// Close releases the store's resources.
	Close() error
}

// newToken returns a new key's text form and its hash.
func newToken() (plaintext string, hash string, err error) {
	b := make([]byte, randomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate API key: %w", err)
	}
	plaintext = Prefix + base64.RawURLEncoding.EncodeToString(b)
	return plaintext, hashToken(plaintext), nil
}

// hashToken returns the hex SHA-256 of a key's text form.
//
// SHA-256, not a password hash (bcrypt, scrypt, Argon2): those are slow on
// purpose, to make guessing low-entropy passwords expensive. A key holds 256
// random bits, so there is nothing to guess; a slow hash would only cost
// time on every request. A fast, unsalted hash also gives the same value on
// every lookup, so the store finds a key with one indexed equality query
// instead of comparing against every stored hash.
func hashToken(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// wellFormed reports whether plaintext has the shape of a key: the prefix
// followed by exactly 32 bytes in unpadded base64url.
func wellFormed(plaintext string) bool {
	if len(plaintext) != tokenLength || !strings.HasPrefix(plaintext, Prefix) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(plaintext[len(Prefix):])
	return err == nil && len(b) == randomBytes
}

// displayPrefix returns the part of a key shown in lists.
func displayPrefix(plaintext string) string {
	return plaintext[:len(Prefix)+displayChars]
}

// validateCreate reports every problem with Create's arguments.
func validateCreate(accountID, name string) error {
	var p []string
	switch {
	case accountID == "":
		p = append(p, "account_id is required")
	case len(accountID) > MaxAccountIDLength:
		p = append(p, fmt.Sprintf("account_id is %d characters, at most %d allowed", len(accountID), MaxAccountIDLength))
	case !accountIDPattern.MatchString(accountID):
		p = append(p, "account_id may only contain letters, digits and . _ : - (and must start with a letter or digit)")
	}
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		p = append(p, "name is not valid UTF-8")
	case n > MaxNameLength:
		p = append(p, fmt.Sprintf("name is %d characters long, at most %d allowed", n, MaxNameLength))
	case strings.ContainsFunc(name, unicode.IsControl):
		p = append(p, "name must not contain control characters")
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}
