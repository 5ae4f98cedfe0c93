package integration

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/userhooks/userhooks/deliveries"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/workflows"
)

// hour is a schedule whose only retry waits an hour: within a test, a
// second attempt can only come from a retry-now signal or a redelivery.
var hour = &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Hour)}, MaxRetryAfter: delivery.Duration(time.Hour)}

// deliveriesService returns the delivery service over the test's client and
// task queue.
func (e *env) deliveriesService(dc converter.DataConverter) *deliveries.Service {
	return deliveries.New(e.client, deliveries.Options{Namespace: server.GetDefaultNamespace(), TaskQueue: e.taskQueue, DataConverter: dc})
}

// listAll pages through List with pageSize and returns every delivery.
func listAll(t *testing.T, svc *deliveries.Service, f deliveries.Filter, pageSize int) ([]deliveries.Delivery, int) {
	t.Helper()
	var (
		all   []deliveries.Delivery
		token string
		pages int
	)
	for {
		p, err := svc.List(context.Background(), f, pageSize, token)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		pages++
		all = append(all, p.Deliveries...)
		if p.NextPageToken == "" {
			return all, pages
		}
		if pages > 100 {
			t.Fatalf("List(%+v) did not end after 100 pages", f)
		}
		token = p.NextPageToken
	}
}

// waitListed polls List until it returns exactly want deliveries for which
// ok holds (nil: any), and returns them. Visibility is eventually
// consistent, so a fresh change shows after a moment.
func waitListed(t *testing.T, svc *deliveries.Service, f deliveries.Filter, want int, ok func(deliveries.Delivery) bool) []deliveries.Delivery {
	t.Helper()
	var got []deliveries.Delivery
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ = listAll(t, svc, f, deliveries.MaxPageSize)
		good := len(got) == want
		for _, d := range got {
			good = good && (ok == nil || ok(d))
		}
		if good {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("List(%+v) = %d deliveries within 30 s, want %d:\n%s", f, len(got), want, describeDeliveries(got))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describeDeliveries(ds []deliveries.Delivery) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "  %s run %s: %s, %d attempts, redelivery of %q\n", d.WorkflowID, d.RunID, d.Status, d.Attempts, d.RedeliveryOf)
	}
	return b.String()
}

// waitDetail polls Get until cond holds.
func waitDetail(t *testing.T, svc *deliveries.Service, account string, k deliveries.Key, what string, cond func(deliveries.Detail) bool) deliveries.Detail {
	t.Helper()
	var d deliveries.Detail
	waitFor(t, 30*time.Second, what, func() bool {
		var err error
		d, err = svc.Get(context.Background(), account, k, "")
		if err != nil && !errors.Is(err, deliveries.ErrNotFound) {
			t.Fatalf("Get(%+v): %v", k, err)
		}
		return err == nil && cond(d)
	})
	return d
}

func webhookIDs(rs []received) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.Header.Get("webhook-id"))
	}
	return ids
}

func TestDeliveries_ListFiltersPagesAndAccounts(t *testing.T) {
	e := newEnv(t)
	svc := e.deliveriesService(nil)
	account, other := "acct-"+t.Name(), "acct-other-"+t.Name()
	ok, refusing, others := newReceiver(t), newReceiver(t, 400, 400, 400), newReceiver(t)
	subOK, _ := e.subscribe(account, ok.srv.URL, nil, fast)
	subRefusing, _ := e.subscribe(account, refusing.srv.URL, nil, fast)
	subOther, _ := e.subscribe(other, others.srv.URL, nil, fast)

	deleted := userCreated(account, "u_2")
	deleted.Type = event.TypeUserDeleted
	var evs []event.Event
	var t0 time.Time
	for i, ev := range []event.Event{userCreated(account, "u_1"), deleted, userCreated(account, "u_3"), userCreated(other, "u_1")} {
		if i == 2 {
			t0 = time.Now()
		}
		r, _, err := e.publishAndWait(ev)
		if err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		evs = append(evs, r.Event)
	}

	all := waitListed(t, svc, deliveries.Filter{AccountID: account}, 6, func(d deliveries.Delivery) bool { return !d.ClosedAt.IsZero() })
	for _, d := range all {
		if d.AccountID != account || d.EventType == "" || d.UserID == "" || d.RunID == "" || d.StartedAt.IsZero() {
			t.Errorf("listed delivery lacks fields: %+v", d)
		}
		if want := workflows.DeliveryWorkflowID(d.EventID, d.SubscriptionID); d.WorkflowID != want {
			t.Errorf("listed workflow ID %s, want %s", d.WorkflowID, want)
		}
	}

	for _, tc := range []struct {
		name   string
		filter deliveries.Filter
		want   int
		ok     func(deliveries.Delivery) bool
	}{
		{"failed", deliveries.Filter{Status: delivery.StatusFailed}, 3,
			func(d deliveries.Delivery) bool {
				return d.SubscriptionID == subRefusing.ID && d.Status == delivery.StatusFailed && d.Attempts == 1
			}},
		{"delivered", deliveries.Filter{Status: delivery.StatusDelivered}, 3,
			func(d deliveries.Delivery) bool {
				return d.SubscriptionID == subOK.ID && d.Status == delivery.StatusDelivered
			}},
		{"retrying", deliveries.Filter{Status: delivery.StatusRetrying}, 0, nil},
		{"subscription", deliveries.Filter{SubscriptionID: subOK.ID}, 3,
			func(d deliveries.Delivery) bool { return d.SubscriptionID == subOK.ID }},
		{"event", deliveries.Filter{EventID: evs[1].ID}, 2,
			func(d deliveries.Delivery) bool { return d.EventID == evs[1].ID }},
		{"user", deliveries.Filter{UserID: "u_3"}, 2,
			func(d deliveries.Delivery) bool { return d.UserID == "u_3" && d.EventID == evs[2].ID }},
		{"event type", deliveries.Filter{EventType: string(event.TypeUserDeleted)}, 2,
			func(d deliveries.Delivery) bool { return d.EventType == string(event.TypeUserDeleted) }},
		{"started after", deliveries.Filter{StartedAfter: t0}, 2,
			func(d deliveries.Delivery) bool { return d.EventID == evs[2].ID }},
		{"started before", deliveries.Filter{StartedBefore: t0}, 4,
			func(d deliveries.Delivery) bool { return d.EventID != evs[2].ID }},
		{"combined", deliveries.Filter{SubscriptionID: subRefusing.ID, EventType: string(event.TypeUserCreated), Status: delivery.StatusFailed}, 2,
			func(d deliveries.Delivery) bool {
				return d.SubscriptionID == subRefusing.ID && d.EventType == "user.created"
			}},
		// Another account's IDs find nothing in this account.
		{"other account's subscription", deliveries.Filter{SubscriptionID: subOther.ID}, 0, nil},
		{"other account's event", deliveries.Filter{EventID: evs[3].ID}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.filter.AccountID = account
			waitListed(t, svc, tc.filter, tc.want, tc.ok)
		})
	}

	// The other account sees its own delivery only.
	waitListed(t, svc, deliveries.Filter{AccountID: other}, 1, func(d deliveries.Delivery) bool {
		return d.AccountID == other && d.SubscriptionID == subOther.ID
	})
	for _, f := range []deliveries.Filter{{AccountID: other, EventID: evs[0].ID}, {AccountID: other, SubscriptionID: subOK.ID}, {AccountID: "acct-nobody"}} {
		if got, _ := listAll(t, svc, f, 10); len(got) != 0 {
			t.Errorf("List(%+v) = %d deliveries of another account, want none", f, len(got))
		}
	}

	// Pages: every delivery once, open runs first and then newest closed
	// first, whatever the page size.
	for _, size := range []int{1, 4} {
		got, pages := listAll(t, svc, deliveries.Filter{AccountID: account}, size)
		if wantPages := (6 + size - 1) / size; pages < wantPages || pages > wantPages+1 {
			t.Errorf("page size %d: %d pages, want %d (or one more, empty)", size, pages, wantPages)
		}
		runs := map[string]bool{}
		for i, d := range got {
			runs[d.RunID] = true
			if i > 0 && d.ClosedAt.After(got[i-1].ClosedAt) {
				t.Errorf("page size %d: %s (closed %s) listed after %s (closed %s): not newest first",
					size, d.RunID, d.ClosedAt, got[i-1].RunID, got[i-1].ClosedAt)
			}
		}
		if len(got) != 6 || len(runs) != 6 {
			t.Errorf("page size %d: %d deliveries, %d distinct runs; want 6 and 6", size, len(got), len(runs))
		}
	}

	// Hostile input never reaches a query.
	ctx := context.Background()
	for _, f := range []deliveries.Filter{
		{AccountID: `' OR '1'='1`},
		{AccountID: account + `' OR UserhooksAccountID != '`},
		{AccountID: account, UserID: `u_1' OR '1'='1`},
		{AccountID: account, EventID: `e\' OR 1=1`},
		{AccountID: account, SubscriptionID: `x" OR "1"="1`},
		{AccountID: account, EventType: "user.created' OR 'a'='a"},
		{AccountID: account, Status: "failed') OR ('1'='1"},
		{AccountID: ""},
	} {
		if p, err := svc.List(ctx, f, 10, ""); !errors.Is(err, deliveries.ErrInvalidFilter) {
			t.Errorf("List(%+v) = %d deliveries, %v; want ErrInvalidFilter", f, len(p.Deliveries), err)
		}
	}
	// Page tokens: forged ones, and one issued for another account's
	// filter, are refused before they reach Temporal.
	first, err := svc.List(ctx, deliveries.Filter{AccountID: account}, 2, "")
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("List = %+v, %v; want a next page", first, err)
	}
	for name, token := range map[string]string{
		"malformed":             "not a token!",
		"Temporal's own format": base64.RawURLEncoding.EncodeToString([]byte(`{"CloseTime":"x"}`)),
		"forged":                base64.RawURLEncoding.EncodeToString([]byte(`{"RunID":"' OR '1'='1","MAC":"0123456789abcdef"}`)),
	} {
		if _, err := svc.List(ctx, deliveries.Filter{AccountID: account}, 10, token); !errors.Is(err, deliveries.ErrInvalidFilter) {
			t.Errorf("List with a %s page token: %v, want ErrInvalidFilter", name, err)
		}
	}
	if p, err := svc.List(ctx, deliveries.Filter{AccountID: other}, 2, first.NextPageToken); !errors.Is(err, deliveries.ErrInvalidFilter) {
		t.Errorf("another account's page token: %d deliveries, %v; want ErrInvalidFilter", len(p.Deliveries), err)
	}
}

func TestDeliveries_GetShowsEveryAttemptInOrder(t *testing.T) {
	e := newEnv(t)
	svc := e.deliveriesService(nil)
	account := "acct-" + t.Name()
	rc := newReceiver(t, 500, 500, 200)
	sub, secret := e.subscribe(account, rc.srv.URL+"/hooks?token=never-shown", nil, fast)
	rc.verifyWith(secret)
	r, sum, err := e.publishAndWait(userCreated(account, "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	k := deliveries.Key{EventID: r.Event.ID, SubscriptionID: sub.ID}
	ctx := context.Background()

	d, err := svc.Get(ctx, account, k, "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != delivery.StatusDelivered || d.Attempts != 3 || d.AccountID != account || d.EventID != r.Event.ID ||
		d.SubscriptionID != sub.ID || d.UserID != "u_1" || d.EventType != "user.created" || d.RedeliveryOf != "" {
		t.Errorf("Get = %+v, want delivered on attempt 3", d.Delivery)
	}
	if d.Endpoint != rc.srv.URL {
		t.Errorf("Endpoint = %q, want %q (scheme and host only)", d.Endpoint, rc.srv.URL)
	}
	if d.StartedAt.IsZero() || d.ClosedAt.Before(d.StartedAt) || !d.NextAttemptAt.IsZero() {
		t.Errorf("times: started %s, closed %s, next %s; want started ≤ closed and no next attempt", d.StartedAt, d.ClosedAt, d.NextAttemptAt)
	}
	if len(d.AttemptLog) != 3 {
		t.Fatalf("attempt log has %d attempts, want 3: %+v", len(d.AttemptLog), d.AttemptLog)
	}
	for i, want := range []struct {
		code  int
		class delivery.ErrorClass
	}{{500, delivery.ClassServerError}, {500, delivery.ClassServerError}, {200, ""}} {
		a := d.AttemptLog[i]
		if a.Number != i+1 || a.StatusCode != want.code || a.Class != want.class || a.StartedAt.IsZero() {
			t.Errorf("attempt %d = %+v, want HTTP %d, class %q", i+1, a, want.code, want.class)
		}
		if i > 0 && !a.StartedAt.After(d.AttemptLog[i-1].StartedAt) {
			t.Errorf("attempt %d started %s, not after attempt %d", i+1, a.StartedAt, i)
		}
	}
	if !strings.Contains(d.AttemptLog[0].ResponseExcerpt, `"answer":500`) {
		t.Errorf("attempt 1 excerpt = %q, want the receiver's body", d.AttemptLog[0].ResponseExcerpt)
	}
	byRun, err := svc.Get(ctx, account, k, d.RunID)
	if err != nil || byRun.RunID != d.RunID || len(byRun.AttemptLog) != 3 {
		t.Errorf("Get by run ID = %+v, %v; want the same run", byRun.Delivery, err)
	}

	// Another account, an unknown event, an unknown run: not found, and
	// nothing happens to the delivery.
	unknownRun := "3b5f0c1e-2d4a-4b6c-8d9e-0f1a2b3c4d5e"
	if _, err := svc.Get(ctx, account, k, unknownRun); !errors.Is(err, deliveries.ErrNotFound) {
		t.Errorf("Get of an unknown run: %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		account string
		key     deliveries.Key
	}{
		{"acct-someone-else", k},
		{account, deliveries.Key{EventID: "no-such-event", SubscriptionID: sub.ID}},
	} {
		if _, err := svc.Get(ctx, tc.account, tc.key, ""); !errors.Is(err, deliveries.ErrNotFound) {
			t.Errorf("Get(%s, %+v): %v, want ErrNotFound", tc.account, tc.key, err)
		}
		if _, err := svc.Get(ctx, tc.account, tc.key, d.RunID); !errors.Is(err, deliveries.ErrNotFound) {
			t.Errorf("Get(%s, %+v, run): %v, want ErrNotFound", tc.account, tc.key, err)
		}
		if _, err := svc.Redeliver(ctx, tc.account, tc.key); !errors.Is(err, deliveries.ErrNotFound) {
			t.Errorf("Redeliver(%s, %+v): %v, want ErrNotFound", tc.account, tc.key, err)
		}
		if err := svc.Cancel(ctx, tc.account, tc.key); !errors.Is(err, deliveries.ErrNotFound) {
			t.Errorf("Cancel(%s, %+v): %v, want ErrNotFound", tc.account, tc.key, err)
		}
		if err := svc.RetryNow(ctx, tc.account, tc.key); !errors.Is(err, deliveries.ErrNotFound) {
			t.Errorf("RetryNow(%s, %+v): %v, want ErrNotFound", tc.account, tc.key, err)
		}
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("receiver got %d requests, want still 3 (nothing redelivered)", n)
	}
	if after, err := svc.Get(ctx, account, k, ""); err != nil || after.RunID != d.RunID {
		t.Errorf("latest run after the refused operations = %+v, %v; want still %s", after.Delivery, err, d.RunID)
	}
}

func TestDeliveries_RedeliverStartsANewRunWithTheSameWebhookID(t *testing.T) {
	e := newEnv(t)
	svc := e.deliveriesService(nil)
	account := "acct-" + t.Name()
	// 400: failed at once. Redelivery 1: 200. Redelivery 2: 500, then it
	// waits an hour.
	rc := newReceiver(t, 400, 200, 500)
	sub, secret := e.subscribe(account, rc.srv.URL, nil, hour)
	rc.verifyWith(secret)
	r, sum, err := e.publishAndWait(userCreated(account, "u_1"))
	if err != nil || sum.Failed != 1 {
		t.Fatalf("event workflow: %+v, %v; want one failed", sum, err)
	}
	ctx := context.Background()
	k := deliveries.Key{EventID: r.Event.ID, SubscriptionID: sub.ID}
	orig, err := svc.Get(ctx, account, k, "")
	if err != nil || orig.Status != delivery.StatusFailed {
		t.Fatalf("Get = %+v, %v; want failed", orig.Delivery, err)
	}

	// A failed delivery, redelivered, is delivered.
	d1, err := svc.Redeliver(ctx, account, k)
	if err != nil {
		t.Fatal(err)
	}
	if d1.RunID == "" || d1.RunID == orig.RunID || d1.RedeliveryOf != orig.RunID || d1.WorkflowID != orig.WorkflowID || d1.AccountID != account {
		t.Errorf("Redeliver = %+v, want a new run of %s redelivering %s", d1, orig.WorkflowID, orig.RunID)
	}
	if err := e.client.GetWorkflow(ctx, d1.WorkflowID, d1.RunID).Get(ctx, nil); err != nil {
		t.Fatalf("redelivery run: %v", err)
	}
	got := rc.requests()
	if len(got) != 2 || got[1].Verified != nil || got[1].Header.Get("webhook-id") != r.Event.ID || string(got[1].Body) != string(got[0].Body) {
		t.Fatalf("receiver got %d requests (webhook-ids %v); want the same signed event again under webhook-id %s", len(got), webhookIDs(got), r.Event.ID)
	}
	latest, err := svc.Get(ctx, account, k, "")
	if err != nil || latest.RunID != d1.RunID || latest.Status != delivery.StatusDelivered || latest.RedeliveryOf != orig.RunID ||
		len(latest.AttemptLog) != 1 || latest.AttemptLog[0].StatusCode != 200 || latest.Endpoint != rc.srv.URL {
		t.Errorf("Get after redelivery = %+v (log %+v), %v; want run %s delivered, redelivering %s", latest.Delivery, latest.AttemptLog, err, d1.RunID, orig.RunID)
	}
	desc, err := e.client.DescribeWorkflowExecution(ctx, d1.WorkflowID, d1.RunID)
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	if err := converter.GetDefaultDataConverter().FromPayload(desc.GetExecutionConfig().GetUserMetadata().GetSummary(), &summary); err != nil ||
		!strings.Contains(summary, "redelivery of run "+orig.RunID) || !strings.Contains(summary, rc.srv.URL) {
		t.Errorf("Web UI summary of the redelivery = %q (%v), want the endpoint and \"redelivery of run %s\"", summary, err, orig.RunID)
	}
	// Both runs are in the delivery log; the first is unchanged.
	runs := waitListed(t, svc, deliveries.Filter{AccountID: account, EventID: r.Event.ID}, 2, func(d deliveries.Delivery) bool { return !d.ClosedAt.IsZero() })
	if runs[0].RunID != d1.RunID || runs[0].RedeliveryOf != orig.RunID || runs[1].RunID != orig.RunID || runs[1].Status != delivery.StatusFailed {
		t.Errorf("listed runs:\n%swant the redelivery (delivered) first, then the original (failed)", describeDeliveries(runs))
	}

	// A delivered delivery, redelivered by two callers at once: one new run.
	var wg sync.WaitGroup
	results := make([]deliveries.Delivery, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = svc.Redeliver(ctx, account, k)
		}()
	}
	wg.Wait()
	var d2 deliveries.Delivery
	for i := range results {
		switch {
		case errs[i] == nil && (d2.RunID == "" || d2.RunID == results[i].RunID):
			d2 = results[i]
		case errors.Is(errs[i], deliveries.ErrStillRunning):
		default:
			t.Errorf("concurrent Redeliver %d = %+v, %v; want the one new run, or ErrStillRunning", i, results[i], errs[i])
		}
	}
	if d2.RunID == "" || d2.RedeliveryOf != d1.RunID {
		t.Fatalf("concurrent redeliveries gave %+v, want one new run redelivering %s", d2, d1.RunID)
	}
	rc.waitRequests(3, 30*time.Second)
	waitDetail(t, svc, account, k, "the second redelivery to wait for its retry", func(d deliveries.Detail) bool {
		return d.RunID == d2.RunID && d.Status == delivery.StatusRetrying && !d.NextAttemptAt.IsZero()
	})
	// Redelivering a running delivery is refused.
	if _, err := svc.Redeliver(ctx, account, k); !errors.Is(err, deliveries.ErrStillRunning) {
		t.Errorf("Redeliver while running: %v, want ErrStillRunning", err)
	}
	runs = waitListed(t, svc, deliveries.Filter{AccountID: account, EventID: r.Event.ID}, 3, nil)
	if runs[0].RunID != d2.RunID || runs[0].Status != delivery.StatusRetrying {
		t.Errorf("listed runs:\n%swant the running redelivery %s first", describeDeliveries(runs), d2.RunID)
	}
	if err := svc.Cancel(ctx, account, k); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("receiver got %d requests, want 3 (one per run)", n)
	}
}

func TestDeliveries_CancelStopsRetries(t *testing.T) {
	e := newEnv(t)
	svc := e.deliveriesService(nil)
	account := "acct-" + t.Name()
	rc := newReceiver(t, 500, 500, 500)
	sub, _ := e.subscribe(account, rc.srv.URL, nil, hour)
	ctx := context.Background()
	r, err := e.publisher.Publish(ctx, userCreated(account, "u_1"))
	if err != nil {
		t.Fatal(err)
	}
	k := deliveries.Key{EventID: r.Event.ID, SubscriptionID: sub.ID}
	waiting := waitDetail(t, svc, account, k, "the delivery to wait for its retry", func(d deliveries.Detail) bool {
		return d.Status == delivery.StatusRetrying && len(d.AttemptLog) == 1 && !d.NextAttemptAt.IsZero()
	})
	if until := time.Until(waiting.NextAttemptAt); until < 50*time.Minute || until > time.Hour {
		t.Errorf("next attempt in %s, want about an hour", until)
	}
	if _, err := svc.Redeliver(ctx, account, k); !errors.Is(err, deliveries.ErrStillRunning) {
		t.Errorf("Redeliver while retrying: %v, want ErrStillRunning", err)
	}
	if err := svc.Cancel(ctx, "acct-someone-else", k); !errors.Is(err, deliveries.ErrNotFound) {
		t.Errorf("Cancel from another account: %v, want ErrNotFound", err)
	}

	if err := svc.Cancel(ctx, account, k); err != nil {
		t.Fatal(err)
	}
	var evSum workflows.Summary
	if err := e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &evSum); err != nil || evSum.Canceled != 1 {
		t.Errorf("event workflow: %+v, %v; want its one delivery canceled", evSum, err)
	}
	d, err := svc.Get(ctx, account, k, "")
	if err != nil || d.Status != delivery.StatusCanceled || d.RunID != waiting.RunID || d.ClosedAt.IsZero() || len(d.AttemptLog) != 1 || !d.NextAttemptAt.IsZero() {
		t.Errorf("Get after cancel = %+v (log %+v), %v; want the same run canceled after 1 attempt, no next attempt", d.Delivery, d.AttemptLog, err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1 (no attempt after the cancel)", n)
	}
	if err := svc.RetryNow(ctx, account, k); !errors.Is(err, deliveries.ErrNotRunning) {
		t.Errorf("RetryNow after cancel: %v, want ErrNotRunning", err)
	}
	if err := svc.Cancel(ctx, account, k); !errors.Is(err, deliveries.ErrNotRunning) {
		t.Errorf("Cancel after cancel: %v, want ErrNotRunning", err)
	}
	waitListed(t, svc, deliveries.Filter{AccountID: account, Status: delivery.StatusCanceled}, 1, func(d deliveries.Delivery) bool {
		return d.RunID == waiting.RunID
	})
}

func TestDeliveries_RetryNowAttemptsAtOnce(t *testing.T) {
	e := newEnv(t)
	svc := e.deliveriesService(nil)
	account := "acct-" + t.Name()
	rc := newReceiver(t, 503, 200)
	sub, secret := e.subscribe(account, rc.srv.URL, nil, hour)
	rc.verifyWith(secret)
	ctx := context.Background()
	r, err := e.publisher.Publish(ctx, userCreated(account, "u_1"))
	if err != nil {
		t.Fatal(err)
	}
	k := deliveries.Key{EventID: r.Event.ID, SubscriptionID: sub.ID}
	// The signal counts only once the workflow waits (its timer started).
	waiting := waitDetail(t, svc, account, k, "the delivery to wait an hour for its retry", func(d deliveries.Detail) bool {
		return d.Status == delivery.StatusRetrying && !d.NextAttemptAt.IsZero()
	})
	if until := time.Until(waiting.NextAttemptAt); until < 50*time.Minute {
		t.Fatalf("next attempt in %s, want about an hour", until)
	}
	if err := svc.RetryNow(ctx, "acct-someone-else", k); !errors.Is(err, deliveries.ErrNotFound) {
		t.Errorf("RetryNow from another account: %v, want ErrNotFound", err)
	}

	asked := time.Now()
	if err := svc.RetryNow(ctx, account, k); err != nil {
		t.Fatal(err)
	}
	got := rc.waitRequests(2, 30*time.Second)
	if gap := got[1].At.Sub(asked); gap > 30*time.Second {
		t.Errorf("second attempt came %s after retry-now", gap)
	}
	var sum workflows.Summary
	if err := e.client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &sum); err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v; want one delivered", sum, err)
	}
	d, err := svc.Get(ctx, account, k, "")
	if err != nil || d.Status != delivery.StatusDelivered || d.RunID != waiting.RunID || len(d.AttemptLog) != 2 ||
		d.AttemptLog[0].StatusCode != 503 || d.AttemptLog[1].StatusCode != 200 {
		t.Errorf("Get = %+v (log %+v), %v; want the same run delivered on attempt 2 after a 503", d.Delivery, d.AttemptLog, err)
	}
	if err := svc.RetryNow(ctx, account, k); !errors.Is(err, deliveries.ErrNotRunning) {
		t.Errorf("RetryNow of a delivered delivery: %v, want ErrNotRunning", err)
	}
}

func TestDeliveries_RecoverRedeliversOnlyFailedDeliveries(t *testing.T) {
	e := newEnv(t)
	svc := e.deliveriesService(nil)
	account := "acct-" + t.Name()
	// created: e0 400 (before since), e1 400, e2 400, e3 200, e4 500 (then
	// waits an hour); every later request (the recoveries) gets 200.
	created := newReceiver(t, 400, 400, 400, 200, 500)
	deletedOnly := newReceiver(t, 400)
	sub, _ := e.subscribe(account, created.srv.URL, []string{"user.created"}, hour)
	e.subscribe(account, deletedOnly.srv.URL, []string{"user.deleted"}, hour)
	ctx := context.Background()

	publish := func(ev event.Event) event.Event {
		r, _, err := e.publishAndWait(ev)
		if err != nil {
			t.Fatal(err)
		}
		return r.Event
	}
	e0 := publish(userCreated(account, "u_0"))
	since := time.Now()
	e1, e2, e3 := publish(userCreated(account, "u_1")), publish(userCreated(account, "u_2")), publish(userCreated(account, "u_3"))
	gone := userCreated(account, "u_x")
	gone.Type = event.TypeUserDeleted
	publish(gone) // fails on the other subscription
	r4, err := e.publisher.Publish(ctx, userCreated(account, "u_4"))
	if err != nil {
		t.Fatal(err)
	}
	e4 := r4.Event
	key := func(ev event.Event) deliveries.Key { return deliveries.Key{EventID: ev.ID, SubscriptionID: sub.ID} }
	waitDetail(t, svc, account, key(e4), "e4 to wait for its retry", func(d deliveries.Detail) bool { return d.Status == delivery.StatusRetrying })
	// Recover works from visibility: wait until it shows every run.
	waitListed(t, svc, deliveries.Filter{AccountID: account}, 6, func(d deliveries.Delivery) bool {
		return d.Status != delivery.StatusPending
	})
	firstRuns := map[string]string{}
	for _, ev := range []event.Event{e1, e2} {
		d, err := svc.Get(ctx, account, key(ev), "")
		if err != nil || d.Status != delivery.StatusFailed {
			t.Fatalf("Get(%s) = %+v, %v; want failed", ev.ID, d.Delivery, err)
		}
		firstRuns[ev.ID] = d.RunID
	}

	// Two Recovers at once.
	var wg sync.WaitGroup
	results := make([]deliveries.RecoverResult, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = svc.Recover(ctx, account, sub.ID, since)
		}()
	}
	wg.Wait()
	newRuns := map[string]string{} // event ID → new run
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("Recover %d: %v", i, errs[i])
		}
		if res.AlreadyRunning < 1 {
			t.Errorf("Recover %d: AlreadyRunning = %d, want at least e4", i, res.AlreadyRunning)
		}
		for _, d := range res.Redelivered {
			if d.EventID != e1.ID && d.EventID != e2.ID {
				t.Errorf("Recover %d redelivered %s, which had not failed since %s", i, d.EventID, since)
			}
			if d.RedeliveryOf != firstRuns[d.EventID] {
				t.Errorf("Recover %d: %s redelivers %s, want its failed run %s", i, d.EventID, d.RedeliveryOf, firstRuns[d.EventID])
			}
			if prev, ok := newRuns[d.EventID]; ok && prev != d.RunID {
				t.Errorf("two Recovers started two runs for %s: %s and %s", d.EventID, prev, d.RunID)
			}
			newRuns[d.EventID] = d.RunID
		}
	}
	if len(newRuns) != 2 {
		t.Fatalf("recovered %v, want e1 and e2", newRuns)
	}
	// Once the latest runs are over, each recovered event was sent exactly
	// once more; the others were not.
	for _, ev := range []event.Event{e1, e2} {
		id := workflows.DeliveryWorkflowID(ev.ID, sub.ID)
		if err := e.client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
			t.Errorf("latest run of %s: %v", id, err)
		}
		d, err := svc.Get(ctx, account, key(ev), "")
		if err != nil || d.RunID != newRuns[ev.ID] || d.Status != delivery.StatusDelivered {
			t.Errorf("Get(%s) = %+v, %v; want the recovered run %s delivered", ev.ID, d.Delivery, err, newRuns[ev.ID])
		}
	}
	count := map[string]int{}
	for _, id := range webhookIDs(created.requests()) {
		count[id]++
	}
	for ev, want := range map[string]int{e0.ID: 1, e1.ID: 2, e2.ID: 2, e3.ID: 1, e4.ID: 1} {
		if count[ev] != want {
			t.Errorf("receiver got event %s %d times, want %d", ev, count[ev], want)
		}
	}
	if n := len(deletedOnly.requests()); n != 1 {
		t.Errorf("other subscription's receiver got %d requests, want 1 (its failure is not this subscription's)", n)
	}

	// Nothing failed is left: recovering again starts nothing. (Wait until
	// visibility shows the recovered runs closed, or they count as running.)
	waitListed(t, svc, deliveries.Filter{AccountID: account, SubscriptionID: sub.ID, Status: delivery.StatusDelivered}, 3, nil)
	res, err := svc.Recover(ctx, account, sub.ID, since)
	if err != nil || len(res.Redelivered) != 0 || res.AlreadyRunning != 1 {
		t.Errorf("second Recover = %+v, %v; want nothing redelivered, e4 running", res, err)
	}
	if _, err := svc.Recover(ctx, "acct-someone-else", sub.ID, since); err != nil {
		t.Errorf("Recover from another account: %v", err)
	}
	if n := len(created.requests()); n != 7 {
		t.Errorf("receiver got %d requests after a Recover from another account, want still 7", n)
	}
	if err := svc.Cancel(ctx, account, key(e4)); err != nil {
		t.Fatal(err)
	}
}

func TestDeliveries_ReadAndRedeliverThroughAnEncryptingConverter(t *testing.T) {
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := payloadcodec.ParseKeyring(payloadcodec.FormatKey("deliveries", key))
	if err != nil {
		t.Fatal(err)
	}
	dc := payloadcodec.NewDataConverter(keys)
	c, err := client.Dial(client.Options{HostPort: server.GetFrontendHostPort(), Namespace: server.GetDefaultNamespace(), DataConverter: dc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := newEnvWithClient(t, c)
	svc := e.deliveriesService(dc)
	account := "acct-" + t.Name()
	rc := newReceiver(t, http.StatusInternalServerError, 200, 200)
	sub, secret := e.subscribe(account, rc.srv.URL, nil, fast)
	rc.verifyWith(secret)
	r, sum, err := e.publishAndWait(userCreated(account, "u_1"))
	if err != nil || sum.Delivered != 1 {
		t.Fatalf("event workflow: %+v, %v", sum, err)
	}
	ctx := context.Background()
	k := deliveries.Key{EventID: r.Event.ID, SubscriptionID: sub.ID}

	d, err := svc.Get(ctx, account, k, "")
	if err != nil || len(d.AttemptLog) != 2 || d.AttemptLog[0].StatusCode != 500 || d.AttemptLog[1].StatusCode != 200 || d.Endpoint != rc.srv.URL {
		t.Fatalf("Get = %+v (log %+v), %v; want a 500 then a 200, read through the codec", d.Delivery, d.AttemptLog, err)
	}
	// Without the codec the history cannot be read: an error, never a
	// silently empty log.
	if plain, err := e.deliveriesService(nil).Get(ctx, account, k, ""); err == nil {
		t.Errorf("Get without the codec = %+v (log %+v), want an error", plain.Delivery, plain.AttemptLog)
	}

	re, err := svc.Redeliver(ctx, account, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.GetWorkflow(ctx, re.WorkflowID, re.RunID).Get(ctx, nil); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	got := rc.requests()
	if len(got) != 3 || got[2].Verified != nil || string(got[2].Body) != string(got[0].Body) {
		t.Fatalf("receiver got %d requests; want the same signed body a third time", len(got))
	}
	// The redelivery's input is stored encrypted, as the worker's would be.
	raw := (&env{t: t, client: server.GetDefaultClient()}).history(re.WorkflowID)
	input := raw[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(input) != 1 || string(input[0].GetMetadata()["encoding"]) != payloadcodec.MetadataEncodingEncrypted {
		t.Errorf("redelivery input stored as %v, want one encrypted payload", input)
	}
	if slices.ContainsFunc(raw, func(ev *historypb.HistoryEvent) bool { return strings.Contains(ev.String(), "u_1@example.com") }) {
		t.Error("the redelivery's history holds the user's email in clear")
	}
}
