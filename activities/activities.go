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
}

// MatchResult is one page of targets.
type MatchResult struct {
	Targets []Target
	// More is true when another page may follow the last target.
	More bool
}

// MatchSubscriptions returns the enabled subscriptions of the event's
// account that accept its type, one page at a time, in ID order.
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
		res.Targets = append(res.Targets, Target{SubscriptionID: s.ID, Endpoint: DisplayEndpoint(s.URL), Schedule: s.Schedule})
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
	Reason         string
}

// DisableSubscription turns a subscription off, for instance after its
// endpoint answered 410 Gone. It is idempotent.
func (a *Activities) DisableSubscription(ctx context.Context, in DisableInput) error {
	err := a.Store.SetEnabled(ctx, in.SubscriptionID, false)
	if errors.Is(err, subscription.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("disable subscription %s: %w", in.SubscriptionID, err)
	}
	a.logger().Warn("subscription disabled", zap.String("subscription_id", in.SubscriptionID), zap.String("reason", in.Reason))
	return nil
}
