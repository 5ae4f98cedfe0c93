package signature

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretPrefix starts every secret in its text form, as the Standard Webhooks
// specification recommends, so secrets are recognisable (and scannable) when
// they leak.
const SecretPrefix = "whsec_"

// Secret lengths accepted by the specification, in bytes of key material.
const (
	MinSecretBytes     = 24
	MaxSecretBytes     = 64
	GeneratedSecretLen = 32
)

// Secret is an HMAC signing key. Its text form is "whsec_" followed by the
// standard base64 encoding of the key.
//
// A Secret does not print itself: String, GoString and MarshalJSON all give
// "whsec_[redacted]", so a secret that ends up in a log line, an error or a
// Temporal payload by mistake is not disclosed. Call Reveal where the secret
// must be shown or stored.
type Secret struct {
	key []byte
}

// ErrInvalidSecret is returned (wrapped) for a malformed secret.
var ErrInvalidSecret = errors.New("invalid webhook secret")

// ParseSecret reads a secret in its text form. The "whsec_" prefix is
// optional, as in the official libraries; the key must be 24 to 64 bytes.
func ParseSecret(s string) (Secret, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return Secret{}, fmt.Errorf("%w: not base64 after %q", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return Secret{}, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return Secret{key: key}, nil
}

// GenerateSecret returns a new random secret of GeneratedSecretLen bytes from
// crypto/rand.
func GenerateSecret() (Secret, error) {
	key := make([]byte, GeneratedSecretLen)
	if _, err := rand.Read(key); err != nil {
		return Secret{}, fmt.Errorf("generate webhook secret: %w", err)
	}
	return Secret{key: key}, nil
}

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// Reveal returns the secret's text form, "whsec_<base64>". Use it only to
// show a new secret to its owner once, or to store it.
func (s Secret) Reveal() string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(s.key)
}

const redacted = SecretPrefix + "[redacted]"

// String returns a redacted placeholder, never the key.
func (s Secret) String() string { return redacted }

// GoString returns a redacted placeholder, never the key.
func (s Secret) GoString() string { return redacted }

// MarshalJSON writes a redacted placeholder, never the key.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// Equal reports whether two secrets hold the same key.
func (s Secret) Equal(o Secret) bool { return string(s.key) == string(o.key) }
