package delivery

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Status is where a delivery stands. It is also the value of the
// delivery-status search attribute.
type Status string

// Delivery statuses. Delivered, Failed, Canceled and Skipped are final.
const (
	StatusPending   Status = "pending"
	StatusRetrying  Status = "retrying"
	StatusDelivered Status = "delivered"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
	StatusSkipped   Status = "skipped"
)

// ErrorClass names why an attempt did not succeed. The workflow branches on
// these values; they are also the Temporal application-error types of failed
// Deliver activities, so they can be searched for in history.
type ErrorClass string

// Error classes of a failed attempt.
const (
	// ClassServerError: the receiver answered 5xx. Retried.
	ClassServerError ErrorClass = "ServerError"
	// ClassRetryableStatus: 408, 425 or 429. Retried.
	ClassRetryableStatus ErrorClass = "RetryableStatus"
	// ClassRedirect: the receiver answered 3xx; redirects are never followed.
	// Retried, since a misconfigured endpoint may be fixed.
	ClassRedirect ErrorClass = "Redirect"
	// ClassClientError: any other 4xx. Final.
	ClassClientError ErrorClass = "ClientError"
	// ClassGone: 410 Gone. Final, and the subscription is disabled.
	ClassGone ErrorClass = "Gone"
	// ClassTimeout: no complete answer within the request timeout. Retried.
	ClassTimeout ErrorClass = "Timeout"
	// ClassConnection: DNS failure, refused or reset connection, TLS error.
	// Retried.
	ClassConnection ErrorClass = "ConnectionError"
	// ClassBlockedAddress: the URL resolves to an address deliveries may not
	// reach (private network, loopback, metadata service). Final.
	ClassBlockedAddress ErrorClass = "BlockedAddress"
	// ClassInvalidURL: the subscription's URL cannot be used. Final.
	ClassInvalidURL ErrorClass = "InvalidURL"
	// ClassInternal: the attempt could not be made because of a fault on
	// our side (store unreachable, worker lost) that persisted through the
	// activity's own short retries. Retried on the delivery schedule.
	ClassInternal ErrorClass = "InternalError"
)

// Retryable reports whether an attempt that failed with this class may be
// followed by another.
func (c ErrorClass) Retryable() bool {
	switch c {
	case ClassServerError, ClassRetryableStatus, ClassRedirect, ClassTimeout, ClassConnection, ClassInternal:
		return true
	}
	return false
}

// ClassifyStatus maps an HTTP status code to an error class, or "" for a
// success (2xx).
func ClassifyStatus(code int) ErrorClass {
	switch {
	case code >= 200 && code < 300:
		return ""
	case code == http.StatusGone:
		return ClassGone
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return ClassRetryableStatus
	case code >= 300 && code < 400:
		return ClassRedirect
	case code >= 400 && code < 500:
		return ClassClientError
	default: // 5xx and anything outside the defined ranges
		return ClassServerError
	}
}

// ParseRetryAfter reads a Retry-After header value, either delay-seconds or
// an HTTP date, relative to now. It returns 0 when the value is absent,
// malformed or in the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap before multiplying so absurd values cannot overflow.
		return time.Duration(min(secs, int64(MaxDelay/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxDelay)
	}
	return 0
}

// Attempt is the record of one delivery attempt. It is the result (or the
// failure details) of one Deliver activity, so every attempt of every
// delivery is in workflow history and visible in the Temporal Web UI.
//
// It never holds the subscription's URL query or secrets.
type Attempt struct {
	// Number is 1 for the first attempt.
	Number int `json:"attempt"`
	// StartedAt is when the request was sent.
	StartedAt time.Time `json:"started_at"`
	// DurationMs is how long the request took, up to the end of the response
	// excerpt.
	DurationMs int64 `json:"duration_ms"`
	// StatusCode is the receiver's HTTP status, 0 if none was received.
	StatusCode int `json:"status_code,omitempty"`
	// Class is empty on success.
	Class ErrorClass `json:"error_class,omitempty"`
	// Error describes a failure in words.
	Error string `json:"error,omitempty"`
	// ResponseExcerpt is the start of the response body, for troubleshooting.
	ResponseExcerpt string `json:"response_excerpt,omitempty"`
	// RetryAfter is the receiver's Retry-After, parsed, when it sent one.
	RetryAfter Duration `json:"retry_after,omitempty"`
	// Skipped is set when no request was sent because the subscription is
	// disabled or deleted.
	Skipped bool `json:"skipped,omitempty"`
}

// Succeeded reports whether the attempt delivered the event.
func (a Attempt) Succeeded() bool {
	return !a.Skipped && a.Class == "" && a.StatusCode >= 200 && a.StatusCode < 300
}
