package deliveries_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/deliveries"
	"github.com/userhooks/userhooks/delivery"
)

const (
	sub1 = "0192f5b8-3c1e-7a4b-9c2d-1e2f3a4b5c6d"
	run1 = "3b5f0c1e-2d4a-4b6c-8d9e-0f1a2b3c4d5e"
)

func TestFilterQuery_BuildsOneClausePerFilter(t *testing.T) {
	base := "WorkflowType = 'DeliveryWorkflow' AND UserhooksAccountID = 'acme'"
	after := time.Date(2026, 11, 23, 9, 30, 0, 5000, time.FixedZone("CET", 3600))
	before := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		filter deliveries.Filter
		want   string
	}{
		{"account only", deliveries.Filter{AccountID: "acme"}, base},
		{"subscription", deliveries.Filter{AccountID: "acme", SubscriptionID: sub1},
			base + " AND UserhooksSubscriptionID = '" + sub1 + "'"},
		{"event", deliveries.Filter{AccountID: "acme", EventID: "evt_1.a:b-c"},
			base + " AND UserhooksEventID = 'evt_1.a:b-c'"},
		{"user", deliveries.Filter{AccountID: "acme", UserID: "u_42"},
			base + " AND UserhooksUserID = 'u_42'"},
		{"event type", deliveries.Filter{AccountID: "acme", EventType: "user.deleted"},
			base + " AND UserhooksEventType = 'user.deleted'"},
		{"pending", deliveries.Filter{AccountID: "acme", Status: delivery.StatusPending},
			base + " AND ExecutionStatus = 'Running' AND UserhooksDeliveryStatus = 'pending'"},
		{"retrying", deliveries.Filter{AccountID: "acme", Status: delivery.StatusRetrying},
			base + " AND ExecutionStatus = 'Running' AND UserhooksDeliveryStatus = 'retrying'"},
		{"delivered", deliveries.Filter{AccountID: "acme", Status: delivery.StatusDelivered},
			base + " AND ExecutionStatus = 'Completed' AND UserhooksDeliveryStatus = 'delivered'"},
		{"skipped", deliveries.Filter{AccountID: "acme", Status: delivery.StatusSkipped},
			base + " AND ExecutionStatus = 'Completed' AND UserhooksDeliveryStatus = 'skipped'"},
		{"failed includes timed out", deliveries.Filter{AccountID: "acme", Status: delivery.StatusFailed},
			base + " AND (ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut')"},
		{"canceled includes terminated", deliveries.Filter{AccountID: "acme", Status: delivery.StatusCanceled},
			base + " AND (ExecutionStatus = 'Canceled' OR ExecutionStatus = 'Terminated')"},
		{"started window in UTC, after inclusive, before exclusive", deliveries.Filter{AccountID: "acme", StartedAfter: after, StartedBefore: before},
			base + " AND StartTime >= '2026-11-23T08:30:00.000005Z' AND StartTime < '2026-11-24T00:00:00Z'"},
		{"everything", deliveries.Filter{AccountID: "acme", SubscriptionID: sub1, EventID: "e1", UserID: "u1",
			EventType: "user.created", Status: delivery.StatusFailed, StartedAfter: before},
			base + " AND UserhooksSubscriptionID = '" + sub1 + "' AND UserhooksEventID = 'e1' AND UserhooksUserID = 'u1'" +
				" AND UserhooksEventType = 'user.created' AND (ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut')" +
				" AND StartTime >= '2026-11-24T00:00:00Z'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.filter.Query()
			if err != nil {
				t.Fatalf("Query() error: %v", err)
			}
			if got != tc.want {
				t.Errorf("Query() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestFilterQuery_RejectsMalformedValuesBeforeTheyReachAQuery(t *testing.T) {
	hostile := []string{
		`' OR '1'='1`,
		`acme' OR UserhooksAccountID != '`,
		`acme\`,
		`acme\' OR 1=1 --`,
		`"acme"`,
		"acme\x00",
		"acme\nOR",
		"acme OR x",
		"",
		strings.Repeat("a", 129),
		".leading-dot",
		"ünïcode",
	}
	var cases []deliveries.Filter
	for _, h := range hostile {
		cases = append(cases, deliveries.Filter{AccountID: h})
		if h == "" {
			continue // an empty optional field is no filter
		}
		cases = append(cases,
			deliveries.Filter{AccountID: "acme", EventID: h},
			deliveries.Filter{AccountID: "acme", UserID: h},
			deliveries.Filter{AccountID: "acme", SubscriptionID: h},
			deliveries.Filter{AccountID: "acme", EventType: h},
			deliveries.Filter{AccountID: "acme", Status: delivery.Status(h)},
		)
	}
	cases = append(cases,
		deliveries.Filter{AccountID: "acme", SubscriptionID: strings.ToUpper(sub1)},    // not canonical
		deliveries.Filter{AccountID: "acme", SubscriptionID: "{" + sub1 + "}"},         // uuid.Parse accepts it
		deliveries.Filter{AccountID: "acme", SubscriptionID: "urn:uuid:" + sub1},       // and this
		deliveries.Filter{AccountID: "acme", EventType: "user.created' OR '1'='1"},     // not a known type
		deliveries.Filter{AccountID: "acme", Status: "failed' OR ExecutionStatus = '"}, // not a known status
		deliveries.Filter{AccountID: "acme", StartedAfter: time.Unix(10, 0), StartedBefore: time.Unix(10, 0)},
		deliveries.Filter{AccountID: "acme", StartedAfter: time.Unix(11, 0), StartedBefore: time.Unix(10, 0)},
	)
	for _, f := range cases {
		q, err := f.Query()
		if !errors.Is(err, deliveries.ErrInvalidFilter) {
			t.Errorf("Query(%+v) = %q, %v; want ErrInvalidFilter", f, q, err)
		}
		if q != "" {
			t.Errorf("Query(%+v) returned a query with its error: %q", f, q)
		}
	}
}

func TestFilterQuery_ErrorNamesEveryProblem(t *testing.T) {
	_, err := deliveries.Filter{AccountID: "acme", EventID: "bad id", Status: "lost"}.Query()
	if err == nil || !strings.Contains(err.Error(), "event ID") || !strings.Contains(err.Error(), "status") {
		t.Errorf("error = %v, want both the event ID and the status named", err)
	}
}

func TestKeyWorkflowID_IsTheDeliveryWorkflowIDOfValidKeysOnly(t *testing.T) {
	id, err := deliveries.Key{EventID: "evt-1", SubscriptionID: sub1}.WorkflowID()
	if err != nil || id != "delivery/evt-1/"+sub1 {
		t.Errorf("WorkflowID() = %q, %v; want delivery/evt-1/%s", id, err, sub1)
	}
	for _, k := range []deliveries.Key{
		{EventID: "", SubscriptionID: sub1},
		{EventID: "evt/1", SubscriptionID: sub1},
		{EventID: "evt-1/" + sub1, SubscriptionID: sub1},
		{EventID: "evt' OR '1'='1", SubscriptionID: sub1},
		{EventID: "evt-1", SubscriptionID: ""},
		{EventID: "evt-1", SubscriptionID: "not-a-uuid"},
		{EventID: "evt-1", SubscriptionID: sub1 + "/x"},
	} {
		if id, err := k.WorkflowID(); !errors.Is(err, deliveries.ErrNotFound) {
			t.Errorf("WorkflowID(%+v) = %q, %v; want ErrNotFound", k, id, err)
		}
	}
}
