package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/starter"
)

// recordingPublisher stands in for starter.Publisher, which needs Temporal
// (the integration tests cover it): it records what it is handed and is
// idempotent by event ID, like the real one.
type recordingPublisher struct {
	mu        sync.Mutex
	published []event.Event
	runs      map[string]string
}

func (p *recordingPublisher) Publish(_ context.Context, e event.Event) (starter.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := e.Validate(); err != nil {
		return starter.Receipt{}, err
	}
	r := starter.Receipt{Event: e, WorkflowID: "event/" + e.ID}
	if run, ok := p.runs[e.ID]; ok {
		r.RunID, r.Duplicate = run, true
		return r, nil
	}
	if p.runs == nil {
		p.runs = map[string]string{}
	}
	r.RunID = fmt.Sprintf("run-%d", len(p.published)+1)
	p.runs[e.ID] = r.RunID
	p.published = append(p.published, e)
	return r, nil
}

// events returns what started a run, in order.
func (p *recordingPublisher) events() []event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.published)
}

// fakeDeliveries stands in for deliveries.Service, which needs Temporal: an
// in-memory delivery log, scoped by account like the real one, that records
// the operations asked of it.
type fakeDeliveries struct {
	mu   sync.Mutex
	runs []api.DeliveryDetail // oldest first; the last run of a key is current
	// calls holds each operation as "op account event/subscription".
	calls []string
	// lastFilter and lastPageSize are List's last arguments.
	lastFilter   api.DeliveryFilter
	lastPageSize int
}

func (f *fakeDeliveries) add(d api.DeliveryDetail) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d.WorkflowID = "delivery/" + d.EventID + "/" + d.SubscriptionID
	if d.RunID == "" {
		d.RunID = fmt.Sprintf("00000000-0000-4000-8000-%012d", len(f.runs)+1)
	}
	f.runs = append(f.runs, d)
}

func (f *fakeDeliveries) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeDeliveries) listArgs() (api.DeliveryFilter, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastFilter, f.lastPageSize
}

func isRunning(s delivery.Status) bool {
	return s == delivery.StatusPending || s == delivery.StatusRetrying
}

// current returns the index of the latest run of k in account, or -1.
func (f *fakeDeliveries) current(account string, k api.DeliveryKey) int {
	for i := len(f.runs) - 1; i >= 0; i-- {
		d := f.runs[i]
		if d.AccountID == account && d.EventID == k.EventID && d.SubscriptionID == k.SubscriptionID {
			return i
		}
	}
	return -1
}

func (f *fakeDeliveries) List(_ context.Context, filter api.DeliveryFilter, pageSize int, pageToken string) (api.DeliveryPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastFilter, f.lastPageSize = filter, pageSize
	start := 0
	if pageToken != "" {
		n, err := strconv.Atoi(pageToken)
		if err != nil {
			return api.DeliveryPage{}, fmt.Errorf("%w: page_token is not one of ours", api.ErrInvalidFilter)
		}
		start = n
	}
	var matched []api.Delivery
	for _, d := range f.runs {
		if d.AccountID != filter.AccountID ||
			(filter.SubscriptionID != "" && d.SubscriptionID != filter.SubscriptionID) ||
			(filter.EventID != "" && d.EventID != filter.EventID) ||
			(filter.UserID != "" && d.UserID != filter.UserID) ||
			(filter.EventType != "" && d.EventType != filter.EventType) ||
			(filter.Status != "" && d.Status != filter.Status) ||
			(!filter.StartedAfter.IsZero() && d.StartedAt.Before(filter.StartedAfter)) ||
			(!filter.StartedBefore.IsZero() && !d.StartedAt.Before(filter.StartedBefore)) {
			continue
		}
		d.Endpoint = "" // as the real List: visibility has no summaries
		matched = append(matched, d.Delivery)
	}
	var page api.DeliveryPage
	if start < len(matched) {
		end := min(start+pageSize, len(matched))
		page.Deliveries = matched[start:end]
		if end < len(matched) {
			page.NextPageToken = strconv.Itoa(end)
		}
	}
	return page, nil
}

func (f *fakeDeliveries) Get(_ context.Context, account string, k api.DeliveryKey, runID string) (api.DeliveryDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.runs) - 1; i >= 0; i-- {
		d := f.runs[i]
		if d.AccountID == account && d.EventID == k.EventID && d.SubscriptionID == k.SubscriptionID && (runID == "" || d.RunID == runID) {
			return d, nil
		}
	}
	return api.DeliveryDetail{}, fmt.Errorf("get delivery: %w", api.ErrDeliveryNotFound)
}

func (f *fakeDeliveries) Redeliver(_ context.Context, account string, k api.DeliveryKey) (api.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "redeliver "+account+" "+k.EventID+"/"+k.SubscriptionID)
	i := f.current(account, k)
	if i < 0 {
		return api.Delivery{}, api.ErrDeliveryNotFound
	}
	if isRunning(f.runs[i].Status) {
		return api.Delivery{}, api.ErrStillRunning
	}
	return f.redeliverLocked(i), nil
}

func (f *fakeDeliveries) redeliverLocked(i int) api.Delivery {
	d := f.runs[i].Delivery
	d.RedeliveryOf = d.RunID
	d.RunID = fmt.Sprintf("00000000-0000-4000-8000-%012d", len(f.runs)+1)
	d.Status, d.Attempts, d.ClosedAt = delivery.StatusPending, 0, time.Time{}
	f.runs = append(f.runs, api.DeliveryDetail{Delivery: d})
	return d
}

func (f *fakeDeliveries) Cancel(_ context.Context, account string, k api.DeliveryKey) error {
	return f.operate("cancel", account, k)
}

func (f *fakeDeliveries) RetryNow(_ context.Context, account string, k api.DeliveryKey) error {
	return f.operate("retry", account, k)
}

func (f *fakeDeliveries) operate(op, account string, k api.DeliveryKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+account+" "+k.EventID+"/"+k.SubscriptionID)
	i := f.current(account, k)
	if i < 0 {
		return api.ErrDeliveryNotFound
	}
	if !isRunning(f.runs[i].Status) {
		return api.ErrNotRunning
	}
	return nil
}

func (f *fakeDeliveries) Recover(_ context.Context, account, subscriptionID string, since time.Time) (api.RecoverResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "recover "+account+" "+subscriptionID+" since "+since.Format(time.RFC3339))
	var res api.RecoverResult
	seen := map[api.DeliveryKey]bool{}
	for i := len(f.runs) - 1; i >= 0; i-- {
		d := f.runs[i]
		k := api.DeliveryKey{EventID: d.EventID, SubscriptionID: d.SubscriptionID}
		if d.AccountID != account || d.SubscriptionID != subscriptionID || seen[k] || d.StartedAt.Before(since) {
			continue
		}
		seen[k] = true
		switch {
		case isRunning(d.Status):
			res.AlreadyRunning++
		case d.Status == delivery.StatusFailed:
			res.Redelivered = append(res.Redelivered, f.redeliverLocked(i))
		}
	}
	return res, nil
}
