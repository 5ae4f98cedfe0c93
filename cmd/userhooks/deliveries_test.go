package main

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/delivery"
)

// deliveryLog fills the fake delivery log: for acme, a delivered and a
// failed delivery to sub (a subscription of acme), and one retrying with
// two attempts to sub2; for globex, one failed delivery to its own
// subscription.
type deliveryLog struct {
	sub, sub2, globexSub string
	t0                   time.Time
}

func fillDeliveryLog(t *testing.T, h *harness) deliveryLog {
	t.Helper()
	l := deliveryLog{
		sub:       createSub(t, h, "acme", "https://crm.example.com/hooks?token=abc"),
		sub2:      createSub(t, h, "acme", "https://billing.example.com/hooks"),
		globexSub: createSub(t, h, "globex", "https://globex.example/hooks"),
		t0:        time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
	}
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_1", SubscriptionID: l.sub, AccountID: "acme", EventType: "user.created",
		UserID: "u_1", Status: delivery.StatusDelivered, Attempts: 1, StartedAt: l.t0, ClosedAt: l.t0.Add(time.Second), Endpoint: "https://crm.example.com"},
		AttemptLog: []delivery.Attempt{{Number: 1, StartedAt: l.t0, DurationMs: 0, StatusCode: 204}}})
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_2", SubscriptionID: l.sub, AccountID: "acme", EventType: "user.deleted",
		UserID: "u_2", Status: delivery.StatusFailed, Attempts: 1, StartedAt: l.t0.Add(time.Hour), ClosedAt: l.t0.Add(time.Hour + time.Second), Endpoint: "https://crm.example.com"},
		AttemptLog: []delivery.Attempt{{Number: 1, StartedAt: l.t0.Add(time.Hour), DurationMs: 15, StatusCode: 400, Class: delivery.ClassClientError,
			Error: "HTTP 400 Bad Request", ResponseExcerpt: "unknown user\n\x1b[31mred"}}})
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_3", SubscriptionID: l.sub2, AccountID: "acme", EventType: "user.updated",
		UserID: "u_3", Status: delivery.StatusRetrying, Attempts: 2, StartedAt: l.t0.Add(2 * time.Hour), Endpoint: "https://billing.example.com"},
		AttemptLog: []delivery.Attempt{
			{Number: 1, StartedAt: l.t0.Add(2 * time.Hour), DurationMs: 1200, StatusCode: 503, Class: delivery.ClassServerError, Error: "HTTP 503 Service Unavailable", ResponseExcerpt: "down for maintenance"},
			{Number: 2, StartedAt: l.t0.Add(2*time.Hour + 5*time.Second), DurationMs: 15000, Class: delivery.ClassConnection,
				Error: `Post "https://billing.example.com/…": dial tcp 192.0.2.10:443: connect: connection refused (the rest of a long message)`},
		},
		NextAttemptAt: l.t0.Add(2*time.Hour + 65*time.Second)})
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_g", SubscriptionID: l.globexSub, AccountID: "globex", EventType: "user.created",
		UserID: "u_g", Status: delivery.StatusFailed, Attempts: 1, StartedAt: l.t0, ClosedAt: l.t0.Add(time.Second)}})
	return l
}

func TestDeliveriesList_TableShowsTheAccountsDeliveriesWithEndpoints(t *testing.T) {
	h := newHarness(t)
	l := fillDeliveryLog(t, h)
	out := h.ok("deliveries", "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("list printed %d lines, want a header and acme's 3 deliveries:\n%s", len(lines), out)
	}
	header := regexp.MustCompile(`^STARTED +EVENT +EVENT TYPE +USER +SUBSCRIPTION +ENDPOINT +STATUS +ATTEMPTS +FINISHED$`)
	if !header.MatchString(lines[0]) {
		t.Errorf("header %q", lines[0])
	}
	rows := []string{
		`^2026-11-23T09:00:00Z +evt_1 +user\.created +u_1 +` + l.sub + ` +https://crm\.example\.com +delivered +1 +2026-11-23T09:00:01Z$`,
		`^2026-11-23T10:00:00Z +evt_2 +user\.deleted +u_2 +` + l.sub + ` +https://crm\.example\.com +failed +1 +2026-11-23T10:00:01Z$`,
		`^2026-11-23T11:00:00Z +evt_3 +user\.updated +u_3 +` + l.sub2 + ` +https://billing\.example\.com +retrying +2 +-$`,
	}
	for i, re := range rows {
		if !regexp.MustCompile(re).MatchString(lines[i+1]) {
			t.Errorf("row %d: %q, want %s", i+1, lines[i+1], re)
		}
	}
	// The endpoint is scheme and host only: never the URL's query.
	if strings.Contains(out, "token=abc") || strings.Contains(out, "evt_g") {
		t.Errorf("list shows a URL's query or globex's delivery:\n%s", out)
	}
}

func TestDeliveriesList_FiltersGoToTheAPI(t *testing.T) {
	h := newHarness(t)
	l := fillDeliveryLog(t, h)
	out := h.ok("deliveries", "list", "--subscription", l.sub, "--status", "failed", "--type", "user.deleted", "--user", "u_2",
		"--event", "evt_2", "--since", "2026-11-23T09:30:00Z", "--until", "2026-11-24")
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "evt_2") {
		t.Errorf("filtered list printed:\n%s\nwant evt_2 alone", out)
	}
	f, size := h.dels.listArgs()
	want := api.DeliveryFilter{AccountID: "acme", SubscriptionID: l.sub, EventID: "evt_2", UserID: "u_2", EventType: "user.deleted",
		Status: delivery.StatusFailed, StartedAfter: time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC), StartedBefore: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	if f != want || size != 50 {
		t.Errorf("the delivery log was asked %+v (page size %d), want %+v (50)", f, size, want)
	}

	// A duration reaches back from now.
	before := time.Now()
	h.ok("deliveries", "list", "--since", "36h")
	f, _ = h.dels.listArgs()
	if d := before.Sub(f.StartedAfter); d < 36*time.Hour-time.Second || d > 36*time.Hour+time.Minute {
		t.Errorf("--since 36h asked for runs started after %s, %s before now", f.StartedAfter, d)
	}
	h.ok("deliveries", "list", "--since", "7d")
	f, _ = h.dels.listArgs()
	if d := before.Sub(f.StartedAfter); d < 7*24*time.Hour-time.Second || d > 7*24*time.Hour+time.Minute {
		t.Errorf("--since 7d asked for runs started after %s", f.StartedAfter)
	}

	if out := h.ok("deliveries", "list", "--status", "canceled"); out != "No deliveries match.\n" {
		t.Errorf("empty list printed %q", out)
	}
}

func TestDeliveriesList_JSONIsThePageWithItsNextToken(t *testing.T) {
	h := newHarness(t)
	fillDeliveryLog(t, h)
	var page struct {
		Deliveries []struct {
			EventID  string `json:"event_id"`
			Endpoint string `json:"endpoint"`
		} `json:"deliveries"`
		NextPageToken *string `json:"next_page_token"`
	}
	h.okJSON(&page, "deliveries", "list", "--limit", "2")
	if len(page.Deliveries) != 2 || page.Deliveries[0].EventID != "evt_1" || page.NextPageToken == nil || *page.NextPageToken != "2" {
		t.Fatalf("list --limit 2 --json: got %+v", page)
	}
	h.okJSON(&page, "deliveries", "list", "--limit", "2", "--page-token", *page.NextPageToken)
	if len(page.Deliveries) != 1 || page.Deliveries[0].EventID != "evt_3" || page.NextPageToken != nil {
		t.Errorf("the next page: got %+v, want evt_3 and no token", page)
	}
	if out := h.ok("deliveries", "list", "--limit", "1"); !strings.HasSuffix(out, "More: add --page-token 1\n") {
		t.Errorf("list --limit 1 printed %q, want the token of the next page", out)
	}
	// A token the log refuses is the API's 422: bad input.
	wantFailure(t, h.run("deliveries", "list", "--page-token", "forged"), 2, "422 Unprocessable Entity: the search is invalid")
}

func TestDeliveriesList_MoreThanOnePage(t *testing.T) {
	h := newHarness(t)
	sub := createSub(t, h, "acme", "https://crm.example.com/hooks")
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i := range 130 {
		h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_" + strconv.Itoa(i), SubscriptionID: sub, AccountID: "acme",
			EventType: "user.created", UserID: "u", Status: delivery.StatusDelivered, Attempts: 1, StartedAt: t0.Add(time.Duration(i) * time.Second)}})
	}
	var page struct {
		Deliveries    []map[string]any `json:"deliveries"`
		NextPageToken *string          `json:"next_page_token"`
	}
	h.okJSON(&page, "deliveries", "list", "--limit", "120")
	if len(page.Deliveries) != 120 || page.NextPageToken == nil || *page.NextPageToken != "120" {
		t.Errorf("list --limit 120: got %d deliveries, token %v; want 120 over two pages and the next token", len(page.Deliveries), page.NextPageToken)
	}
	if _, size := h.dels.listArgs(); size != 20 {
		t.Errorf("the second page asked for %d, want the 20 left", size)
	}
}

func TestDeliveriesShow_PrintsTheAttemptLog(t *testing.T) {
	h := newHarness(t)
	l := fillDeliveryLog(t, h)
	out := h.ok("deliveries", "show", "--event", "evt_3", "--subscription", l.sub2)
	for _, want := range []string{
		"Event          evt_3\n",
		"Event type     user.updated\n",
		"User           u_3\n",
		"Subscription   " + l.sub2 + "\n",
		"Endpoint       https://billing.example.com\n",
		"Status         retrying after 2 attempts\n",
		"Started        2026-11-23T11:00:00Z\n",
		"Finished       -\n",
		"Next attempt   2026-11-23T11:01:05Z",
		"Workflow       delivery/evt_3/" + l.sub2 + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show printed:\n%s\nwant %q", out, want)
		}
	}
	rows := []string{
		`(?m)^ATTEMPT +TIME +STATUS +CLASS +DURATION +ERROR / RESPONSE$`,
		`(?m)^1 +2026-11-23T11:00:00Z +503 +ServerError +1\.2s +HTTP 503 Service Unavailable; "down for maintenance"$`,
		// An error's end says what went wrong: it is not cut short.
		`(?m)^2 +2026-11-23T11:00:05Z +- +ConnectionError +15s +Post "https://billing\.example\.com/…": dial tcp 192\.0\.2\.10:443: connect: connection refused \(the rest of a long message\)$`,
	}
	for _, re := range rows {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("show printed:\n%s\nwant a line matching %s", out, re)
		}
	}

	out = h.ok("deliveries", "show", "--event", "evt_1", "--subscription", l.sub)
	if !regexp.MustCompile(`(?m)^Status +delivered after 1 attempt\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^1 +2026-11-23T09:00:00Z +204 +ok +<1ms +-$`).MatchString(out) {
		t.Errorf("show of a delivered delivery printed:\n%s", out)
	}

	// A receiver's excerpt cannot move the cursor or break the table.
	out = h.ok("deliveries", "show", "--event", "evt_2", "--subscription", l.sub)
	if strings.ContainsAny(out, "\x1b\r") || !regexp.MustCompile(`(?m)^1 +2026-11-23T10:00:00Z +400 +ClientError +15ms +HTTP 400 Bad Request; "unknown user  \[31mred"$`).MatchString(out) {
		t.Errorf("show printed:\n%q", out)
	}

	var d struct {
		EventID    string `json:"event_id"`
		AttemptLog []struct {
			Attempt    int    `json:"attempt"`
			StatusCode *int   `json:"status_code"`
			ErrorClass string `json:"error_class"`
		} `json:"attempt_log"`
		NextAttemptAt *time.Time `json:"next_attempt_at"`
	}
	h.okJSON(&d, "deliveries", "show", "--event", "evt_3", "--subscription", l.sub2)
	if d.EventID != "evt_3" || len(d.AttemptLog) != 2 || *d.AttemptLog[0].StatusCode != 503 || d.AttemptLog[1].StatusCode != nil || d.NextAttemptAt == nil {
		t.Errorf("show --json: got %+v", d)
	}

	// A delivery held back by its subscription's max in flight says so
	// instead of a next attempt time.
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_w", SubscriptionID: l.sub2, AccountID: "acme", EventType: "user.created",
		UserID: "u_4", Status: delivery.StatusPending, StartedAt: l.t0.Add(3 * time.Hour), Endpoint: "https://billing.example.com"},
		WaitingForPermitSince: l.t0.Add(3*time.Hour + time.Second)})
	out = h.ok("deliveries", "show", "--event", "evt_w", "--subscription", l.sub2)
	if !strings.Contains(out, "Next attempt   waiting for a permit since 2026-11-23T12:00:01Z") {
		t.Errorf("show of a delivery waiting for a permit printed:\n%s", out)
	}
}

func TestDeliveriesOperations_GoToTheDeliveryLog(t *testing.T) {
	h := newHarness(t)
	l := fillDeliveryLog(t, h)

	out := h.ok("deliveries", "redeliver", "--event", "evt_2", "--subscription", l.sub)
	if !regexp.MustCompile(`^Redelivery started: event evt_2 to subscription ` + l.sub + `, run 00000000-0000-4000-8000-\d{12}\n$`).MatchString(out) {
		t.Errorf("redeliver printed %q", out)
	}
	if out := h.ok("deliveries", "cancel", "--event", "evt_3", "--subscription", l.sub2); out != "Cancel requested: the delivery of event evt_3 to subscription "+l.sub2+" stops retrying\n" {
		t.Errorf("cancel printed %q", out)
	}
	if out := h.ok("deliveries", "retry", "--event", "evt_3", "--subscription", l.sub2); out != "Retry requested: the delivery of event evt_3 to subscription "+l.sub2+" attempts again now\n" {
		t.Errorf("retry printed %q", out)
	}
	var op map[string]any
	h.okJSON(&op, "deliveries", "retry", "--event", "evt_3", "--subscription", l.sub2)
	if op["operation"] != "retry" || op["event_id"] != "evt_3" {
		t.Errorf("retry --json printed %v", op)
	}

	// 409: redeliver a running delivery, cancel a finished one.
	wantFailure(t, h.run("deliveries", "redeliver", "--event", "evt_3", "--subscription", l.sub2), 1, "409 Conflict: the delivery is still running")
	wantFailure(t, h.run("deliveries", "cancel", "--event", "evt_1", "--subscription", l.sub), 1, "409 Conflict: the delivery has finished")

	want := []string{
		"redeliver acme evt_2/" + l.sub,
		"cancel acme evt_3/" + l.sub2,
		"retry acme evt_3/" + l.sub2,
		"retry acme evt_3/" + l.sub2,
		"redeliver acme evt_3/" + l.sub2,
		"cancel acme evt_1/" + l.sub,
	}
	if got := h.dels.callLog(); !slices.Equal(got, want) {
		t.Errorf("the delivery log got\n%q\nwant\n%q", got, want)
	}
}

func TestDeliveriesRecover_RedeliversWhatFailedSince(t *testing.T) {
	h := newHarness(t)
	l := fillDeliveryLog(t, h)
	out := h.ok("deliveries", "recover", "--subscription", l.sub, "--since", "2026-11-23T00:00:00Z")
	if !strings.HasPrefix(out, "Redelivered 1 failed delivery of subscription "+l.sub+" since 2026-11-23T00:00:00Z; 0 still running, left alone.\n") ||
		!regexp.MustCompile(`(?m)^evt_2 +user\.deleted +u_2 +00000000-`).MatchString(out) {
		t.Errorf("recover printed:\n%s", out)
	}
	var res struct {
		Redelivered    []map[string]any `json:"redelivered"`
		AlreadyRunning int              `json:"already_running"`
	}
	h.okJSON(&res, "deliveries", "recover", "--subscription", l.sub2, "--since", "2026-11-23")
	if len(res.Redelivered) != 0 || res.AlreadyRunning != 1 {
		t.Errorf("recover --json: got %+v, want nothing redelivered and 1 running", res)
	}
	if got := h.dels.callLog(); len(got) != 2 || got[0] != "recover acme "+l.sub+" since 2026-11-23T00:00:00Z" {
		t.Errorf("the delivery log got %q", got)
	}
}

func TestDeliveries_BadInputFailsBeforeAnyCall(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"malformed subscription", []string{"list", "--subscription", "SUB-1"}, "--subscription must be an ID such as"},
		{"upper-case subscription", []string{"list", "--subscription", "0193B1A2-5C3D-7E4F-8A9B-0C1D2E3F4A5B"}, "--subscription must be an ID such as"},
		{"event with a slash", []string{"list", "--event", "evt/1"}, "--event must be an event ID"},
		{"user with a space", []string{"list", "--user", "u 1"}, "--user must be a user ID"},
		{"unknown type", []string{"list", "--type", "user.renamed"}, "--type must be user.created, user.updated or user.deleted"},
		{"unknown status", []string{"list", "--status", "lost"}, "--status must be one of pending, retrying, delivered, failed, canceled, skipped"},
		{"bad since", []string{"list", "--since", "yesterday"}, `--since must be an RFC 3339 time`},
		{"bad until", []string{"list", "--until", "-5h"}, `--until must be an RFC 3339 time`},
		{"until before since", []string{"list", "--since", "2026-11-23", "--until", "2026-11-22"}, "--until must be later than --since"},
		{"limit zero", []string{"list", "--limit", "0"}, "--limit must be from 1 to 1000"},
		{"limit too big", []string{"list", "--limit", "1001"}, "--limit must be from 1 to 1000"},
		{"several problems at once", []string{"list", "--status", "lost", "--type", "x"}, "--type must be user.created, user.updated or user.deleted; --status must be"},
		{"show without event", []string{"show", "--subscription", unknownID}, "deliveries show: missing required --event\n"},
		{"show without either", []string{"show"}, "deliveries show: missing required --event, --subscription\n"},
		{"show with a bad run", []string{"show", "--event", "e", "--subscription", unknownID, "--run", "latest"}, "--run must be an ID such as"},
		{"redeliver without subscription", []string{"redeliver", "--event", "e"}, "deliveries redeliver: missing required --subscription\n"},
		{"cancel with a bad event", []string{"cancel", "--event", "e?", "--subscription", unknownID}, "--event must be an event ID"},
		{"retry with a bad subscription", []string{"retry", "--event", "e", "--subscription", "x"}, "--subscription must be an ID such as"},
		{"recover without since", []string{"recover", "--subscription", unknownID}, "deliveries recover: missing required --since\n"},
		{"recover from the future", []string{"recover", "--subscription", unknownID, "--since", "2999-01-01"}, "--since is in the future"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, h.run(append([]string{"deliveries"}, tc.args...)...), 2, tc.want)
			h.noRequests(tc.name)
		})
	}
	if got := h.dels.callLog(); len(got) != 0 {
		t.Errorf("the delivery log got %q, want nothing", got)
	}
}

// TestDeliveries_UnknownOrOtherAccountsDeliveryIsNotFound
func TestDeliveries_UnknownOrOtherAccountsDeliveryIsNotFound(t *testing.T) {
	h := newHarness(t)
	l := fillDeliveryLog(t, h)
	for _, key := range []struct{ evt, sub string }{{"evt_404", l.sub}, {"evt_g", l.globexSub}} {
		for _, verb := range []string{"show", "redeliver", "cancel", "retry"} {
			r := h.run("deliveries", verb, "--event", key.evt, "--subscription", key.sub)
			wantFailure(t, r, 1, "404 Not Found: delivery not found")
		}
	}
	wantFailure(t, h.run("deliveries", "recover", "--subscription", l.globexSub, "--since", "24h"), 1, "404 Not Found: subscription not found")
	if out := h.runAs(h.globex, "", "deliveries", "list"); out.code != 0 || !strings.Contains(out.stdout, "evt_g") || strings.Contains(out.stdout, "evt_1") {
		t.Errorf("globex's list: want its delivery only\n%s", out)
	}
	for _, c := range h.dels.callLog() {
		if strings.Contains(c, "globex") {
			t.Errorf("acme's key reached globex's deliveries: %s", c)
		}
	}
}
