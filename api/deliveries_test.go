package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/delivery"
)

func TestListDeliveries_PassesTheFilterScopedToTheKeysAccount(t *testing.T) {
	h := newHarness(t)
	sub := uuid.NewString()
	for i, status := range []delivery.Status{delivery.StatusFailed, delivery.StatusDelivered, delivery.StatusFailed, delivery.StatusFailed} {
		h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_" + string(rune('a'+i)), SubscriptionID: sub, AccountID: "acme",
			EventType: "user.updated", UserID: "u_1", Status: status, Attempts: 12, StartedAt: t0.Add(time.Duration(i) * time.Minute),
			ClosedAt: t0.Add(time.Hour), Endpoint: "https://receiver.example"}})
	}
	query := "?subscription_id=" + sub + "&event_type=user.updated&user_id=u_1&status=failed" +
		"&started_after=2026-11-23T09:00:00Z&started_before=2026-11-23T11:00:00%2B01:00&limit=2"
	type page struct {
		Deliveries []struct {
			EventID   string  `json:"event_id"`
			Status    string  `json:"status"`
			ClosedAt  *string `json:"closed_at"`
			AccountID string  `json:"account_id"`
		} `json:"deliveries"`
		NextPageToken *string `json:"next_page_token"`
	}
	var p1, p2 page
	h.get(h.acme, "/v1/deliveries"+query).want(t, http.StatusOK).decode(t, &p1)
	want := api.DeliveryFilter{AccountID: "acme", SubscriptionID: sub, UserID: "u_1", EventType: "user.updated",
		Status: delivery.StatusFailed, StartedAfter: t0, StartedBefore: t0.Add(time.Hour)}
	if got, size, token := h.dels.listArgs(); got != want || size != 2 || token != "" {
		t.Errorf("filter = %+v (page size %d, token %q), want %+v", got, size, token, want)
	}
	if len(p1.Deliveries) != 2 || p1.NextPageToken == nil || p1.Deliveries[0].EventID != "evt_a" || p1.Deliveries[0].ClosedAt == nil {
		t.Fatalf("page 1 = %+v", p1)
	}
	h.get(h.acme, "/v1/deliveries"+query+"&page_token="+*p1.NextPageToken).want(t, http.StatusOK).decode(t, &p2)
	if _, _, token := h.dels.listArgs(); len(p2.Deliveries) != 1 || p2.NextPageToken != nil || p2.Deliveries[0].EventID != "evt_d" || token != *p1.NextPageToken {
		t.Errorf("page 2 = %+v", p2)
	}
	// No filter: the account's deliveries, default page size.
	h.get(h.acme, "/v1/deliveries").want(t, http.StatusOK)
	if f, size, _ := h.dels.listArgs(); f != (api.DeliveryFilter{AccountID: "acme"}) || size != 50 {
		t.Errorf("unfiltered = %+v, page size %d", f, size)
	}
}

func TestListDeliveries_BadParametersAre400AndRefusedFiltersAre422(t *testing.T) {
	h := newHarness(t)
	tests := []struct{ query, parameter string }{
		{"subscription_id=42", "subscription_id"},
		{"event_id=" + strings.Repeat("e", 129), "event_id"},
		{"event_id=a%20b", "event_id"},
		{"user_id=-x", "user_id"},
		{"user_id=u'%20OR%20'1'='1", "user_id"},
		{"event_type=user.exploded", "event_type"},
		{"status=lost", "status"},
		{"started_after=yesterday", "started_after"},
		{"started_before=2026-13-01T00:00:00Z", "started_before"},
		{"started_after=2026-11-23T10:00:00Z&started_before=2026-11-23T09:00:00Z", "started_before"},
		{"limit=0", "limit"},
		{"limit=1000", "limit"},
		{"page_token=" + strings.Repeat("t", 9000), "page_token"},
		{"statuss=failed", "statuss"},
	}
	for _, tt := range tests {
		t.Run(tt.query[:min(len(tt.query), 40)], func(t *testing.T) {
			r := h.get(h.acme, "/v1/deliveries?"+tt.query).want(t, http.StatusBadRequest)
			if !strings.Contains(string(r.body), `"parameter":"`+tt.parameter+`"`) {
				t.Errorf("problem does not name %s: %s", tt.parameter, r.body)
			}
		})
	}
	if _, size, _ := h.dels.listArgs(); size != 0 {
		t.Error("refused searches reached the delivery log")
	}
	r := h.get(h.acme, "/v1/deliveries?user_id=needs-event-type").want(t, http.StatusUnprocessableEntity)
	if !strings.Contains(r.problemText(t), "searching by user_id needs event_type too") {
		t.Errorf("422 = %s", r.body)
	}
}

func TestGetDelivery_ShowsTheAttemptLog(t *testing.T) {
	h := newHarness(t)
	sub := uuid.NewString()
	h.dels.add(api.DeliveryDetail{
		Delivery: api.Delivery{EventID: "evt_1", SubscriptionID: sub, AccountID: "acme", EventType: "user.created", UserID: "u_1",
			Status: delivery.StatusRetrying, Attempts: 2, StartedAt: t0, Endpoint: "https://receiver.example"},
		AttemptLog: []delivery.Attempt{
			{Number: 1, StartedAt: t0, DurationMs: 120, StatusCode: 503, Class: delivery.ClassServerError,
				Error: "HTTP 503 Service Unavailable", ResponseExcerpt: "down", RetryAfter: delivery.Duration(30 * time.Second)},
			{Number: 2, StartedAt: t0.Add(time.Minute), DurationMs: 15000, Class: delivery.ClassTimeout, Error: "timeout"},
		},
		NextAttemptAt: t0.Add(6 * time.Minute),
	})
	var d struct {
		EventID    string  `json:"event_id"`
		Status     string  `json:"status"`
		ClosedAt   *string `json:"closed_at"`
		AttemptLog []struct {
			Attempt    int     `json:"attempt"`
			StatusCode *int    `json:"status_code"`
			ErrorClass *string `json:"error_class"`
			RetryAfter *string `json:"retry_after"`
			Succeeded  bool    `json:"succeeded"`
		} `json:"attempt_log"`
		NextAttemptAt time.Time `json:"next_attempt_at"`
	}
	h.get(h.acme, "/v1/deliveries/evt_1/"+sub).want(t, http.StatusOK).decode(t, &d)
	if d.EventID != "evt_1" || d.Status != "retrying" || d.ClosedAt != nil || len(d.AttemptLog) != 2 ||
		*d.AttemptLog[0].StatusCode != 503 || *d.AttemptLog[0].ErrorClass != "ServerError" || *d.AttemptLog[0].RetryAfter != "30s" ||
		d.AttemptLog[1].StatusCode != nil || d.AttemptLog[1].RetryAfter != nil || d.AttemptLog[0].Succeeded ||
		!d.NextAttemptAt.Equal(t0.Add(6*time.Minute)) {
		t.Errorf("delivery = %+v", d)
	}
	runID := "00000000-0000-4000-8000-000000000001"
	h.get(h.acme, "/v1/deliveries/evt_1/"+sub+"?run_id="+runID).want(t, http.StatusOK)
	h.get(h.acme, "/v1/deliveries/evt_1/"+sub+"?run_id="+uuid.NewString()).want(t, http.StatusNotFound)
	h.get(h.acme, "/v1/deliveries/evt_1/"+sub+"?run_id=latest").want(t, http.StatusBadRequest)

	// A delivery waiting for a permit of its endpoint's concurrency limit
	// says since when, and has no next attempt time.
	h.dels.add(api.DeliveryDetail{
		Delivery: api.Delivery{EventID: "evt_w", SubscriptionID: sub, AccountID: "acme", EventType: "user.created", UserID: "u_1",
			Status: delivery.StatusPending, StartedAt: t0, Endpoint: "https://receiver.example"},
		WaitingForPermitSince: t0.Add(time.Second),
	})
	var w struct {
		NextAttemptAt         *time.Time `json:"next_attempt_at"`
		WaitingForPermitSince *time.Time `json:"waiting_for_permit_since"`
	}
	h.get(h.acme, "/v1/deliveries/evt_w/"+sub).want(t, http.StatusOK).decode(t, &w)
	if w.NextAttemptAt != nil || w.WaitingForPermitSince == nil || !w.WaitingForPermitSince.Equal(t0.Add(time.Second)) {
		t.Errorf("waiting delivery: next_attempt_at %v, waiting_for_permit_since %v", w.NextAttemptAt, w.WaitingForPermitSince)
	}
	for _, path := range []string{"evt_2/" + sub, "evt_1/" + uuid.NewString(), "evt_1/not-a-uuid", "bad%20id/" + sub, strings.Repeat("e", 129) + "/" + sub} {
		h.get(h.acme, "/v1/deliveries/"+path).want(t, http.StatusNotFound)
	}
}

func TestDeliveryOperations_MapTheLogsAnswers(t *testing.T) {
	h := newHarness(t)
	sub := uuid.NewString()
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_running", SubscriptionID: sub, AccountID: "acme",
		Status: delivery.StatusRetrying, StartedAt: t0}})
	h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_done", SubscriptionID: sub, AccountID: "acme",
		Status: delivery.StatusFailed, StartedAt: t0, ClosedAt: t0.Add(time.Hour)}})
	tests := []struct {
		op, eventID string
		status      int
	}{
		{"cancel", "evt_running", http.StatusAccepted},
		{"retry", "evt_running", http.StatusAccepted},
		{"redeliver", "evt_running", http.StatusConflict},
		{"cancel", "evt_done", http.StatusConflict},
		{"retry", "evt_done", http.StatusConflict},
		{"redeliver", "evt_done", http.StatusAccepted},
		{"cancel", "evt_unknown", http.StatusNotFound},
	}
	for _, tt := range tests {
		r := h.post(h.acme, "/v1/deliveries/"+tt.eventID+"/"+sub+"/"+tt.op, "").want(t, tt.status)
		if tt.status == http.StatusAccepted && tt.op != "redeliver" {
			var ack struct{ Operation, EventID string }
			r.decode(t, &ack)
			if ack.Operation != tt.op {
				t.Errorf("%s answered %s", tt.op, r.body)
			}
		}
	}
	want := []string{
		"cancel acme evt_running/" + sub, "retry acme evt_running/" + sub, "redeliver acme evt_running/" + sub,
		"cancel acme evt_done/" + sub, "retry acme evt_done/" + sub, "redeliver acme evt_done/" + sub,
		"cancel acme evt_unknown/" + sub,
	}
	if calls := h.dels.callLog(); !slices.Equal(calls, want) {
		t.Errorf("calls = %v\nwant %v", calls, want)
	}
	// The redelivery is a new, running run: redelivering it again conflicts.
	h.post(h.acme, "/v1/deliveries/evt_done/"+sub+"/redeliver", "").want(t, http.StatusConflict)
}

func TestDeliveries_UnavailableLogIs503WithoutDetails(t *testing.T) {
	h := newHarness(t)
	h.dels.setErr(errTemporalDown)
	sub := uuid.NewString()
	id, _ := h.createSubscription(h.acme, validSubscription)
	for _, r := range []response{
		h.get(h.acme, "/v1/deliveries"),
		h.get(h.acme, "/v1/deliveries/evt_1/"+sub),
		h.post(h.acme, "/v1/deliveries/evt_1/"+sub+"/cancel", ""),
		h.post(h.acme, "/v1/deliveries/evt_1/"+sub+"/retry", ""),
		h.post(h.acme, "/v1/deliveries/evt_1/"+sub+"/redeliver", ""),
		h.post(h.acme, "/v1/subscriptions/"+id+"/recover", `{"since": "2026-11-23T00:00:00Z"}`),
	} {
		r.want(t, http.StatusServiceUnavailable)
		if strings.Contains(string(r.body), "connection refused") {
			t.Errorf("503 shows the internal error: %s", r.body)
		}
	}
}

// TestListDeliveries_FillsEndpointsFromTheStore: visibility does not return
// the endpoint, so the list takes it from the account's subscription,
// scheme and host only; a subscription of another account or a deleted one
// leaves it empty.
func TestListDeliveries_FillsEndpointsFromTheStore(t *testing.T) {
	h := newHarness(t)
	mine, _ := h.createSubscription(h.acme, `{"url":"https://crm.example.com/hooks?token=secret-path"}`)
	theirs, _ := h.createSubscription(h.globex, `{"url":"https://globex.example.com/hooks"}`)
	gone := uuid.NewString()
	for i, sub := range []string{mine, theirs, gone} {
		h.dels.add(api.DeliveryDetail{Delivery: api.Delivery{EventID: "evt_ep" + string(rune('a'+i)), SubscriptionID: sub, AccountID: "acme",
			EventType: "user.created", UserID: "u_1", Status: delivery.StatusDelivered, Attempts: 1, StartedAt: t0}})
	}
	var page struct {
		Deliveries []struct {
			SubscriptionID string `json:"subscription_id"`
			Endpoint       string `json:"endpoint"`
		} `json:"deliveries"`
	}
	h.get(h.acme, "/v1/deliveries").want(t, http.StatusOK).decode(t, &page)
	got := map[string]string{}
	for _, d := range page.Deliveries {
		got[d.SubscriptionID] = d.Endpoint
	}
	want := map[string]string{mine: "https://crm.example.com", theirs: "", gone: ""}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for id, ep := range want {
		if got[id] != ep {
			t.Errorf("endpoint of %s = %q, want %q", id, got[id], ep)
		}
	}
}
