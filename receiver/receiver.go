// Package receiver is the receiving side of userhooks for Go services: an
// http.Handler middleware that verifies the Standard Webhooks signature of a
// delivery, decodes its event, de-duplicates deliveries by webhook-id, and
// hands the event to the service's own code.
//
// It imports only the standard library and the leaf packages event and
// signature: a service that receives webhooks does not pull in Temporal or
// any part of the sending side.
//
//	rcv, err := receiver.New(receiver.Options{
//		Secrets: secrets, // from signature.ParseSecret("whsec_…")
//		Dedup:   receiver.NewMemoryDedup(0),
//	})
//	mux.Handle("POST /webhooks", rcv.Handle(func(ctx context.Context, e event.Event) error {
//		return apply(ctx, e) // an error answers 500, and the sender retries
//	}))
//
// Or, to keep a plain http.Handler, Wrap it and read the event from the
// request's context with EventFrom.
//
// What the sender gets back:
//
//	2xx  the handler succeeded (204 from Handle), or the webhook-id was
//	     already applied (200, "duplicate")
//	400  missing headers, malformed timestamp, invalid event, id mismatch
//	401  bad signature (tampered body, unknown secret, malformed header),
//	     timestamp too old or too new
//	413  body over the size limit
//	5xx  the handler failed, or the same webhook-id is being handled right
//	     now, or the de-duplication store failed: the sender retries
//
// Every error body is one line of plain text, "<reason>: <fixed text>"; the
// details go to Options.OnOutcome, never to the caller.
package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
)

// DefaultMaxBodyBytes is the body size limit when Options.MaxBodyBytes is
// zero: the largest body a valid event can have, so anything larger is
// refused before it is read in full.
const DefaultMaxBodyBytes = event.MaxBodyBytes

// finishTimeout bounds the Complete or Release that follows the handler. It
// runs on a context detached from the request's, so a client that hung up
// does not leave a claim behind.
const finishTimeout = 10 * time.Second

// Options configures a Receiver.
type Options struct {
	// Secrets verify signatures; a delivery signed with any of them is
	// accepted. Hold the old and the new secret during a rotation. Zero
	// Secrets are ignored; at least one must be usable.
	Secrets []signature.Secret
	// Tolerance is how far webhook-timestamp may be from the receiver's
	// clock, either way. Zero means signature.DefaultTolerance (5 minutes).
	Tolerance time.Duration
	// MaxBodyBytes caps the body. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Dedup remembers applied webhook-ids. Nil means no de-duplication:
	// every verified delivery reaches the handler, repeats included.
	Dedup DedupStore
	// OnOutcome, if set, is called once per request, after the response
	// was written, with what happened. It runs on the request's goroutine:
	// keep it quick (log, count). It is where rejections are explained:
	// the client only gets the reason code.
	OnOutcome func(r *http.Request, o Outcome)
	// Now returns the current time for the timestamp check; nil means
	// time.Now. Tests set it.
	Now func() time.Time
}

// Outcome is what the receiver did with one request. It holds no secret and
// no part of the body; MessageID and the error's text may quote (truncated)
// header values that the caller sent.
type Outcome struct {
	// Status is the HTTP status answered.
	Status int
	// Reason is the code of the outcome.
	Reason Reason
	// Err explains a refusal or failure and wraps one of the Err
	// sentinels. It is nil for accepted and duplicate deliveries, except
	// when marking an accepted delivery done failed: the event was applied
	// and 2xx answered, but a repeat of it will be applied again.
	Err error
	// MessageID is the webhook-id header (as sent; at most
	// event.MaxIDLength bytes of it). Trust it only if Verified.
	MessageID string
	// Verified reports that the signature was valid.
	Verified bool
	// EventType, AccountID and UserID describe the event once it was
	// decoded; they are empty before.
	EventType event.Type
	AccountID string
	UserID    string
	// Duration is how long the request took, the handler included.
	Duration time.Duration
}

// HandlerFunc applies one verified event. A nil error answers 204 and marks
// the delivery processed; an error answers 500, so the sender retries, and
// the error goes to Options.OnOutcome, never to the caller.
//
// ctx is the request's context; EventFrom(ctx) returns e as well.
type HandlerFunc func(ctx context.Context, e event.Event) error

// Receiver verifies, decodes and de-duplicates webhook deliveries in front
// of a handler. It is safe for concurrent use; create it with New.
type Receiver struct {
	verifier  signature.Verifier
	maxBody   int64
	dedup     DedupStore
	onOutcome func(*http.Request, Outcome)
	now       func() time.Time
}

// New returns a Receiver configured by opts. It fails if no secret is usable
// or a limit is negative.
func New(opts Options) (*Receiver, error) {
	usable := 0
	for _, s := range opts.Secrets {
		if !s.IsZero() {
			usable++
		}
	}
	if usable == 0 {
		return nil, fmt.Errorf("new webhook receiver: %w", ErrNoSecrets)
	}
	if opts.Tolerance < 0 {
		return nil, fmt.Errorf("new webhook receiver: tolerance %s is negative", opts.Tolerance)
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("new webhook receiver: body limit %d is negative", opts.MaxBodyBytes)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Receiver{
		verifier:  signature.Verifier{Secrets: append([]signature.Secret(nil), opts.Secrets...), Tolerance: opts.Tolerance, Now: now},
		maxBody:   opts.MaxBodyBytes,
		dedup:     opts.Dedup,
		onOutcome: opts.OnOutcome,
		now:       now,
	}, nil
}

type eventKey struct{}

// EventFrom returns the verified event of a request that went through
// Receiver.Wrap or Receiver.Handle; ok is false for any other context.
func EventFrom(ctx context.Context) (e event.Event, ok bool) {
	e, ok = ctx.Value(eventKey{}).(event.Event)
	return e, ok
}

// Handle returns an http.Handler that verifies each delivery and calls fn
// with its event. See HandlerFunc for what fn's result answers.
func (rc *Receiver) Handle(fn HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.serve(w, r, func(w *bufferedResponse, r *http.Request) error {
			e, _ := EventFrom(r.Context())
			if err := fn(r.Context(), e); err != nil {
				writeRefusal(w, refusalOf(ErrHandlerFailed))
				return fmt.Errorf("%w: %w", ErrHandlerFailed, err)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		})
	})
}

// Wrap returns middleware around next: next only sees verified deliveries
// of valid events, with the event in the request's context (EventFrom) and
// the body, already read, restored for it to read again.
//
// next's answer decides: 2xx (or writing nothing, which is 200) marks the
// delivery processed; anything else leaves it unprocessed, so the sender's
// retry reaches next again. next's response is buffered and sent once the
// delivery is marked, so a sender never sees 2xx for a delivery that a
// repeat would apply again. rc.Wrap is itself a func(http.Handler)
// http.Handler, for routers that chain middleware.
func (rc *Receiver) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.serve(w, r, func(w *bufferedResponse, r *http.Request) error {
			next.ServeHTTP(w, r)
			if status := w.statusCode(); status < 200 || status > 299 {
				return fmt.Errorf("%w: it answered %d", ErrHandlerFailed, status)
			}
			return nil
		})
	})
}

// apply runs the integrator's code on a verified request; its response goes
// to w, and a non-nil error means it failed (the delivery is not done).
type apply func(w *bufferedResponse, r *http.Request) error

// serve handles one request and reports its outcome.
func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request, run apply) {
	start := time.Now()
	o := Outcome{MessageID: truncate(r.Header.Get(signature.HeaderID), event.MaxIDLength)}
	report := func() {
		if rc.onOutcome != nil {
			o.Duration = time.Since(start)
			rc.onOutcome(r, o)
		}
	}
	defer func() {
		if v := recover(); v != nil {
			o.Status, o.Reason = http.StatusInternalServerError, ReasonHandlerFailed
			o.Err = fmt.Errorf("%w: it panicked", ErrHandlerFailed)
			report()
			panic(v) // net/http logs it and drops the connection
		}
	}()
	rc.process(w, r, run, &o)
	report()
}

// process does the work of serve, filling in o.
func (rc *Receiver) process(w http.ResponseWriter, r *http.Request, run apply, o *Outcome) {
	refuse := func(err error) {
		ref := refusalOf(err)
		writeRefusal(w, ref)
		o.Status, o.Reason, o.Err = ref.status, ref.reason, err
	}

	body, err := readBody(w, r, rc.maxBody)
	if err != nil {
		refuse(err)
		return
	}
	if err := rc.verifier.Verify(r.Header, body); err != nil {
		refuse(err)
		return
	}
	o.Verified = true
	e, err := event.Decode(body)
	if err != nil {
		refuse(fmt.Errorf("decode event: %w", err))
		return
	}
	o.EventType, o.AccountID, o.UserID = e.Type, e.AccountID, e.Data.User.ID
	if id := r.Header.Get(signature.HeaderID); id != e.ID {
		refuse(fmt.Errorf("%w: webhook-id %q, event id %q", ErrIDMismatch, truncate(id, event.MaxIDLength), e.ID))
		return
	}

	r = r.WithContext(context.WithValue(r.Context(), eventKey{}, e))
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	claim := Claim{ID: e.ID, State: ClaimAcquired}
	if rc.dedup != nil {
		if claim, err = rc.dedup.Claim(r.Context(), e.ID); err != nil {
			refuse(fmt.Errorf("%w: %w", ErrDedup, err))
			return
		}
		switch claim.State {
		case ClaimAlreadyDone:
			writeText(w, http.StatusOK, string(ReasonDuplicate)+": already applied")
			o.Status, o.Reason = http.StatusOK, ReasonDuplicate
			return
		case ClaimInProgress:
			refuse(fmt.Errorf("%w: %s", ErrInProgress, e.ID))
			return
		case ClaimAcquired:
		default:
			refuse(fmt.Errorf("%w: Claim answered state %s", ErrDedup, claim.State))
			return
		}
	}

	buf := &bufferedResponse{header: w.Header()}
	handled := false
	defer func() {
		if !handled { // the handler panicked: let the retry have the claim
			rc.finish(r.Context(), claim, false)
		}
	}()
	runErr := run(buf, r)
	handled = true
	o.Status = buf.statusCode()
	if runErr != nil {
		o.Reason, o.Err = ReasonHandlerFailed, runErr
		if err := rc.finish(r.Context(), claim, false); err != nil {
			o.Err = errors.Join(runErr, err)
		}
		buf.sendTo(w)
		return
	}
	o.Reason = ReasonAccepted
	if err := rc.finish(r.Context(), claim, true); err != nil {
		o.Err = err
	}
	buf.sendTo(w)
}

// finish completes (ok) or releases the claim, on a context that outlives
// the request's, so that the mark is made even if the client hung up.
func (rc *Receiver) finish(ctx context.Context, c Claim, ok bool) error {
	if rc.dedup == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if ok {
		if err := rc.dedup.Complete(ctx, c); err != nil {
			return fmt.Errorf("%w: %w", ErrDedup, err)
		}
		return nil
	}
	if err := rc.dedup.Release(ctx, c); err != nil {
		return fmt.Errorf("%w: %w", ErrDedup, err)
	}
	return nil
}

// readBody reads the whole body, up to max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, fmt.Errorf("%w: Content-Length %d, limit %d", ErrBodyTooLarge, r.ContentLength, max)
	}
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, max)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrUnreadableBody, err)
	}
	return body, nil
}

// bufferedResponse holds the handler's response until the delivery is
// marked done or released. Headers go straight to the real writer's map,
// which net/http only sends on WriteHeader.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	// Informational (1xx) answers are not the final status; drop them.
	if b.status == 0 && status >= 200 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// statusCode is the status the handler answered; 200 if it wrote nothing,
// as net/http does.
func (b *bufferedResponse) statusCode() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

func (b *bufferedResponse) sendTo(w http.ResponseWriter) {
	w.WriteHeader(b.statusCode())
	_, _ = b.body.WriteTo(w)
}

// truncate returns at most n bytes of s.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
