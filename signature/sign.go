// Package signature signs and verifies webhooks as the Standard Webhooks
// specification (version 1, https://www.standardwebhooks.com) describes:
// an HMAC-SHA256 over "<msg id>.<unix seconds>.<body>", sent in the
// webhook-id, webhook-timestamp and webhook-signature headers.
//
// It is a leaf package (standard library only), so receivers can verify
// deliveries with it without pulling in Temporal or the rest of userhooks.
// Its output interoperates with the official Standard Webhooks libraries in
// both directions.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers that carry a signed webhook. net/http canonicalises them on
// the wire (Webhook-Id, ...); header lookups are case-insensitive.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// signatureVersion prefixes every signature this package makes or accepts:
// HMAC-SHA256, base64 (standard alphabet, padded).
const signatureVersion = "v1"

// Sign returns the webhook-signature header value for a message: one
// "v1,<base64 HMAC-SHA256>" per secret, joined by single spaces, in the order
// the secrets are given. Several secrets are for rotation: a receiver that
// knows any one of them accepts the message.
//
// The signed content is msgID + "." + ts.Unix() + "." + body, taken byte for
// byte: the body must be sent exactly as signed (no re-encoding, no trailing
// newline added). Sub-second precision of ts is dropped, as the header
// carries whole seconds.
//
// Zero Secrets are skipped, because an HMAC with an empty key proves nothing;
// with no usable secret Sign returns "". Sign is safe for concurrent use.
func Sign(msgID string, ts time.Time, body []byte, secrets ...Secret) string {
	unix := strconv.FormatInt(ts.Unix(), 10)
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s.IsZero() {
			continue
		}
		sigs = append(sigs, signatureVersion+","+s.sign(msgID, unix, body))
	}
	return strings.Join(sigs, " ")
}

// SetHeaders sets the webhook-id, webhook-timestamp and webhook-signature
// headers on h for a message with the given body, replacing any values they
// had. The signature is Sign(msgID, ts, body, secrets...).
func SetHeaders(h http.Header, msgID string, ts time.Time, body []byte, secrets ...Secret) {
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(msgID, ts, body, secrets...))
}

// sign returns the base64 HMAC-SHA256 of msgID.unix.body under s. unix is the
// timestamp exactly as it appears in the header.
func (s Secret) sign(msgID, unix string, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(unix))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
