package receiver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/signature"
)

// fixture is a receiver behind a real HTTP server, with a handler that
// counts its calls.
type fixture struct {
	url      string
	secret   signature.Secret
	calls    *counter
	outcomes *outcomes
}

// newFixture starts a server whose Handle counts calls and returns handle's
// error (nil: success). opts.Secrets defaults to one new secret.
func newFixture(t *testing.T, opts receiver.Options, handle func(n int) error) *fixture {
	t.Helper()
	f := &fixture{calls: &counter{}, outcomes: newOutcomes()}
	if opts.Secrets == nil {
		f.secret = mustGenerate(t)
		opts.Secrets = []signature.Secret{f.secret}
	}
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	opts.OnOutcome = f.outcomes.record
	rc, err := receiver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.url = serve(t, rc.Handle(func(ctx context.Context, e event.Event) error {
		n := f.calls.add(e)
		if handle == nil {
			return nil
		}
		return handle(n)
	}))
	return f
}

// send posts e signed with the fixture's secret at the receiver's now.
func (f *fixture) send(t *testing.T, e event.Event) response {
	t.Helper()
	body := marshal(t, e)
	return post(t, f.url, signed(e.ID, now, body, f.secret), body)
}

// wantRefused checks that a request was refused with status and reason, in
// the response and in the reported outcome, and that the handler never ran.
func (f *fixture) wantRefused(t *testing.T, got response, status int, reason receiver.Reason, sentinel error) {
	t.Helper()
	if got.status != status || !strings.HasPrefix(got.body, string(reason)+":") {
		t.Errorf("response = %d %q, want %d %s", got.status, got.body, status, reason)
	}
	out := f.outcomes.next(t)
	if out.Status != status || out.Reason != reason || !errors.Is(out.Err, sentinel) {
		t.Errorf("outcome = %d %s %v, want %d %s wrapping %v", out.Status, out.Reason, out.Err, status, reason, sentinel)
	}
	if n := f.calls.count(); n != 0 {
		t.Errorf("handler ran %d times for a refused request", n)
	}
}

func TestHandle_PassesVerifiedEventAndAnswers204(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	e := testEvent("evt_1")
	got := f.send(t, e)
	if got.status != http.StatusNoContent {
		t.Fatalf("response = %d %q, want 204", got.status, got.body)
	}
	if f.calls.count() != 1 || f.calls.ev[0].ID != "evt_1" || f.calls.ev[0].Data.User.Email != "ada@example.com" {
		t.Fatalf("handler got %+v, want the event once", f.calls.ev)
	}
	out := f.outcomes.next(t)
	if out.Reason != receiver.ReasonAccepted || out.Status != 204 || !out.Verified || out.Err != nil ||
		out.MessageID != "evt_1" || out.EventType != event.TypeUserCreated || out.AccountID != "acme" || out.UserID != "u_42" {
		t.Errorf("outcome = %+v", out)
	}
}

func TestWrap_GivesNextTheEventAndTheBody(t *testing.T) {
	secret := mustGenerate(t)
	rc, err := receiver.New(receiver.Options{Secrets: []signature.Secret{secret}, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		e      event.Event
		ok     bool
		body   string
		length int64
	}
	got := make(chan seen, 1)
	url := serve(t, rc.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, ok := receiver.EventFrom(r.Context())
		b, _ := io.ReadAll(r.Body)
		got <- seen{e, ok, string(b), r.ContentLength}
		w.Header().Set("X-Handled", "yes")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, "thanks")
	})))
	body := marshal(t, testEvent("evt_1"))
	resp, err := http.DefaultClient.Do(func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
		req.Header = signed("evt_1", now, body, secret)
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || string(answer) != "thanks" || resp.Header.Get("X-Handled") != "yes" {
		t.Errorf("response = %d %q %v, want next's 202 \"thanks\" with its header", resp.StatusCode, answer, resp.Header)
	}
	s := <-got
	if !s.ok || s.e.ID != "evt_1" {
		t.Errorf("EventFrom = %+v, %v; want the event", s.e, s.ok)
	}
	if s.body != string(body) || s.length != int64(len(body)) {
		t.Errorf("next read body %q (ContentLength %d), want the original %q", s.body, s.length, body)
	}
	if _, ok := receiver.EventFrom(context.Background()); ok {
		t.Error("EventFrom(background) ok = true")
	}
}

func TestReceiver_RejectsTamperedBody(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	body := marshal(t, testEvent("evt_1"))
	h := signed("evt_1", now, body, f.secret)
	tampered := []byte(strings.Replace(string(body), "ada@example.com", "eve@example.com", 1))
	f.wantRefused(t, post(t, f.url, h, tampered), 401, receiver.ReasonBadSignature, receiver.ErrBadSignature)
}

func TestReceiver_RejectsTamperedID(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	body := marshal(t, testEvent("evt_1"))
	h := signed("evt_1", now, body, f.secret)
	h.Set(signature.HeaderID, "evt_2")
	f.wantRefused(t, post(t, f.url, h, body), 401, receiver.ReasonBadSignature, receiver.ErrBadSignature)
}

func TestReceiver_RejectsWrongSecret(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	body := marshal(t, testEvent("evt_1"))
	f.wantRefused(t, post(t, f.url, signed("evt_1", now, body, mustGenerate(t)), body), 401, receiver.ReasonBadSignature, receiver.ErrBadSignature)
}

func TestReceiver_RejectsStaleTimestamp(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	body := marshal(t, testEvent("evt_1"))
	h := signed("evt_1", now.Add(-signature.DefaultTolerance-time.Second), body, f.secret)
	f.wantRefused(t, post(t, f.url, h, body), 401, receiver.ReasonTimestampTooOld, receiver.ErrTimestampTooOld)
}

func TestReceiver_RejectsFutureTimestamp(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	body := marshal(t, testEvent("evt_1"))
	h := signed("evt_1", now.Add(signature.DefaultTolerance+time.Second), body, f.secret)
	f.wantRefused(t, post(t, f.url, h, body), 401, receiver.ReasonTimestampTooNew, receiver.ErrTimestampTooNew)
}

func TestReceiver_ToleranceIsConfigurable(t *testing.T) {
	f := newFixture(t, receiver.Options{Tolerance: 30 * time.Second}, nil)
	body := marshal(t, testEvent("evt_1"))
	h := signed("evt_1", now.Add(-31*time.Second), body, f.secret)
	f.wantRefused(t, post(t, f.url, h, body), 401, receiver.ReasonTimestampTooOld, receiver.ErrTimestampTooOld)

	if got := post(t, f.url, signed("evt_1", now.Add(-29*time.Second), body, f.secret), body); got.status != 204 {
		t.Errorf("inside the tolerance: response = %d %q, want 204", got.status, got.body)
	}
}

func TestReceiver_RejectsMissingHeader(t *testing.T) {
	for _, name := range []string{signature.HeaderID, signature.HeaderTimestamp, signature.HeaderSignature} {
		for _, how := range []string{"absent", "empty"} {
			t.Run(name+" "+how, func(t *testing.T) {
				f := newFixture(t, receiver.Options{}, nil)
				body := marshal(t, testEvent("evt_1"))
				h := signed("evt_1", now, body, f.secret)
				if how == "absent" {
					h.Del(name)
				} else {
					h.Set(name, "")
				}
				f.wantRefused(t, post(t, f.url, h, body), 400, receiver.ReasonMissingHeaders, receiver.ErrMissingHeaders)
			})
		}
	}
}

func TestReceiver_RejectsMalformedSignatureHeader(t *testing.T) {
	secret := mustGenerate(t)
	body := marshal(t, testEvent("evt_1"))
	good := signature.Sign("evt_1", now, body, secret)
	b64 := strings.TrimPrefix(good, "v1,")
	for name, value := range map[string]string{
		"no version":         b64,
		"version only":       "v1",
		"empty signature":    "v1,",
		"other version":      "v2," + b64,
		"uppercase version":  "V1," + b64,
		"truncated":          good[:len(good)-2],
		"extra field":        good + ",x",
		"garbage":            ",,, ,;",
		"hex instead of b64": "v1," + strings.Repeat("ab", 32),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, receiver.Options{Secrets: []signature.Secret{secret}}, nil)
			h := signed("evt_1", now, body, secret)
			h.Set(signature.HeaderSignature, value)
			f.wantRefused(t, post(t, f.url, h, body), 401, receiver.ReasonBadSignature, receiver.ErrBadSignature)
		})
	}
}

func TestReceiver_RejectsMalformedTimestamp(t *testing.T) {
	for _, value := range []string{"yesterday", "1.5", "-1", "+" + unix(now), "0" + unix(now), "99999999999999999999"} {
		t.Run(value, func(t *testing.T) {
			f := newFixture(t, receiver.Options{}, nil)
			body := marshal(t, testEvent("evt_1"))
			h := signed("evt_1", now, body, f.secret)
			h.Set(signature.HeaderTimestamp, value)
			f.wantRefused(t, post(t, f.url, h, body), 400, receiver.ReasonInvalidTimestamp, receiver.ErrInvalidTimestamp)
		})
	}
}

func TestReceiver_AcceptsOldAndNewSecretDuringRotation(t *testing.T) {
	old, new := mustGenerate(t), mustGenerate(t)
	tests := []struct {
		name   string
		signer []signature.Secret // what the sender signs with
		holder []signature.Secret // what the receiver knows
	}{
		{"sender signs with both, receiver knows old", []signature.Secret{new, old}, []signature.Secret{old}},
		{"sender signs with both, receiver knows new", []signature.Secret{new, old}, []signature.Secret{new}},
		{"sender signs with old, receiver knows both", []signature.Secret{old}, []signature.Secret{new, old}},
		{"sender signs with new, receiver knows both", []signature.Secret{new}, []signature.Secret{old, new}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, receiver.Options{Secrets: tt.holder}, nil)
			body := marshal(t, testEvent("evt_1"))
			if got := post(t, f.url, signed("evt_1", now, body, tt.signer...), body); got.status != 204 {
				t.Fatalf("response = %d %q, want 204", got.status, got.body)
			}
		})
	}
	t.Run("retired secret is refused", func(t *testing.T) {
		f := newFixture(t, receiver.Options{Secrets: []signature.Secret{new}}, nil)
		body := marshal(t, testEvent("evt_1"))
		f.wantRefused(t, post(t, f.url, signed("evt_1", now, body, old), body), 401, receiver.ReasonBadSignature, receiver.ErrBadSignature)
	})
}

func TestReceiver_RejectsOversizeBody(t *testing.T) {
	t.Run("default limit, declared length", func(t *testing.T) {
		f := newFixture(t, receiver.Options{}, nil)
		body := []byte(`{"pad":"` + strings.Repeat("x", event.MaxBodyBytes) + `"}`)
		f.wantRefused(t, post(t, f.url, signed("evt_1", now, body, f.secret), body), 413, receiver.ReasonBodyTooLarge, receiver.ErrBodyTooLarge)
	})
	t.Run("configured limit, chunked", func(t *testing.T) {
		f := newFixture(t, receiver.Options{MaxBodyBytes: 100}, nil)
		body := marshal(t, testEvent("evt_1")) // over 100 bytes
		req, err := http.NewRequest(http.MethodPost, f.url, io.MultiReader(strings.NewReader(string(body))))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // unknown: sent chunked, so only reading finds out
		req.Header = signed("evt_1", now, body, f.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		f.wantRefused(t, response{resp.StatusCode, string(b)}, 413, receiver.ReasonBodyTooLarge, receiver.ErrBodyTooLarge)
	})
}

func TestReceiver_RejectsUndecodableEvent(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":      `hello`,
		"unknown type":  `{"id":"evt_1","type":"user.renamed","timestamp":"2026-01-01T00:00:00Z","account_id":"acme","data":{"user":{"id":"u"}}}`,
		"missing user":  `{"id":"evt_1","type":"user.created","timestamp":"2026-01-01T00:00:00Z","account_id":"acme","data":{}}`,
		"trailing data": `{"id":"evt_1","type":"user.created","timestamp":"2026-01-01T00:00:00Z","account_id":"acme","data":{"user":{"id":"u"}}} {}`,
		"empty":         ``,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, receiver.Options{}, nil)
			f.wantRefused(t, post(t, f.url, signed("evt_1", now, []byte(body), f.secret), []byte(body)), 400, receiver.ReasonInvalidEvent, receiver.ErrInvalidEvent)
		})
	}
}

func TestReceiver_RejectsWebhookIDOtherThanEventID(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	body := marshal(t, testEvent("evt_1"))
	f.wantRefused(t, post(t, f.url, signed("msg_other", now, body, f.secret), body), 400, receiver.ReasonIDMismatch, receiver.ErrIDMismatch)
}

// Error answers and outcomes are read by people who must not learn the
// secret, the expected signature or the user's data from them.
func TestReceiver_RefusalsDiscloseNoSecretOrBody(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	e := testEvent("evt_1")
	body := marshal(t, e)
	expected := signature.Sign(e.ID, now, body, f.secret)
	forbidden := []string{f.secret.Reveal(), strings.TrimPrefix(f.secret.Reveal(), signature.SecretPrefix), strings.TrimPrefix(expected, "v1,"), "ada@example.com"}
	requests := []struct {
		h    http.Header
		body []byte
	}{
		{signed(e.ID, now, body, mustGenerate(t)), body},
		{signed(e.ID, now.Add(-time.Hour), body, f.secret), body},
		{signed(e.ID, now, body, f.secret), []byte(strings.Replace(string(body), "Ada", "Eve", 1))},
		{signed("other", now, body, f.secret), body},
	}
	for i, r := range requests {
		got := post(t, f.url, r.h, r.body)
		out := f.outcomes.next(t)
		if got.status < 400 || out.Err == nil {
			t.Fatalf("request %d: %d %v, want a refusal", i, got.status, out.Err)
		}
		for _, s := range forbidden {
			if strings.Contains(got.body, s) || strings.Contains(out.Err.Error(), s) {
				t.Errorf("request %d: answer %q or error %q discloses %q", i, got.body, out.Err, s)
			}
		}
	}
}

func TestNew_RefusesBadOptions(t *testing.T) {
	sec := mustGenerate(t)
	for name, opts := range map[string]receiver.Options{
		"no secrets":          {},
		"only a zero secret":  {Secrets: []signature.Secret{{}}},
		"negative tolerance":  {Secrets: []signature.Secret{sec}, Tolerance: -time.Second},
		"negative body limit": {Secrets: []signature.Secret{sec}, MaxBodyBytes: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := receiver.New(opts); err == nil {
				t.Fatal("New = nil error")
			}
		})
	}
}

func TestReceiver_DuplicateIsHandledOnce(t *testing.T) {
	for _, st := range dedupStores {
		t.Run(st.name, func(t *testing.T) {
			f := newFixture(t, receiver.Options{Dedup: st.open(t)}, nil)
			e := testEvent("evt_1")
			if got := f.send(t, e); got.status != 204 {
				t.Fatalf("first delivery: %d %q, want 204", got.status, got.body)
			}
			f.outcomes.next(t)
			// The retry is signed anew, at a later time, as the sender does.
			body := marshal(t, e)
			got := post(t, f.url, signed(e.ID, now.Add(time.Minute), body, f.secret), body)
			if got.status != 200 || !strings.HasPrefix(got.body, "duplicate:") {
				t.Errorf("second delivery: %d %q, want 200 duplicate", got.status, got.body)
			}
			if out := f.outcomes.next(t); out.Reason != receiver.ReasonDuplicate || out.Err != nil {
				t.Errorf("outcome = %s %v, want duplicate", out.Reason, out.Err)
			}
			if n := f.calls.count(); n != 1 {
				t.Errorf("handler ran %d times, want 1", n)
			}
			// Another event is not a duplicate.
			if got := f.send(t, testEvent("evt_2")); got.status != 204 {
				t.Errorf("other event: %d %q, want 204", got.status, got.body)
			}
		})
	}
}

// While one delivery is in the handler, repeats of it are turned away with
// a retryable answer and never reach the handler.
func TestReceiver_DuplicateWhileHandlingIsRetriedLater(t *testing.T) {
	for _, st := range dedupStores {
		t.Run(st.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			f := newFixture(t, receiver.Options{Dedup: st.open(t)}, func(n int) error {
				if n == 1 {
					close(entered)
					<-release
				}
				return nil
			})
			e := testEvent("evt_1")
			first := make(chan response, 1)
			go func() { first <- f.send(t, e) }()
			<-entered
			var wg sync.WaitGroup
			for range 5 {
				wg.Go(func() {
					if got := f.send(t, e); got.status != 503 || !strings.HasPrefix(got.body, "in_progress:") {
						t.Errorf("duplicate while handling: %d %q, want 503 in_progress", got.status, got.body)
					}
				})
			}
			wg.Wait()
			close(release)
			if got := <-first; got.status != 204 {
				t.Errorf("first delivery: %d %q, want 204", got.status, got.body)
			}
			if got := f.send(t, e); got.status != 200 {
				t.Errorf("delivery after the first finished: %d %q, want 200", got.status, got.body)
			}
			if n := f.calls.count(); n != 1 {
				t.Errorf("handler ran %d times, want 1", n)
			}
		})
	}
}

func TestReceiver_ConcurrentDuplicatesAreHandledOnce(t *testing.T) {
	for _, st := range dedupStores {
		t.Run(st.name, func(t *testing.T) {
			f := newFixture(t, receiver.Options{Dedup: st.open(t)}, nil)
			e := testEvent("evt_1")
			const n = 20
			start := make(chan struct{})
			statuses := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					<-start
					statuses <- f.send(t, e).status
				})
			}
			close(start)
			wg.Wait()
			close(statuses)
			count := map[int]int{}
			for s := range statuses {
				count[s]++
			}
			if count[204] != 1 || count[200]+count[503] != n-1 {
				t.Errorf("statuses = %v, want one 204 and the rest 200 or 503", count)
			}
			if got := f.calls.count(); got != 1 {
				t.Errorf("handler ran %d times, want 1", got)
			}
		})
	}
}

func TestReceiver_FailedHandlerIsAppliedOnRetry(t *testing.T) {
	for _, st := range dedupStores {
		t.Run(st.name, func(t *testing.T) {
			f := newFixture(t, receiver.Options{Dedup: st.open(t)}, func(n int) error {
				if n == 1 {
					return errors.New("database is down (user u_42, ada@example.com)")
				}
				return nil
			})
			e := testEvent("evt_1")
			got := f.send(t, e)
			if got.status != 500 || !strings.HasPrefix(got.body, "handler_failed:") || strings.Contains(got.body, "database") {
				t.Errorf("failing handler: %d %q, want 500 handler_failed without the error's text", got.status, got.body)
			}
			if out := f.outcomes.next(t); out.Reason != receiver.ReasonHandlerFailed || !errors.Is(out.Err, receiver.ErrHandlerFailed) || !strings.Contains(out.Err.Error(), "database is down") {
				t.Errorf("outcome = %s %v, want handler_failed with the handler's error", out.Reason, out.Err)
			}
			if got := f.send(t, e); got.status != 204 {
				t.Errorf("retry: %d %q, want 204", got.status, got.body)
			}
			if got := f.send(t, e); got.status != 200 {
				t.Errorf("repeat after success: %d %q, want 200", got.status, got.body)
			}
			if n := f.calls.count(); n != 2 {
				t.Errorf("handler ran %d times, want 2 (failure, then the retry)", n)
			}
		})
	}
}

func TestWrap_NonSuccessAnswerIsAppliedOnRetry(t *testing.T) {
	for _, st := range dedupStores {
		t.Run(st.name, func(t *testing.T) {
			secret := mustGenerate(t)
			rc, err := receiver.New(receiver.Options{Secrets: []signature.Secret{secret}, Now: fixedNow, Dedup: st.open(t)})
			if err != nil {
				t.Fatal(err)
			}
			calls := &counter{}
			url := serve(t, rc.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e, _ := receiver.EventFrom(r.Context())
				if calls.add(e) == 1 {
					http.Error(w, "busy", http.StatusServiceUnavailable)
				}
				// Writing nothing answers 200.
			})))
			body := marshal(t, testEvent("evt_1"))
			h := signed("evt_1", now, body, secret)
			for i, want := range []int{503, 200, 200} {
				if got := post(t, url, h, body); got.status != want {
					t.Errorf("delivery %d: %d %q, want %d", i+1, got.status, got.body, want)
				}
			}
			if n := calls.count(); n != 2 {
				t.Errorf("next ran %d times, want 2", n)
			}
		})
	}
}

func TestReceiver_PanickingHandlerReleasesTheClaim(t *testing.T) {
	for _, st := range dedupStores {
		t.Run(st.name, func(t *testing.T) {
			f := newFixture(t, receiver.Options{Dedup: st.open(t)}, func(n int) error {
				if n == 1 {
					panic("bug")
				}
				return nil
			})
			e := testEvent("evt_1")
			if got := f.send(t, e); got.status != 0 {
				t.Errorf("panicking handler: %d %q, want the connection dropped", got.status, got.body)
			}
			if out := f.outcomes.next(t); out.Reason != receiver.ReasonHandlerFailed {
				t.Errorf("outcome = %s, want handler_failed", out.Reason)
			}
			if got := f.send(t, e); got.status != 204 {
				t.Errorf("retry: %d %q, want 204", got.status, got.body)
			}
		})
	}
}

// failingDedup fails every call.
type failingDedup struct{}

func (failingDedup) Claim(context.Context, string) (receiver.Claim, error) {
	return receiver.Claim{}, errors.New("disk full")
}
func (failingDedup) Complete(context.Context, receiver.Claim) error { return errors.New("disk full") }
func (failingDedup) Release(context.Context, receiver.Claim) error  { return errors.New("disk full") }

func TestReceiver_DedupFailureIsRetryable(t *testing.T) {
	f := newFixture(t, receiver.Options{Dedup: failingDedup{}}, nil)
	f.wantRefused(t, f.send(t, testEvent("evt_1")), 503, receiver.ReasonDedupFailed, receiver.ErrDedup)
}

// The receiver without a DedupStore passes every verified delivery on.
func TestReceiver_WithoutDedupHandlesEveryDelivery(t *testing.T) {
	f := newFixture(t, receiver.Options{}, nil)
	for range 2 {
		if got := f.send(t, testEvent("evt_1")); got.status != 204 {
			t.Fatalf("response = %d %q, want 204", got.status, got.body)
		}
	}
	if n := f.calls.count(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
}
