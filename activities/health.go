package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// DefaultDisableAfter is how long an endpoint may fail, with no successful
// delivery, before its subscription is disabled once a delivery to it has
// used up its retry schedule: five days, as Svix does.
const DefaultDisableAfter = 5 * 24 * time.Hour

// EventSubscriptionDisabled is the type of the operational event sent when
// userhooks disables a subscription.
const EventSubscriptionDisabled = "subscription.disabled"

// OperatorWebhook is the endpoint that receives operational events, and
// the secret that signs them (Standard Webhooks, as deliveries are).
// Requests to it go through the Sender, so the egress policy applies.
type OperatorWebhook struct {
	URL    string
	Secret signature.Secret
}

// ParseOperatorWebhook checks an operator webhook's URL against the egress
// policy and parses its whsec_ secret. Both empty means no operator
// webhook: it returns nil, nil. Its errors never repeat the URL or the
// secret.
func ParseOperatorWebhook(rawURL, secret string, policy egress.Policy) (*OperatorWebhook, error) {
	switch {
	case rawURL == "" && secret == "":
		return nil, nil
	case rawURL == "":
		return nil, errors.New("operator webhook: a secret is given but no URL")
	case secret == "":
		return nil, errors.New("operator webhook: a whsec_ secret is required to sign its events")
	}
	if _, err := policy.CheckURL(rawURL); err != nil {
		return nil, fmt.Errorf("operator webhook URL: %w", err)
	}
	key, err := signature.ParseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("operator webhook secret: %w", err)
	}
	return &OperatorWebhook{URL: rawURL, Secret: key}, nil
}

// OperatorEvent is an operational event, as operators' endpoints receive
// it: an envelope like the user events' (id, type, timestamp, account_id,
// data), signed with the operator webhook's secret. The id is the
// webhook-id header, the same on every retry, so receivers can
// de-duplicate by it.
type OperatorEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Timestamp is when it happened (UTC, millisecond precision).
	Timestamp time.Time `json:"timestamp"`
	// AccountID is the account of the subscription concerned.
	AccountID string                   `json:"account_id"`
	Data      SubscriptionDisabledData `json:"data"`
}

// SubscriptionDisabledData is the data of a subscription.disabled event.
// It names the endpoint by scheme and host only: paths and queries often
// carry tokens.
type SubscriptionDisabledData struct {
	SubscriptionID string `json:"subscription_id"`
	// Endpoint is the subscription URL's scheme and host.
	Endpoint string `json:"endpoint"`
	// Reason says why, in a sentence for the subscription's owner.
	Reason string `json:"reason"`
	// LastSuccessAt is when a delivery last succeeded; null if none has.
	LastSuccessAt *time.Time `json:"last_success_at"`
	// FailingSince is when the endpoint started failing; null if it was
	// not (it cannot be, today, for a subscription disabled by userhooks).
	FailingSince *time.Time `json:"failing_since"`
}

// DisableFailingInput names a subscription whose delivery has just used up
// its retry schedule.
type DisableFailingInput struct {
	SubscriptionID string
}

// DisableFailingSubscription disables a subscription whose endpoint has
// been failing for at least DisableAfter, with no successful delivery
// since: the delivery workflow calls it when a delivery has used up its
// retry schedule. The check and the change are one store operation, so a
// success recorded meanwhile wins. It does nothing when DisableAfter is
// zero, and is idempotent. When it disables, it logs a warning and returns
// the subscription.disabled notice for operators.
func (a *Activities) DisableFailingSubscription(ctx context.Context, in DisableFailingInput) (DisableResult, error) {
	if a.DisableAfter <= 0 {
		return DisableResult{}, nil
	}
	at := a.now().UTC()
	reason := fmt.Sprintf("no successful delivery for at least %s, and a delivery used up its retry schedule", describeDuration(a.DisableAfter))
	changed, err := a.Store.DisableIfFailing(ctx, in.SubscriptionID, reason, at.Add(-a.DisableAfter), at)
	if errors.Is(err, subscription.ErrNotFound) {
		return DisableResult{}, nil
	}
	if err != nil {
		return DisableResult{}, fmt.Errorf("disable failing subscription %s: %w", in.SubscriptionID, err)
	}
	if !changed {
		return DisableResult{}, nil
	}
	return a.disabled(ctx, in.SubscriptionID, reason, at), nil
}

// disabled logs the warning about a subscription this worker just disabled
// and builds the notice for operators from its stored health.
func (a *Activities) disabled(ctx context.Context, id, reason string, at time.Time) DisableResult {
	notice := OperatorEvent{
		Type:      EventSubscriptionDisabled,
		Timestamp: at.UTC().Truncate(time.Millisecond),
		Data:      SubscriptionDisabledData{SubscriptionID: id, Reason: reason},
	}
	if u, err := uuid.NewV7(); err == nil {
		notice.ID = u.String()
	} else {
		notice.ID = uuid.NewString()
	}
	log := a.logger().With(zap.String("subscription_id", id), zap.String("reason", reason))
	sub, err := a.Store.Get(ctx, id)
	if err != nil {
		// Disabled all the same; say so with what is known.
		log.Warn("subscription disabled", zap.NamedError("details_error", err))
		return DisableResult{Disabled: true, Notice: &notice}
	}
	notice.AccountID = sub.AccountID
	notice.Data.Endpoint = DisplayEndpoint(sub.URL)
	fields := []zap.Field{zap.String("account_id", sub.AccountID), zap.String("endpoint", notice.Data.Endpoint)}
	if t := sub.Health.LastSuccessAt; !t.IsZero() {
		notice.Data.LastSuccessAt = &t
		fields = append(fields, zap.Time("last_success_at", t))
	}
	if t := sub.Health.FailingSince; !t.IsZero() {
		notice.Data.FailingSince = &t
		fields = append(fields, zap.Time("failing_since", t))
	}
	log.Warn("subscription disabled", fields...)
	return DisableResult{Disabled: true, Notice: &notice}
}

// NotifyInput is an operational event to send to the operator webhook.
type NotifyInput struct {
	Event OperatorEvent
}

// NotifySubscriptionDisabled sends a subscription.disabled event to the
// operator webhook, signed with its secret, through the Sender (so the
// egress policy applies to the operator's URL too). Without an operator
// webhook it does nothing: the disable activity has logged the event.
//
// An answer or a failure that may change on a retry (5xx, 408/425/429,
// timeout, connection error) is a retryable error; one that will not (any
// other 4xx, a URL the policy refuses) is non-retryable. The workflow gives
// this activity a short, bounded retry policy.
func (a *Activities) NotifySubscriptionDisabled(ctx context.Context, in NotifyInput) error {
	log := a.logger().With(zap.String("operator_event_id", in.Event.ID), zap.String("subscription_id", in.Event.Data.SubscriptionID))
	if a.Operator == nil {
		log.Info("no operator webhook configured; subscription.disabled was only logged")
		return nil
	}
	endpoint := DisplayEndpoint(a.Operator.URL)
	body, err := json.Marshal(in.Event)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("encode operator event %s: %v", in.Event.ID, err), string(delivery.ClassInternal), err)
	}
	rec := delivery.Attempt{StartedAt: a.now().UTC()}
	a.Sender.post(ctx, &rec, a.Operator.URL, in.Event.ID, body, []signature.Secret{a.Operator.Secret}, "the operator webhook has no secret")
	log = log.With(zap.String("endpoint", endpoint), zap.Int("status", rec.StatusCode), zap.Int64("duration_ms", rec.DurationMs))
	if rec.Succeeded() {
		log.Info("operator notified")
		return nil
	}
	log.Warn("operator notification failed", zap.String("error_class", string(rec.Class)), zap.String("error", rec.Error))
	msg := fmt.Sprintf("notify operator webhook %s of %s %s: %s", endpoint, in.Event.Type, in.Event.ID, rec.Error)
	if rec.Class.Retryable() {
		return temporal.NewApplicationError(msg, string(rec.Class))
	}
	return temporal.NewNonRetryableApplicationError(msg, string(rec.Class), nil)
}

// recordHealth records an attempt's outcome in the subscription's health,
// skipping what the store would not change: a success while the endpoint
// is not failing and its last success is recent, or a failure while it is
// already failing. So a healthy endpoint costs a write a minute at most,
// and a failing one no write per attempt. A fault on our side
// (ClassInternal) says nothing about the endpoint and is not recorded. A
// store error is logged, not returned: the request has been sent, and
// failing the activity would send it again.
func (a *Activities) recordHealth(ctx context.Context, log *zap.Logger, sub subscription.Subscription, rec delivery.Attempt) {
	ok, h := rec.Succeeded(), sub.Health
	switch {
	case ok && !h.Failing() && !h.LastSuccessAt.IsZero() && rec.StartedAt.Sub(h.LastSuccessAt) < subscription.LastSuccessResolution:
		return
	case !ok && h.Failing():
		return
	case !ok && rec.Class == delivery.ClassInternal:
		return
	}
	if err := a.Store.RecordAttempt(ctx, sub.ID, ok, rec.StartedAt); err != nil {
		log.Warn("could not record the endpoint's health", zap.Error(err))
	}
}

// describeDuration writes d for people: "5 days", "36 hours", "90m0s".
func describeDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	}
	return d.String()
}
