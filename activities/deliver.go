package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// Limits of one delivery request.
const (
	// DefaultRequestTimeout bounds one request, connection to last byte.
	DefaultRequestTimeout = 15 * time.Second
	// MaxResponseRead is how much of a response body is read before the
	// connection is dropped; receivers are expected to answer briefly.
	MaxResponseRead = 64 << 10
	// ResponseExcerptBytes is how much of the response body is kept in
	// history for troubleshooting.
	ResponseExcerptBytes = 512
	// UserAgent identifies userhooks to receivers.
	UserAgent = "userhooks/0.1"
)

// Attempt metrics. Deliver records MetricAttemptDuration through
// activity.GetMetricsHandler, with the labels the SDK's worker adds (such
// as namespace, task_queue, activity_type and workflow_type) besides
// TagResult.
const (
	// MetricAttemptDuration is a histogram of how long receivers took to
	// answer, from sending the request to reading the response (or
	// failing), labelled TagResult. Attempts that sent no request
	// (skipped, refused URL, no active secret) are not in it.
	MetricAttemptDuration = "userhooks_attempt_duration_seconds"
	// TagResult is what AttemptResult says of an attempt.
	TagResult = "result"
	// ResultSuccess and ResultSkipped are the TagResult values of an
	// attempt that delivered and of one that sent nothing; a failed
	// attempt's value is its delivery.ErrorClass.
	ResultSuccess = "success"
	ResultSkipped = "skipped"
)

// AttemptResult names an attempt's result for metrics: ResultSuccess,
// ResultSkipped or the attempt's delivery.ErrorClass. A small, fixed set
// of values, so it is safe as a label.
func AttemptResult(rec delivery.Attempt) string {
	switch {
	case rec.Skipped:
		return ResultSkipped
	case rec.Succeeded():
		return ResultSuccess
	case rec.Class == "":
		// Not a 2xx, yet not classified: cannot happen today; keep the
		// label set fixed if it ever does.
		return string(delivery.ClassInternal)
	}
	return string(rec.Class)
}

// Sender posts signed event bodies. Build it with NewSender.
type Sender struct {
	policy egress.Policy
	client *http.Client
}

// NewSender returns a Sender that only reaches addresses the policy allows,
// never follows redirects and gives up on a request after timeout
// (DefaultRequestTimeout when zero).
func NewSender(policy egress.Policy, timeout time.Duration) *Sender {
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	return &Sender{policy: policy, client: egress.NewClient(policy, timeout)}
}

// DeliverInput is one attempt to deliver an event to a subscription.
type DeliverInput struct {
	Event          event.Event
	SubscriptionID string
	// Attempt is 1 for the first attempt of this delivery.
	Attempt int
}

// Deliver makes one delivery attempt: it loads the subscription's URL and
// secrets from the store, signs the event body (Standard Webhooks), POSTs it
// and classifies the answer.
//
// A successful attempt, or one skipped because the subscription is disabled
// or gone, returns its record. A failed attempt returns a non-retryable
// Temporal application error whose type is the delivery.ErrorClass and whose
// details are the delivery.Attempt record: the attempt shows as failed in
// history, and the delivery workflow — not Temporal's activity retries —
// decides when to try again. Any other error is a fault on our side (store
// unreachable) that the activity's own retry policy retries.
func (a *Activities) Deliver(ctx context.Context, in DeliverInput) (delivery.Attempt, error) {
	rec := delivery.Attempt{Number: in.Attempt, StartedAt: a.now().UTC()}
	log := a.logger().With(zap.String("event_id", in.Event.ID), zap.String("subscription_id", in.SubscriptionID), zap.Int("attempt", in.Attempt))

	sub, err := a.Store.Get(ctx, in.SubscriptionID)
	switch {
	case errors.Is(err, subscription.ErrNotFound):
		rec.Skipped, rec.Error = true, "subscription was deleted"
		log.Info("delivery skipped", zap.String("reason", rec.Error))
		return rec, nil
	case err != nil:
		return rec, fmt.Errorf("load subscription %s: %w", in.SubscriptionID, err)
	case !sub.Enabled:
		rec.Skipped, rec.Error = true, "subscription is disabled"
		if sub.Health.DisabledReason != "" {
			rec.Error += " (" + sub.Health.DisabledReason + ")"
		}
		log.Info("delivery skipped", zap.String("reason", rec.Error))
		return rec, nil
	}

	body, err := in.Event.Marshal()
	if err != nil {
		return rec, temporal.NewNonRetryableApplicationError(err.Error(), string(delivery.ClassInternal), err)
	}
	if elapsed, sent := a.Sender.send(ctx, &rec, sub, in.Event.ID, body); sent && activity.IsActivity(ctx) {
		activity.GetMetricsHandler(ctx).WithTags(map[string]string{TagResult: AttemptResult(rec)}).
			Timer(MetricAttemptDuration).Record(elapsed)
	}
	log = log.With(zap.String("endpoint", DisplayEndpoint(sub.URL)), zap.Int("status", rec.StatusCode), zap.Int64("duration_ms", rec.DurationMs))
	a.recordHealth(ctx, log, sub, rec)
	if rec.Succeeded() {
		log.Info("delivered")
		return rec, nil
	}
	log.Warn("delivery attempt failed", zap.String("error_class", string(rec.Class)), zap.String("error", rec.Error))
	msg := fmt.Sprintf("attempt %d: %s", rec.Number, rec.Error)
	return rec, temporal.NewNonRetryableApplicationError(msg, string(rec.Class), nil, rec)
}

// send performs the HTTP exchange with the subscription's endpoint and
// fills in rec. It reports how long the exchange took, and whether a
// request was sent at all.
func (s *Sender) send(ctx context.Context, rec *delivery.Attempt, sub subscription.Subscription, msgID string, body []byte) (elapsed time.Duration, sent bool) {
	return s.post(ctx, rec, sub.URL, msgID, body, sub.ActiveSecrets(rec.StartedAt), "subscription has no active secret")
}

// post signs body with secrets (Standard Webhooks, message ID msgID, time
// rec.StartedAt), POSTs it to rawURL if the policy allows, and fills in rec
// as send does. noSecret is the error recorded when secrets is empty.
// Errors in rec never hold rawURL's path or query.
func (s *Sender) post(ctx context.Context, rec *delivery.Attempt, rawURL, msgID string, body []byte, secrets []signature.Secret, noSecret string) (elapsed time.Duration, sent bool) {
	if _, err := s.policy.CheckURL(rawURL); err != nil {
		rec.Class, rec.Error = delivery.ClassInvalidURL, err.Error()
		if egress.IsBlocked(err) {
			rec.Class = delivery.ClassBlockedAddress
		}
		return 0, false
	}
	if len(secrets) == 0 {
		rec.Class, rec.Error = delivery.ClassInternal, noSecret
		return 0, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		rec.Class, rec.Error = delivery.ClassInvalidURL, "cannot build request: "+redactURL(err.Error(), rawURL)
		return 0, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	signature.SetHeaders(req.Header, msgID, rec.StartedAt, body, secrets...)

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		elapsed = time.Since(start)
		rec.DurationMs = elapsed.Milliseconds()
		rec.Class, rec.Error = classifyTransportError(err), redactURL(err.Error(), rawURL)
		return elapsed, true
	}
	defer resp.Body.Close()
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseRead))
	elapsed = time.Since(start)
	rec.DurationMs = elapsed.Milliseconds()
	rec.StatusCode = resp.StatusCode
	rec.ResponseExcerpt = excerpt(head)
	rec.Class = delivery.ClassifyStatus(resp.StatusCode)
	if rec.Class != "" {
		rec.Error = fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		if rec.Class.Retryable() {
			rec.RetryAfter = delivery.Duration(delivery.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		}
		return elapsed, true
	}
	// A 2xx whose body we could not finish reading in time still counts:
	// the receiver has accepted the event when it sends its status line.
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		rec.Error = "response body not read completely: " + readErr.Error()
	}
	return elapsed, true
}

func classifyTransportError(err error) delivery.ErrorClass {
	var ne net.Error
	switch {
	case egress.IsBlocked(err):
		return delivery.ClassBlockedAddress
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return delivery.ClassTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return delivery.ClassTimeout
	default:
		return delivery.ClassConnection
	}
}

// redactURL removes the full URL (which may carry tokens in its path or
// query) from an error text, leaving scheme and host.
func redactURL(msg, raw string) string {
	return strings.ReplaceAll(msg, raw, DisplayEndpoint(raw)+"/…")
}

// excerpt keeps the start of a response body as valid UTF-8 text; a
// sequence cut at the limit becomes U+FFFD.
func excerpt(b []byte) string {
	if len(b) > ResponseExcerptBytes {
		b = b[:ResponseExcerptBytes]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
