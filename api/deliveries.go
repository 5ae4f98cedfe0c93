package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
)

// Deliveries is what the API needs from the delivery log; deliveries.Service
// (package deliveries) implements it. Every method is scoped to an account:
// a delivery of another account is ErrDeliveryNotFound, like one that does
// not exist.
type Deliveries interface {
	// List searches the deliveries that match f (f.AccountID is always set).
	List(ctx context.Context, f DeliveryFilter, pageSize int, pageToken string) (DeliveryPage, error)
	// Get returns a delivery with its attempts: the latest run, or runID.
	Get(ctx context.Context, accountID string, k DeliveryKey, runID string) (DeliveryDetail, error)
	// Redeliver starts a new run of a finished delivery.
	Redeliver(ctx context.Context, accountID string, k DeliveryKey) (Delivery, error)
	// Cancel stops a running delivery's retries.
	Cancel(ctx context.Context, accountID string, k DeliveryKey) error
	// RetryNow makes a running delivery skip its wait.
	RetryNow(ctx context.Context, accountID string, k DeliveryKey) error
	// Recover redelivers what failed for a subscription since a time.
	Recover(ctx context.Context, accountID, subscriptionID string, since time.Time) (RecoverResult, error)
}

// deliveryView is a delivery as the API shows it.
type deliveryView struct {
	EventID        string          `json:"event_id"`
	SubscriptionID string          `json:"subscription_id"`
	AccountID      string          `json:"account_id"`
	EventType      string          `json:"event_type"`
	UserID         string          `json:"user_id"`
	Status         delivery.Status `json:"status"`
	Attempts       int             `json:"attempts"`
	WorkflowID     string          `json:"workflow_id"`
	RunID          string          `json:"run_id"`
	StartedAt      *time.Time      `json:"started_at"`
	ClosedAt       *time.Time      `json:"closed_at"`
	Endpoint       string          `json:"endpoint"`
	RedeliveryOf   *string         `json:"redelivery_of"`
}

// deliveryDetailView is a delivery with its attempt log.
type deliveryDetailView struct {
	deliveryView
	AttemptLog    []attemptView `json:"attempt_log"`
	NextAttemptAt *time.Time    `json:"next_attempt_at"`
	// WaitingForPermitSince is set while the delivery waits for a permit
	// of its subscription's concurrency limit.
	WaitingForPermitSince *time.Time `json:"waiting_for_permit_since"`
}

// attemptView is one attempt as the API shows it.
type attemptView struct {
	Attempt         int                  `json:"attempt"`
	StartedAt       time.Time            `json:"started_at"`
	DurationMs      int64                `json:"duration_ms"`
	StatusCode      *int                 `json:"status_code"`
	ErrorClass      *delivery.ErrorClass `json:"error_class"`
	Error           *string              `json:"error"`
	ResponseExcerpt *string              `json:"response_excerpt"`
	RetryAfter      *delivery.Duration   `json:"retry_after"`
	Skipped         bool                 `json:"skipped"`
	Succeeded       bool                 `json:"succeeded"`
}

type deliveryList struct {
	Deliveries []deliveryView `json:"deliveries"`
	// NextPageToken is the page_token of the next page, null on the last.
	NextPageToken *string `json:"next_page_token"`
}

// operationView acknowledges a cancel or retry request.
type operationView struct {
	Operation      string `json:"operation"`
	EventID        string `json:"event_id"`
	SubscriptionID string `json:"subscription_id"`
}

type recoverView struct {
	Redelivered    []deliveryView `json:"redelivered"`
	AlreadyRunning int            `json:"already_running"`
}

func viewDelivery(d Delivery) deliveryView {
	return deliveryView{
		EventID:        d.EventID,
		SubscriptionID: d.SubscriptionID,
		AccountID:      d.AccountID,
		EventType:      d.EventType,
		UserID:         d.UserID,
		Status:         d.Status,
		Attempts:       d.Attempts,
		WorkflowID:     d.WorkflowID,
		RunID:          d.RunID,
		StartedAt:      timeOrNull(d.StartedAt),
		ClosedAt:       timeOrNull(d.ClosedAt),
		Endpoint:       d.Endpoint,
		RedeliveryOf:   stringOrNull(d.RedeliveryOf),
	}
}

func viewDeliveries(ds []Delivery) []deliveryView {
	views := make([]deliveryView, len(ds))
	for i, d := range ds {
		views[i] = viewDelivery(d)
	}
	return views
}

func viewAttempt(a delivery.Attempt) attemptView {
	v := attemptView{
		Attempt:         a.Number,
		StartedAt:       a.StartedAt.UTC(),
		DurationMs:      a.DurationMs,
		Error:           stringOrNull(a.Error),
		ResponseExcerpt: stringOrNull(a.ResponseExcerpt),
		Skipped:         a.Skipped,
		Succeeded:       a.Succeeded(),
	}
	if a.StatusCode != 0 {
		code := a.StatusCode
		v.StatusCode = &code
	}
	if a.Class != "" {
		class := a.Class
		v.ErrorClass = &class
	}
	if a.RetryAfter != 0 {
		ra := a.RetryAfter
		v.RetryAfter = &ra
	}
	return v
}

func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func stringOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// deliveriesError maps an error of Deliveries to an answer.
func deliveriesError(r *http.Request, err error) error {
	switch {
	case errors.Is(err, ErrDeliveryNotFound):
		return notFound("delivery")
	case errors.Is(err, ErrNotRunning):
		return &problem{Status: http.StatusConflict, Detail: "the delivery has finished: there is nothing to cancel or retry; redeliver it instead"}
	case errors.Is(err, ErrStillRunning):
		return &problem{Status: http.StatusConflict, Detail: "the delivery is still running: cancel it or wait for it to finish before redelivering"}
	case errors.Is(err, ErrInvalidFilter):
		return unprocessable("the search is invalid", err.Error())
	}
	infoOf(r).err = err
	return &problem{Status: http.StatusServiceUnavailable, Detail: "the delivery log is unavailable; try again"}
}

// deliveryStatuses are the values of the status filter.
var deliveryStatuses = []delivery.Status{
	delivery.StatusPending, delivery.StatusRetrying, delivery.StatusDelivered,
	delivery.StatusFailed, delivery.StatusCanceled, delivery.StatusSkipped,
}

// idPattern is the rule for event and user IDs in the envelope (package
// event); IDs that break it cannot name a delivery.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

func validID(id string) bool { return len(id) <= event.MaxIDLength && idPattern.MatchString(id) }

// maxPageTokenBytes bounds the opaque page token a caller sends back.
const maxPageTokenBytes = 8 << 10

func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	q := parseQuery(r, "subscription_id", "event_id", "user_id", "event_type", "status",
		"started_after", "started_before", "limit", "page_token")
	f := DeliveryFilter{
		AccountID:      key.AccountID,
		SubscriptionID: q.get("subscription_id"),
		EventID:        q.get("event_id"),
		UserID:         q.get("user_id"),
		EventType:      q.get("event_type"),
		Status:         delivery.Status(q.get("status")),
	}
	if f.SubscriptionID != "" && !canonicalUUID(f.SubscriptionID) {
		q.fail("subscription_id", "must be a subscription ID (a UUID)")
	}
	if f.EventID != "" && !validID(f.EventID) {
		q.fail("event_id", "must be an event ID: 1 to 128 letters, digits and . _ : -")
	}
	if f.UserID != "" && !validID(f.UserID) {
		q.fail("user_id", "must be a user ID: 1 to 128 letters, digits and . _ : -")
	}
	if f.EventType != "" && !event.Type(f.EventType).Valid() {
		q.fail("event_type", "must be user.created, user.updated or user.deleted")
	}
	if f.Status != "" && !slices.Contains(deliveryStatuses, f.Status) {
		q.fail("status", "must be pending, retrying, delivered, failed, canceled or skipped")
	}
	f.StartedAfter = q.time("started_after")
	f.StartedBefore = q.time("started_before")
	if !f.StartedAfter.IsZero() && !f.StartedBefore.IsZero() && !f.StartedBefore.After(f.StartedAfter) {
		q.fail("started_before", "must be later than started_after")
	}
	limit := q.limit()
	token := q.get("page_token")
	if len(token) > maxPageTokenBytes {
		q.fail("page_token", "is longer than any token this API gives out")
	}
	if err := q.err(); err != nil {
		return err
	}
	page, err := s.cfg.Deliveries.List(r.Context(), f, limit, token)
	if err != nil {
		return deliveriesError(r, err)
	}
	s.fillEndpoints(r.Context(), key.AccountID, page.Deliveries)
	resp := deliveryList{Deliveries: viewDeliveries(page.Deliveries), NextPageToken: stringOrNull(page.NextPageToken)}
	return writeJSON(w, http.StatusOK, resp)
}

// time reads an RFC 3339 time parameter; zero when absent.
func (q *query) time(name string) time.Time {
	v := q.get(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.fail(name, "must be an RFC 3339 time such as 2026-11-23T09:00:00Z")
		return time.Time{}
	}
	return t.UTC()
}

// deliveryKey reads the delivery named by the path. A malformed ID names no
// delivery: 404, like an unknown one.
func deliveryKey(r *http.Request) (DeliveryKey, error) {
	k := DeliveryKey{EventID: r.PathValue("event_id"), SubscriptionID: r.PathValue("subscription_id")}
	if !validID(k.EventID) || !canonicalUUID(k.SubscriptionID) {
		return DeliveryKey{}, notFound("delivery")
	}
	return k, nil
}

func (s *server) getDelivery(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	q := parseQuery(r, "run_id")
	runID := q.get("run_id")
	if runID != "" && !canonicalUUID(runID) {
		q.fail("run_id", "must be a run ID (a UUID)")
	}
	if err := q.err(); err != nil {
		return err
	}
	k, err := deliveryKey(r)
	if err != nil {
		return err
	}
	d, err := s.cfg.Deliveries.Get(r.Context(), key.AccountID, k, runID)
	if err != nil {
		return deliveriesError(r, err)
	}
	v := deliveryDetailView{
		deliveryView:          viewDelivery(d.Delivery),
		AttemptLog:            make([]attemptView, len(d.AttemptLog)),
		NextAttemptAt:         timeOrNull(d.NextAttemptAt),
		WaitingForPermitSince: timeOrNull(d.WaitingForPermitSince),
	}
	for i, a := range d.AttemptLog {
		v.AttemptLog[i] = viewAttempt(a)
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *server) redeliver(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	k, err := deliveryKey(r)
	if err != nil {
		return err
	}
	d, err := s.cfg.Deliveries.Redeliver(r.Context(), key.AccountID, k)
	if err != nil {
		return deliveriesError(r, err)
	}
	return writeJSON(w, http.StatusAccepted, viewDelivery(d))
}

func (s *server) cancelDelivery(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	return s.operate(w, r, key, "cancel", s.cfg.Deliveries.Cancel)
}

func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	return s.operate(w, r, key, "retry", s.cfg.Deliveries.RetryNow)
}

// operate runs a cancel or retry and acknowledges it with 202: the delivery
// workflow acts on it asynchronously.
func (s *server) operate(w http.ResponseWriter, r *http.Request, key apikey.Key, name string,
	op func(ctx context.Context, accountID string, k DeliveryKey) error) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	k, err := deliveryKey(r)
	if err != nil {
		return err
	}
	if err := op(r.Context(), key.AccountID, k); err != nil {
		return deliveriesError(r, err)
	}
	return writeJSON(w, http.StatusAccepted, operationView{Operation: name, EventID: k.EventID, SubscriptionID: k.SubscriptionID})
}

// recoverRequest is the body of POST /v1/subscriptions/{id}/recover.
type recoverRequest struct {
	Since time.Time `json:"since"`
}

func (s *server) recoverDeliveries(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := parseQuery(r).err(); err != nil {
		return err
	}
	body, err := readBody(w, r, maxBodyBytes, false, mediaJSON)
	if err != nil {
		return err
	}
	var req recoverRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	switch {
	case req.Since.IsZero():
		return unprocessable("the recovery is invalid", "since is required: the time from which failed deliveries are redelivered")
	case req.Since.After(s.now()):
		return unprocessable("the recovery is invalid", "since is in the future")
	}
	sub, err := s.ownSubscription(r, key)
	if err != nil {
		return err
	}
	res, err := s.cfg.Deliveries.Recover(r.Context(), key.AccountID, sub.ID, req.Since.UTC())
	if err != nil {
		return deliveriesError(r, err)
	}
	return writeJSON(w, http.StatusAccepted, recoverView{Redelivered: viewDeliveries(res.Redelivered), AlreadyRunning: res.AlreadyRunning})
}

// fillEndpoints sets the endpoint (scheme and host) of deliveries that lack
// one — visibility does not return the summary it is kept in — from the
// subscription store, one lookup per subscription on the page. A
// subscription deleted since, or of another account, leaves it empty.
func (s *server) fillEndpoints(ctx context.Context, accountID string, ds []Delivery) {
	endpoints := map[string]string{}
	for i := range ds {
		if ds[i].Endpoint != "" {
			continue
		}
		id := ds[i].SubscriptionID
		ep, seen := endpoints[id]
		if !seen {
			if sub, err := s.cfg.Subscriptions.Get(ctx, id); err == nil && sub.AccountID == accountID {
				ep = displayEndpoint(sub.URL)
			}
			endpoints[id] = ep
		}
		ds[i].Endpoint = ep
	}
}

// displayEndpoint reduces a URL to scheme and host, as workflow summaries
// show it: paths and queries often carry tokens.
func displayEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
