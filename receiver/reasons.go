package receiver

import (
	"errors"
	"net/http"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
)

// Reason is a short, stable code for what the receiver did with a request.
// It is the first word of every error response body and the Reason of every
// Outcome, so a sender's attempt log, the receiver's logs and its metrics
// can all name the same thing.
type Reason string

// The reasons, with the HTTP status each one answers.
const (
	// ReasonAccepted: the handler succeeded (2xx). The event is applied.
	ReasonAccepted Reason = "accepted"
	// ReasonDuplicate (200): an earlier delivery of this webhook-id was
	// already applied; the handler was not called again.
	ReasonDuplicate Reason = "duplicate"
	// ReasonInProgress (503): another delivery of this webhook-id is being
	// handled right now; the sender retries later and then gets the
	// outcome of that one.
	ReasonInProgress Reason = "in_progress"

	// ReasonMissingHeaders (400): webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ReasonMissingHeaders Reason = "missing_headers"
	// ReasonInvalidTimestamp (400): webhook-timestamp is not Unix seconds.
	ReasonInvalidTimestamp Reason = "invalid_timestamp"
	// ReasonTimestampTooOld (401): signed longer ago than the tolerance;
	// stale or replayed.
	ReasonTimestampTooOld Reason = "timestamp_too_old"
	// ReasonTimestampTooNew (401): signed further in the future than the
	// tolerance.
	ReasonTimestampTooNew Reason = "timestamp_too_new"
	// ReasonBadSignature (401): no v1 signature matches the body under any
	// known secret (tampered body, wrong secret, malformed header).
	ReasonBadSignature Reason = "bad_signature"
	// ReasonBodyTooLarge (413): the body exceeds Options.MaxBodyBytes.
	ReasonBodyTooLarge Reason = "body_too_large"
	// ReasonUnreadableBody (400): reading the body failed (the client went
	// away mid-request, say).
	ReasonUnreadableBody Reason = "unreadable_body"
	// ReasonInvalidEvent (400): the signed body is not a valid event.
	ReasonInvalidEvent Reason = "invalid_event"
	// ReasonIDMismatch (400): webhook-id differs from the event's id.
	ReasonIDMismatch Reason = "id_mismatch"

	// ReasonHandlerFailed (500, or the handler's own non-2xx status): the
	// handler returned an error, answered non-2xx or panicked. The
	// delivery is not marked processed, so the sender's retry applies it.
	ReasonHandlerFailed Reason = "handler_failed"
	// ReasonDedupFailed (503): the DedupStore failed before the handler
	// ran; nothing was applied.
	ReasonDedupFailed Reason = "dedup_failed"
	// ReasonMisconfigured (500): the receiver has no usable secret.
	ReasonMisconfigured Reason = "misconfigured"
)

// Sentinel errors, one per refusal. Outcome.Err wraps exactly one of them,
// so callers branch with errors.Is. The signature ones are the signature
// package's own values, so errors.Is works with either name. No error ever
// holds a secret, an expected signature or the body.
var (
	ErrMissingHeaders   = signature.ErrMissingHeaders
	ErrInvalidTimestamp = signature.ErrInvalidTimestamp
	ErrTimestampTooOld  = signature.ErrTimestampTooOld
	ErrTimestampTooNew  = signature.ErrTimestampTooNew
	ErrBadSignature     = signature.ErrNoMatchingSignature
	ErrNoSecrets        = signature.ErrNoSecrets
	ErrInvalidEvent     = event.ErrInvalid

	// ErrBodyTooLarge means the body exceeded Options.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("webhook body too large")
	// ErrUnreadableBody means the body could not be read to its end.
	ErrUnreadableBody = errors.New("webhook body unreadable")
	// ErrIDMismatch means the webhook-id header and the event id differ.
	ErrIDMismatch = errors.New("webhook-id does not match the event id")
	// ErrInProgress means another delivery of the same webhook-id holds
	// the claim.
	ErrInProgress = errors.New("webhook already being handled")
	// ErrDedup means the DedupStore failed.
	ErrDedup = errors.New("webhook de-duplication store failed")
	// ErrHandlerFailed means the handler failed, answered non-2xx or
	// panicked.
	ErrHandlerFailed = errors.New("webhook handler failed")
)

// refusal ties a sentinel to its reason, status and the fixed text sent to
// the client. The text never carries details: those go to Options.OnOutcome,
// where the operator, not the caller, reads them.
type refusal struct {
	err    error
	reason Reason
	status int
	text   string
}

// refusals is searched in order; the first sentinel that matches wins.
var refusals = []refusal{
	{ErrNoSecrets, ReasonMisconfigured, http.StatusInternalServerError, "the receiver has no secret configured"},
	{ErrMissingHeaders, ReasonMissingHeaders, http.StatusBadRequest, "webhook-id, webhook-timestamp and webhook-signature are required"},
	{ErrInvalidTimestamp, ReasonInvalidTimestamp, http.StatusBadRequest, "webhook-timestamp must be Unix seconds"},
	{ErrTimestampTooOld, ReasonTimestampTooOld, http.StatusUnauthorized, "webhook-timestamp is too old"},
	{ErrTimestampTooNew, ReasonTimestampTooNew, http.StatusUnauthorized, "webhook-timestamp is too far in the future"},
	{ErrBadSignature, ReasonBadSignature, http.StatusUnauthorized, "no signature matches a known secret"},
	{ErrBodyTooLarge, ReasonBodyTooLarge, http.StatusRequestEntityTooLarge, "the body is too large"},
	{ErrUnreadableBody, ReasonUnreadableBody, http.StatusBadRequest, "the body could not be read"},
	{ErrInvalidEvent, ReasonInvalidEvent, http.StatusBadRequest, "the body is not a valid event"},
	{ErrIDMismatch, ReasonIDMismatch, http.StatusBadRequest, "webhook-id does not match the event id"},
	{ErrInProgress, ReasonInProgress, http.StatusServiceUnavailable, "this webhook-id is being handled; retry later"},
	{ErrDedup, ReasonDedupFailed, http.StatusServiceUnavailable, "temporary failure; retry later"},
	{ErrHandlerFailed, ReasonHandlerFailed, http.StatusInternalServerError, "the event could not be applied; retry later"},
}

// refusalOf returns the refusal err wraps; an error wrapping no sentinel is
// a handler failure, the one refusal that must make the sender retry.
func refusalOf(err error) refusal {
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			return r
		}
	}
	return refusals[len(refusals)-1]
}

// writeRefusal answers the request with r's status and a one-line plain text
// body "<reason>: <text>".
func writeRefusal(w http.ResponseWriter, r refusal) {
	writeText(w, r.status, string(r.reason)+": "+r.text)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}
