// Package deliveries is the delivery log and the delivery operations of
// userhooks, on top of Temporal: list and search deliveries (a visibility
// query over userhooks' search attributes), read one delivery with every
// attempt (from its workflow history), redeliver, cancel, retry now, and
// recover what failed since a time.
//
// Every operation is scoped to an account: a delivery of another account is
// reported exactly as an unknown one (ErrNotFound), and List never returns
// it. This is the boundary an HTTP API relies on; it holds because the
// account is checked against the run's UserhooksAccountID search attribute
// (or is a clause of the visibility query), never taken from the caller's
// word alone.
//
//	svc := deliveries.New(c, deliveries.Options{})
//	page, err := svc.List(ctx, deliveries.Filter{AccountID: "acme", Status: delivery.StatusFailed}, 50, "")
//	d, err := svc.Get(ctx, "acme", deliveries.Key{EventID: id, SubscriptionID: sub}, "")
//	_, err = svc.Redeliver(ctx, "acme", deliveries.Key{EventID: id, SubscriptionID: sub})
package deliveries

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/workflows"
)

// Errors of the service. Match them with errors.Is; the errors returned wrap
// them with context.
var (
	// ErrNotFound: no such delivery (or run) in the caller's account. A
	// delivery of another account, and a key that cannot name a delivery
	// (malformed IDs), give this same error.
	ErrNotFound = errors.New("delivery not found")
	// ErrNotRunning: the operation needs an open run (cancel, retry now) and
	// the delivery's latest run is closed.
	ErrNotRunning = errors.New("delivery is not running")
	// ErrStillRunning: the operation needs a closed run (redeliver) and the
	// delivery's latest run is still open.
	ErrStillRunning = errors.New("delivery is still running")
	// ErrInvalidFilter: a list filter, page size, page token or recover
	// request is malformed. Nothing was queried.
	ErrInvalidFilter = errors.New("invalid delivery filter")
)

// Page sizes of List.
const (
	// DefaultPageSize is used when List is given a page size of 0 or less.
	DefaultPageSize = 50
	// MaxPageSize is the largest page List returns (Temporal's default limit
	// of a visibility page); larger requests are reduced to it.
	MaxPageSize = 1000
)

// MemoRedeliveryOf is the memo key of a redelivery run: the ID of the run it
// redelivers. The Web UI shows it under the run's memo.
const MemoRedeliveryOf = "RedeliveryOf"

// deliveryWorkflowType is the registered name of workflows.DeliveryWorkflow.
const deliveryWorkflowType = "DeliveryWorkflow"

// Options configure a Service.
type Options struct {
	// Namespace the client is connected to; "default" when empty. It must be
	// the client's namespace: the service makes some calls below the SDK
	// client.
	Namespace string
	// TaskQueue of the userhooks workers, where redeliveries are started;
	// workflows.TaskQueue when empty.
	TaskQueue string
	// DataConverter is the one the client was dialled with
	// (client.Options.DataConverter), used to read workflow inputs, results
	// and summaries from history and to write redeliveries' inputs. Nil
	// means converter.GetDefaultDataConverter(). With an encrypting codec,
	// pass the same converter, or histories cannot be read.
	DataConverter converter.DataConverter
	// Identity recorded on the runs the service starts; "userhooks
	// deliveries" when empty.
	Identity string
	// PageTokenKey authenticates List's page tokens (HMAC-SHA256), so that
	// forged ones are refused before they reach Temporal. Every replica
	// behind one API must use the same key (32 random bytes or more). Nil
	// means a random key made by New: tokens then work only with the
	// Service that issued them.
	PageTokenKey []byte
}

// Service reads and operates deliveries. It holds no state of its own and
// is safe for concurrent use.
type Service struct {
	client client.Client
	opts   Options
}

// New returns a Service that works through c.
func New(c client.Client, opts Options) *Service {
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.TaskQueue
	}
	if opts.DataConverter == nil {
		opts.DataConverter = converter.GetDefaultDataConverter()
	}
	if opts.Identity == "" {
		opts.Identity = "userhooks deliveries"
	}
	if len(opts.PageTokenKey) == 0 {
		opts.PageTokenKey = make([]byte, 32)
		rand.Read(opts.PageTokenKey) // never fails (crypto/rand, Go ≥ 1.24)
	} else {
		opts.PageTokenKey = bytes.Clone(opts.PageTokenKey)
	}
	return &Service{client: c, opts: opts}
}

// Key names a delivery: the delivery of one event to one subscription. Its
// workflow ID is workflows.DeliveryWorkflowID(EventID, SubscriptionID).
type Key struct {
	EventID, SubscriptionID string
}

// WorkflowID returns the key's workflow ID after checking both IDs: the
// event ID as package event accepts it, the subscription ID a canonical
// UUID. A malformed key matches ErrNotFound, since it names no delivery.
func (k Key) WorkflowID() (string, error) {
	if !validID(k.EventID) {
		return "", fmt.Errorf("%w: malformed event ID", ErrNotFound)
	}
	if !validUUID(k.SubscriptionID) {
		return "", fmt.Errorf("%w: malformed subscription ID", ErrNotFound)
	}
	return workflows.DeliveryWorkflowID(k.EventID, k.SubscriptionID), nil
}

// Delivery is one run of a delivery workflow, as the delivery log shows it.
// A redelivered delivery has one Delivery per run, told apart by RunID.
type Delivery struct {
	EventID        string
	SubscriptionID string
	AccountID      string
	EventType      string
	UserID         string
	// Status of this run: pending or retrying while it is open; delivered,
	// skipped, failed or canceled once closed (a terminated run counts as
	// canceled, a timed-out one as failed).
	Status delivery.Status
	// Attempts made by this run so far.
	Attempts   int
	WorkflowID string
	RunID      string
	StartedAt  time.Time
	// ClosedAt is zero while the run is open.
	ClosedAt time.Time
	// Endpoint is the scheme and host the delivery is addressed to, from
	// the run's Web UI summary. Get and Redeliver fill it; List leaves it
	// empty (visibility does not return summaries).
	Endpoint string
	// RedeliveryOf is the run this run redelivers, empty for a first run.
	RedeliveryOf string
}

// Detail is one run with its attempt log.
type Detail struct {
	Delivery
	// AttemptLog holds every attempt of the run in order: the result or
	// failure details of each Deliver (local) activity. An attempt that
	// failed on our side without a record (worker lost, timeout) appears
	// with class InternalError.
	AttemptLog []delivery.Attempt
	// NextAttemptAt is when the run will try again, while it waits between
	// attempts; zero otherwise, and while it waits for a permit.
	NextAttemptAt time.Time
	// WaitingForPermitSince is set while the run waits for a permit of its
	// endpoint's gate before its next attempt (the subscription's
	// concurrency limit is reached): when it asked for the permit. The
	// attempt starts when the gate grants it, at no time known in advance.
	// Zero otherwise.
	WaitingForPermitSince time.Time
}

// Page is one page of List.
type Page struct {
	Deliveries []Delivery
	// NextPageToken fetches the next page; empty on the last one.
	NextPageToken string
}

// RecoverResult says what Recover did.
type RecoverResult struct {
	// Redelivered lists the new runs, one per delivery.
	Redelivered []Delivery
	// AlreadyRunning counts deliveries of the subscription that had an
	// open run, which Recover left alone.
	AlreadyRunning int
}

// List returns one page of the account's deliveries that match f, one entry
// per run, in Temporal's visibility order: open runs first, then closed
// ones by close time, newest first. Pass the returned NextPageToken to get
// the next page, with the same filter. pageSize ≤ 0 means DefaultPageSize;
// above MaxPageSize it is reduced to MaxPageSize. A page token that was not
// issued for this filter (see Options.PageTokenKey) is ErrInvalidFilter.
//
// Visibility is eventually consistent: a run started or closed a moment ago
// may be missing or show its previous status.
func (s *Service) List(ctx context.Context, f Filter, pageSize int, pageToken string) (Page, error) {
	q, err := f.Query()
	if err != nil {
		return Page{}, err
	}
	token, err := s.decodePageToken(q, pageToken)
	if err != nil {
		return Page{}, err
	}
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	pageSize = min(pageSize, MaxPageSize)
	resp, err := s.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace:     s.opts.Namespace,
		PageSize:      int32(pageSize),
		NextPageToken: token,
		Query:         q,
	})
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) && token != nil {
		// Our own token, but Temporal no longer takes it (it expired, or the
		// cluster changed). A refused query is a server problem instead: the
		// query is ours, so it fails only on a misconfigured namespace.
		return Page{}, fmt.Errorf("%w: page token refused: %s", ErrInvalidFilter, invalid.Message)
	}
	if err != nil {
		return Page{}, fmt.Errorf("list deliveries of account %s: %w", f.AccountID, err)
	}
	page := Page{NextPageToken: s.encodePageToken(q, resp.GetNextPageToken())}
	for _, info := range resp.GetExecutions() {
		d := s.fromInfo(info)
		if d.AccountID != f.AccountID {
			continue // never expected: the query names the account
		}
		page.Deliveries = append(page.Deliveries, d)
	}
	return page, nil
}

// Get returns a delivery's run — the latest, or runID when it is not empty
// — with its attempt log read from history.
func (s *Service) Get(ctx context.Context, accountID string, k Key, runID string) (Detail, error) {
	id, err := k.WorkflowID()
	if err != nil {
		return Detail{}, err
	}
	if runID != "" && !validUUID(runID) {
		return Detail{}, fmt.Errorf("%w: malformed run ID", ErrNotFound)
	}
	r, err := s.describe(ctx, accountID, id, runID)
	if err != nil {
		return Detail{}, err
	}
	events, err := s.history(ctx, id, r.RunID)
	if err != nil {
		return Detail{}, err
	}
	rl, err := attemptLog(s.opts.DataConverter, events)
	if err != nil {
		return Detail{}, fmt.Errorf("attempt log of %s run %s: %w", id, r.RunID, err)
	}
	d := Detail{Delivery: r.Delivery, AttemptLog: rl.Attempts}
	d.Attempts = max(d.Attempts, len(rl.Attempts))
	if r.ClosedAt.IsZero() {
		d.NextAttemptAt = rl.NextAttemptAt
		d.WaitingForPermitSince = rl.WaitingForPermitSince
	}
	return d, nil
}

// run is a delivery's run as DescribeWorkflowExecution shows it.
type run struct {
	Delivery
	open bool
}

// describe returns the run (the latest when runID is empty) after checking
// that it is a delivery of accountID; ErrNotFound otherwise.
func (s *Service) describe(ctx context.Context, accountID, workflowID, runID string) (run, error) {
	if !validID(accountID) {
		return run{}, fmt.Errorf("%w: malformed account ID", ErrNotFound)
	}
	resp, err := s.client.DescribeWorkflowExecution(ctx, workflowID, runID)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return run{}, ErrNotFound
	}
	if err != nil {
		return run{}, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	info := resp.GetWorkflowExecutionInfo()
	d := s.fromInfo(info)
	if info.GetType().GetName() != deliveryWorkflowType || d.AccountID != accountID || d.WorkflowID != workflowID {
		return run{}, ErrNotFound
	}
	if p := resp.GetExecutionConfig().GetUserMetadata().GetSummary(); p != nil {
		var summary string
		if err := s.opts.DataConverter.FromPayload(p, &summary); err == nil {
			d.Endpoint = endpointFromSummary(summary)
		}
	}
	return run{Delivery: d, open: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}, nil
}

// fromInfo reads a delivery from a run's visibility record or description.
// Search attributes are always encoded with the default converter (never a
// codec), so they are read with it; the memo goes through the client's.
func (s *Service) fromInfo(info *workflowpb.WorkflowExecutionInfo) Delivery {
	attrs := info.GetSearchAttributes().GetIndexedFields()
	d := Delivery{
		EventID:        keyword(attrs, workflows.AttrEventID.GetName()),
		SubscriptionID: keyword(attrs, workflows.AttrSubscriptionID.GetName()),
		AccountID:      keyword(attrs, workflows.AttrAccountID.GetName()),
		EventType:      keyword(attrs, workflows.AttrEventType.GetName()),
		UserID:         keyword(attrs, workflows.AttrUserID.GetName()),
		Attempts:       int(integer(attrs, workflows.AttrAttempts.GetName())),
		WorkflowID:     info.GetExecution().GetWorkflowId(),
		RunID:          info.GetExecution().GetRunId(),
	}
	d.Status = statusOf(info.GetStatus(), delivery.Status(keyword(attrs, workflows.AttrDeliveryStatus.GetName())))
	if t := info.GetStartTime(); t != nil {
		d.StartedAt = t.AsTime()
	}
	if t := info.GetCloseTime(); t != nil && info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		d.ClosedAt = t.AsTime()
	}
	if p := info.GetMemo().GetFields()[MemoRedeliveryOf]; p != nil {
		var of string
		if err := s.opts.DataConverter.FromPayload(p, &of); err == nil && validUUID(of) {
			d.RedeliveryOf = of
		}
	}
	return d
}

func keyword(attrs map[string]*commonpb.Payload, name string) string {
	var v string
	if p := attrs[name]; p != nil {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
			return ""
		}
	}
	return v
}

func integer(attrs map[string]*commonpb.Payload, name string) int64 {
	var v int64
	if p := attrs[name]; p != nil {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
			return 0
		}
	}
	return v
}

// statusOf is a run's delivery status. Temporal's execution status decides
// for closed runs that did not deliver, so that a run terminated or failed
// outside the workflow's own bookkeeping (its search attribute then still
// says pending or retrying) is not shown as open; the search attribute
// tells the rest apart.
func statusOf(exec enumspb.WorkflowExecutionStatus, attr delivery.Status) delivery.Status {
	switch exec {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if attr == delivery.StatusRetrying {
			return delivery.StatusRetrying
		}
		return delivery.StatusPending
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if attr == delivery.StatusSkipped {
			return delivery.StatusSkipped
		}
		return delivery.StatusDelivered
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return delivery.StatusCanceled
	default: // failed, timed out (continued-as-new is never used)
		return delivery.StatusFailed
	}
}

// endpointFromSummary takes the endpoint out of a delivery's summary,
// "user.created u_42 → https://crm.example.com" (a redelivery appends
// " (redelivery of run …)").
func endpointFromSummary(summary string) string {
	_, rest, ok := strings.Cut(summary, "→ ")
	if !ok {
		return ""
	}
	if f := strings.Fields(rest); len(f) > 0 && strings.Contains(f[0], "://") {
		return f[0]
	}
	return ""
}
