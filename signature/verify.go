package signature

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a message's timestamp may be from the
// receiver's clock, either way, when Verifier.Tolerance is zero. It bounds
// how long a captured message can be replayed.
const DefaultTolerance = 5 * time.Minute

// Verification failures. Verify wraps exactly one of them, so callers can
// branch with errors.Is; none of the messages ever holds secret material or
// an expected signature.
var (
	// ErrMissingHeaders means webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook signature headers")
	// ErrInvalidTimestamp means webhook-timestamp is not a whole number of
	// seconds since the Unix epoch.
	ErrInvalidTimestamp = errors.New("invalid webhook timestamp")
	// ErrTimestampTooOld means the message was signed longer ago than the
	// tolerance: it is stale or replayed.
	ErrTimestampTooOld = errors.New("webhook timestamp too old")
	// ErrTimestampTooNew means the message claims to be signed further in
	// the future than the tolerance.
	ErrTimestampTooNew = errors.New("webhook timestamp too new")
	// ErrNoMatchingSignature means no v1 signature in webhook-signature
	// matches the body under any of the verifier's secrets.
	ErrNoMatchingSignature = errors.New("no matching webhook signature")
	// ErrNoSecrets means the Verifier was configured without a usable
	// secret; it is a receiver misconfiguration, not a bad request.
	ErrNoSecrets = errors.New("webhook verifier has no secrets")
)

// maxQuoted bounds how much of an attacker-supplied header value an error
// message repeats, so errors stay small in logs.
const maxQuoted = 32

// Verifier checks that a request was signed by a holder of one of its
// secrets, recently. The zero value has no secrets and rejects everything.
// A Verifier is safe for concurrent use as long as its fields are not
// modified.
type Verifier struct {
	// Secrets are tried in turn; a message signed with any of them is
	// accepted. Hold both the old and the new secret during a rotation.
	// Zero Secrets are ignored.
	Secrets []Secret
	// Tolerance is how far the webhook-timestamp may be from Now, in
	// either direction. Zero or negative means DefaultTolerance.
	Tolerance time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Verify checks the Standard Webhooks headers in h against body, which must
// be the raw request body exactly as received. It returns nil if the
// timestamp is within tolerance and a "v1," signature in webhook-signature
// matches one of v.Secrets; otherwise an error wrapping one of the Err
// sentinels above. Signatures with any other version prefix (such as v1a)
// are ignored. Comparisons are constant-time. Verify never panics, whatever
// the headers hold.
//
// Verify does not remember message ids: a receiver that must not process a
// message twice deduplicates on webhook-id itself.
func (v Verifier) Verify(h http.Header, body []byte) error {
	secrets := make([]Secret, 0, len(v.Secrets))
	for _, s := range v.Secrets {
		if !s.IsZero() {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		return fmt.Errorf("verify webhook: %w", ErrNoSecrets)
	}

	msgID, unix, sigHeader := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	var missing []string
	for _, hv := range []struct{ name, value string }{
		{HeaderID, msgID}, {HeaderTimestamp, unix}, {HeaderSignature, sigHeader},
	} {
		if hv.value == "" {
			missing = append(missing, hv.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("verify webhook: %w: %s", ErrMissingHeaders, strings.Join(missing, ", "))
	}

	ts, err := parseUnix(unix)
	if err != nil {
		return fmt.Errorf("verify webhook: %w: %s %s", ErrInvalidTimestamp, HeaderTimestamp, err)
	}
	if err := v.checkFresh(ts); err != nil {
		return fmt.Errorf("verify webhook: %w", err)
	}

	// Compute each expected signature once, then look for it among the
	// offered ones. The timestamp is signed exactly as it was sent; parseUnix
	// accepts only the canonical spelling, so that is also ts.Unix().
	expected := make([][]byte, len(secrets))
	for i, s := range secrets {
		expected[i] = []byte(s.sign(msgID, unix, body))
	}
	for _, offered := range strings.Fields(sigHeader) {
		version, sig, ok := strings.Cut(offered, ",")
		if !ok || version != signatureVersion {
			continue
		}
		for _, want := range expected {
			if hmac.Equal([]byte(sig), want) {
				return nil
			}
		}
	}
	return fmt.Errorf("verify webhook: %w under %d secret(s)", ErrNoMatchingSignature, len(secrets))
}

// checkFresh reports whether ts is within the tolerance of now.
func (v Verifier) checkFresh(ts time.Time) error {
	tolerance := v.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	// time.Time.Sub saturates instead of overflowing, so absurd timestamps
	// land in one of these branches rather than wrapping round.
	if age := now.Sub(ts); age > tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrTimestampTooOld, age.Truncate(time.Second), tolerance)
	}
	if ahead := ts.Sub(now); ahead > tolerance {
		return fmt.Errorf("%w: signed %s in the future, tolerance %s", ErrTimestampTooNew, ahead.Truncate(time.Second), tolerance)
	}
	return nil
}

// parseUnix reads a timestamp header: ASCII decimal seconds since the epoch,
// without sign or leading zeros, so that every accepted value has exactly one
// spelling and the signed text is unambiguous.
func parseUnix(s string) (time.Time, error) {
	canonical := s != "" && (s == "0" || s[0] != '0')
	for i := 0; canonical && i < len(s); i++ {
		canonical = '0' <= s[i] && s[i] <= '9'
	}
	if !canonical {
		return time.Time{}, fmt.Errorf("%s is not decimal Unix seconds", quote(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is out of range", quote(s))
	}
	return time.Unix(n, 0), nil
}

// quote returns s quoted for an error message, truncated to maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}
