package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/userhooks/userhooks/signature"
)

// ReceiptKey names one delivery: the event (the webhook-id header) and the
// endpoint it went to.
type ReceiptKey struct {
	MessageID string
	Endpoint  string
}

// Receiver is the benchmark's webhook endpoint: an HTTP server on one or
// more loopback addresses that verifies each delivery's signature and
// records when each (webhook-id, endpoint) first arrived. Endpoints answer
// 204, or, if created failing, always 503.
//
// Listening on several loopback addresses (127.0.0.1, 127.0.0.2, …) makes
// endpoints on different hosts, as the subscriptions of different
// customers are: HTTP clients keep a separate pool of connections per
// host. A Receiver is safe for concurrent use.
type Receiver struct {
	verify  bool
	servers []*http.Server
	bases   []string

	mu        sync.Mutex
	endpoints map[string]endpoint
	rec       *Recording
}

type endpoint struct {
	verifier signature.Verifier
	fail     bool
}

// NewReceiver starts a receiver listening on hosts loopback addresses
// (127.0.0.1 up to 127.0.0.<hosts>, at least one), each on a free port.
// With verify, requests whose signature does not verify are answered 401
// and counted as rejected.
func NewReceiver(hosts int, verify bool) (*Receiver, error) {
	if hosts < 1 || hosts > 254 {
		return nil, fmt.Errorf("receiver: %d hosts, want 1 to 254", hosts)
	}
	r := &Receiver{verify: verify, endpoints: map[string]endpoint{}}
	for i := range hosts {
		addr := fmt.Sprintf("127.0.0.%d:0", i+1)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("receiver: listen on %s: %w (this system may have only 127.0.0.1: use one host)", addr, err)
		}
		srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
		r.servers = append(r.servers, srv)
		r.bases = append(r.bases, "http://"+ln.Addr().String())
		go srv.Serve(ln) //nolint:errcheck // ends with Close
	}
	return r, nil
}

// Close stops the receiver's servers.
func (r *Receiver) Close() error {
	var errs []error
	for _, s := range r.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// AddEndpoint creates the endpoint name (letters, digits, '-' and '_')
// that verifies deliveries with secrets, on host number (n mod hosts),
// and returns its URL. A failing endpoint answers every verified delivery
// with 503. Adding a name again replaces the endpoint.
func (r *Receiver) AddEndpoint(name string, n int, secrets []signature.Secret, fail bool) (string, error) {
	if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		return "", fmt.Errorf("receiver: endpoint name %q: want letters, digits, '-' or '_'", name)
	}
	if n < 0 {
		return "", fmt.Errorf("receiver: endpoint number %d is negative", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoints[name] = endpoint{verifier: signature.Verifier{Secrets: secrets}, fail: fail}
	return r.bases[n%len(r.bases)] + "/hooks/" + name, nil
}

// Record starts a new recording, which replaces the current one: from now
// on deliveries are recorded in it. Its Done channel closes once
// Recording.Expect has been called and what it expects has arrived.
func (r *Receiver) Record() *Recording {
	rec := &Recording{
		first:  map[ReceiptKey]time.Time{},
		failed: map[ReceiptKey]struct{}{},
		done:   make(chan struct{}),
	}
	r.mu.Lock()
	r.rec = rec
	r.mu.Unlock()
	return rec
}

// ServeHTTP handles POST /hooks/<endpoint>.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name, ok := strings.CutPrefix(req.URL.Path, "/hooks/")
	if req.Method != http.MethodPost || !ok {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	at := time.Now()
	r.mu.Lock()
	ep, known := r.endpoints[name]
	rec := r.rec
	r.mu.Unlock()
	if !known {
		http.NotFound(w, req)
		return
	}
	if r.verify {
		if err := ep.verifier.Verify(req.Header, body); err != nil {
			if rec != nil {
				rec.reject()
			}
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
	}
	key := ReceiptKey{MessageID: req.Header.Get(signature.HeaderID), Endpoint: name}
	if ep.fail {
		if rec != nil {
			rec.fail(key)
		}
		http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
		return
	}
	if rec != nil {
		rec.receive(key, at)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Recording holds the deliveries a Receiver got since Record. It is safe
// for concurrent use.
type Recording struct {
	mu                 sync.Mutex
	expecting          bool
	wantOK, wantFailed int
	first              map[ReceiptKey]time.Time
	failed             map[ReceiptKey]struct{}
	duplicates         int
	rejected           int
	done               chan struct{}
	closed             bool
}

// Expect sets what the recording waits for: wantOK distinct deliveries
// answered 204 and wantFailed distinct deliveries answered 503. Done
// closes as soon as both are reached, which may be at once. Only the first
// call counts.
func (rec *Recording) Expect(wantOK, wantFailed int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.expecting {
		return
	}
	rec.expecting, rec.wantOK, rec.wantFailed = true, wantOK, wantFailed
	rec.checkDone()
}

// Done is closed once the recording holds what Expect asked for.
func (rec *Recording) Done() <-chan struct{} { return rec.done }

func (rec *Recording) receive(k ReceiptKey, at time.Time) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if _, dup := rec.first[k]; dup {
		rec.duplicates++
		return
	}
	rec.first[k] = at
	rec.checkDone()
}

func (rec *Recording) fail(k ReceiptKey) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.failed[k] = struct{}{}
	rec.checkDone()
}

func (rec *Recording) reject() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.rejected++
}

// checkDone closes done when the wants are met; rec.mu must be held.
func (rec *Recording) checkDone() {
	if rec.expecting && !rec.closed && len(rec.first) >= rec.wantOK && len(rec.failed) >= rec.wantFailed {
		rec.closed = true
		close(rec.done)
	}
}

// Wait blocks until Done is closed or ctx ends, whichever is first, and
// returns ctx's error in the second case.
func (rec *Recording) Wait(ctx context.Context) error {
	select {
	case <-rec.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RecordingStats is a snapshot of a Recording.
type RecordingStats struct {
	// Receipts maps each delivery answered 204 to when it first arrived
	// (after its body was read).
	Receipts map[ReceiptKey]time.Time
	// Failed counts distinct deliveries answered 503.
	Failed int
	// Duplicates counts deliveries that arrived again after a 204.
	Duplicates int
	// Rejected counts requests whose signature did not verify.
	Rejected int
}

// Stats returns a snapshot of the recording.
func (rec *Recording) Stats() RecordingStats {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	first := make(map[ReceiptKey]time.Time, len(rec.first))
	for k, v := range rec.first {
		first[k] = v
	}
	return RecordingStats{Receipts: first, Failed: len(rec.failed), Duplicates: rec.duplicates, Rejected: rec.rejected}
}

// Counts returns how many distinct deliveries were answered 204 and 503.
func (rec *Recording) Counts() (ok, failed int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.first), len(rec.failed)
}
