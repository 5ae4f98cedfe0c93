// Package activities holds the Temporal activities of userhooks: the only
// code that touches the subscription store and the network. Workflows call
// them; they never call workflows.
package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/subscription"
)

// Activities carries the dependencies of every activity. Its methods are
// registered with the worker as activities; it is safe for concurrent use
// when its fields are.
type Activities struct {
	// Store holds subscriptions, including their URLs and secrets.
	Store subscription.Store
	// Sender posts signed requests through an SSRF-safe client.
	Sender *Sender
	// Logger receives one line per attempt. Nil means no logs.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DisableAfter is how long an endpoint must have been failing, with no
	// successful delivery, before DisableFailingSubscription turns its
	// subscription off. Zero (or negative) turns automatic disabling off;
	// workers use DefaultDisableAfter unless configured otherwise.
	DisableAfter time.Duration
	// Operator is where NotifySubscriptionDisabled sends operational
	// events; nil means they are only logged.
	Operator *OperatorWebhook
	// DefaultMaxInFlight is the limit on requests in flight to one
	// endpoint that MatchSubscriptions gives subscriptions that set none
	// (MaxInFlight 0); 0 means no limit. Configure every worker alike: the
	// worker that matches an event decides for its deliveries.
	DefaultMaxInFlight int
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Activities) logger() *zap.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return zap.NewNop()
}

// MatchInput asks for one page of the subscriptions an event goes to.
type MatchInput struct {
	AccountID string
	EventType event.Type
	// AfterID is the last subscription ID of the previous page ("" first).
	AfterID string
	Limit   int
}

// Target is a subscription an event is delivered to, as workflows see it:
// an ID, a display form of its endpoint, and its retry schedule. It never
// carries the URL's path or query, nor secrets.
type Target struct {
	SubscriptionID string
	// Endpoint is the URL's scheme and host, for summaries in the Web UI.
	Endpoint string
	// Schedule overrides the default retry schedule when set.
	Schedule *delivery.Schedule `json:",omitempty"`
	// MaxInFlight limits the requests in flight to the endpoint across all
	// workers: the subscription's limit, or the worker's
	// DefaultMaxInFlight when it sets none. 0 means no limit.
	MaxInFlight int `json:",omitempty"`
}

// MatchResult is one page of targets.
type MatchResult struct {
	Targets []Target
	// More is true when another page may follow the last target.
	More bool
}

// MatchSubscriptions returns the enabled subscriptions of the event's
// account that accept its type, one page at a time, in ID order. A
// subscription without a concurrency limit gets DefaultMaxInFlight: the
// result, recorded in history, is what the deliveries apply.
func (a *Activities) MatchSubscriptions(ctx context.Context, in MatchInput) (MatchResult, error) {
	if in.Limit <= 0 {
		return MatchResult{}, fmt.Errorf("match subscriptions: limit %d must be positive", in.Limit)
	}
	subs, err := a.Store.Match(ctx, in.AccountID, string(in.EventType), in.AfterID, in.Limit)
	if err != nil {
		return MatchResult{}, fmt.Errorf("match subscriptions of account %s for %s: %w", in.AccountID, in.EventType, err)
	}
	res := MatchResult{Targets: make([]Target, 0, len(subs)), More: len(subs) == in.Limit}
	for _, s := range subs {
		limit := s.MaxInFlight
		if limit == 0 {
			limit = max(0, a.DefaultMaxInFlight)
		}
		res.Targets = append(res.Targets, Target{SubscriptionID: s.ID, Endpoint: DisplayEndpoint(s.URL), Schedule: s.Schedule, MaxInFlight: limit})
	}
	return res, nil
}

// DisplayEndpoint reduces a URL to scheme and host ("https://crm.example.com"),
// the part that is safe to show in workflow summaries and logs: paths and
// queries often carry tokens.
func DisplayEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}

// DisableInput names the subscription to disable and why.
type DisableInput struct {
	SubscriptionID string
	// Reason is a sentence for the subscription's owner, such as
	// ReasonGone.
	Reason string
}

// ReasonGone is why a subscription whose endpoint answered 410 Gone is
// disabled.
const ReasonGone = "endpoint answered 410 Gone"

// DisableResult says whether a disable activity turned a subscription off.
type DisableResult struct {
	// Disabled is true when this call disabled the subscription; false
	// when it was already disabled, deleted, or (DisableFailingSubscription)
	// not failing long enough.
	Disabled bool
	// Notice is the operational event to send with
	// NotifySubscriptionDisabled; set when Disabled.
	Notice *OperatorEvent `json:",omitempty"`
}

// DisableSubscription turns a subscription off at once, for instance after
// its endpoint answered 410 Gone, and records the reason in its health. It
// is idempotent: a subscription that is already disabled, or deleted, is
// left as it is and the result says so. When it disables, it logs a
// warning and returns the subscription.disabled notice for operators.
func (a *Activities) DisableSubscription(ctx context.Context, in DisableInput) (DisableResult, error) {
	reason := in.Reason
	if reason == "" {
		reason = "disabled by userhooks"
	}
	at := a.now().UTC()
	changed, err := a.Store.Disable(ctx, in.SubscriptionID, reason, at)
	if errors.Is(err, subscription.ErrNotFound) {
		return DisableResult{}, nil
	}
	if err != nil {
		return DisableResult{}, fmt.Errorf("disable subscription %s: %w", in.SubscriptionID, err)
	}
	if !changed {
		return DisableResult{}, nil
	}
	return a.disabled(ctx, in.SubscriptionID, reason, at), nil
}
