package api_test

import (
	"context"
	"errors"
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

// fakePublisher stands in for starter.Publisher (tested against a real
// Temporal server elsewhere): idempotent by event ID, like the real one.
type fakePublisher struct {
	mu sync.Mutex
	// published holds each event that started a run, in order.
	published []event.Event
	// runs maps event IDs to their run IDs.
	runs map[string]string
	// err, when set, fails every Publish.
	err error
}

func (p *fakePublisher) Publish(_ context.Context, e event.Event) (starter.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return starter.Receipt{}, p.err
	}
	// The real publisher validates; so must what the API hands over.
	if err := e.Validate(); err != nil {
		return starter.Receipt{}, err
	}
	r := starter.Receipt{Event: e, WorkflowID: "event/" + e.ID}
	if run, ok := p.runs[e.ID]; ok {
		r.RunID, r.Duplicate = run, true
		return r, nil
	}
	r.RunID = fmt.Sprintf("run-%d", len(p.published)+1)
	p.runs[e.ID] = r.RunID
	p.published = append(p.published, e)
	return r, nil
}

func (p *fakePublisher) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// first returns the first event published.
func (p *fakePublisher) first() event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.published) == 0 {
		return event.Event{}
	}
	return p.published[0]
}

func (p *fakePublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.published)
}

// fakeDeliveries stands in for deliveries.Service (tested against a real
// Temporal server elsewhere): an in-memory delivery log with the same
// account scoping and error contract.
type fakeDeliveries struct {
	mu sync.Mutex
	// runs holds every run, oldest first; the last of a key is current.
	runs []api.DeliveryDetail
	// calls records each operation as "op account event/subscription".
	calls []string
	// lastFilter, lastPageSize and lastToken are List's last arguments.
	lastFilter   api.DeliveryFilter
	lastPageSize int
	lastToken    string
	// err, when set, fails every call.
	err error
	// panicOn is an event ID whose Get panics, to test the API's recovery.
	panicOn string
}

func newFakeDeliveries() *fakeDeliveries { return &fakeDeliveries{panicOn: "panic"} }

// add puts a run in the log.
func (f *fakeDeliveries) add(d api.DeliveryDetail) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.WorkflowID == "" {
		d.WorkflowID = "delivery/" + d.EventID + "/" + d.SubscriptionID
	}
	if d.RunID == "" {
		d.RunID = fmt.Sprintf("00000000-0000-4000-8000-%012d", len(f.runs)+1)
	}
	f.runs = append(f.runs, d)
}

func running(s delivery.Status) bool {
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

func (f *fakeDeliveries) record(op, account string, k api.DeliveryKey) {
	f.calls = append(f.calls, op+" "+account+" "+k.EventID+"/"+k.SubscriptionID)
}

func (f *fakeDeliveries) List(_ context.Context, filter api.DeliveryFilter, pageSize int, pageToken string) (api.DeliveryPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastFilter, f.lastPageSize, f.lastToken = filter, pageSize, pageToken
	if f.err != nil {
		return api.DeliveryPage{}, f.err
	}
	if filter.UserID == "needs-event-type" && filter.EventType == "" {
		return api.DeliveryPage{}, fmt.Errorf("%w: searching by user_id needs event_type too", api.ErrInvalidFilter)
	}
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
		matched = append(matched, d.Delivery)
	}
	page := api.DeliveryPage{}
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
	if f.panicOn != "" && k.EventID == f.panicOn {
		panic("fake delivery log exploded")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("get", account, k)
	if f.err != nil {
		return api.DeliveryDetail{}, f.err
	}
	for i := len(f.runs) - 1; i >= 0; i-- {
		d := f.runs[i]
		if d.AccountID == account && d.EventID == k.EventID && d.SubscriptionID == k.SubscriptionID && (runID == "" || d.RunID == runID) {
			return d, nil
		}
	}
	return api.DeliveryDetail{}, fmt.Errorf("get delivery %s/%s: %w", k.EventID, k.SubscriptionID, api.ErrDeliveryNotFound)
}

func (f *fakeDeliveries) Redeliver(_ context.Context, account string, k api.DeliveryKey) (api.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("redeliver", account, k)
	if f.err != nil {
		return api.Delivery{}, f.err
	}
	i := f.current(account, k)
	if i < 0 {
		return api.Delivery{}, api.ErrDeliveryNotFound
	}
	if running(f.runs[i].Status) {
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
	f.record(op, account, k)
	if f.err != nil {
		return f.err
	}
	i := f.current(account, k)
	if i < 0 {
		return api.ErrDeliveryNotFound
	}
	if !running(f.runs[i].Status) {
		return fmt.Errorf("%s: %w", op, api.ErrNotRunning)
	}
	return nil
}

func (f *fakeDeliveries) Recover(_ context.Context, account, subscriptionID string, since time.Time) (api.RecoverResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("recover", account, api.DeliveryKey{SubscriptionID: subscriptionID})
	f.calls[len(f.calls)-1] += " since " + since.Format(time.RFC3339)
	if f.err != nil {
		return api.RecoverResult{}, f.err
	}
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
		case running(d.Status):
			res.AlreadyRunning++
		case d.Status == delivery.StatusFailed:
			res.Redelivered = append(res.Redelivered, f.redeliverLocked(i))
		}
	}
	return res, nil
}

func (f *fakeDeliveries) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// listArgs returns List's last arguments.
func (f *fakeDeliveries) listArgs() (api.DeliveryFilter, int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastFilter, f.lastPageSize, f.lastToken
}

func (f *fakeDeliveries) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

var errTemporalDown = errors.New("temporal: connection refused")
