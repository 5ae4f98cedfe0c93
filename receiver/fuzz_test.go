package receiver_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/signature"
)

// FuzzMiddleware throws arbitrary headers and bodies at a receiver. It must
// never panic, must answer one of its documented statuses with a reason
// that matches it, and must only call the handler for a genuine signature
// over a valid event whose id is the webhook-id.
func FuzzMiddleware(f *testing.F) {
	secret, err := signature.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		f.Fatal(err)
	}
	valid, err := testEvent("evt_1").Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("evt_1", unix(now), signature.Sign("evt_1", now, valid, secret), valid)
	f.Add("evt_1", unix(now), signature.Sign("evt_1", now, valid, secret)+" v1,AAAA", []byte(strings.Replace(string(valid), "u_42", "u_43", 1)))
	f.Add("other", unix(now), signature.Sign("other", now, valid, secret), valid)
	f.Add("evt_1", unix(now.Add(-time.Hour)), signature.Sign("evt_1", now.Add(-time.Hour), valid, secret), valid)
	f.Add("x", unix(now), signature.Sign("x", now, []byte("{}"), secret), []byte("{}"))
	f.Add("", "", "", []byte(nil))
	f.Add("msg", "0", "v1, v1a,abc v1,,,", []byte("x"))
	f.Add("msg", "9223372036854775807", "\t v1,x \n", bytes.Repeat([]byte("{"), 300))

	wantStatus := map[receiver.Reason]int{
		receiver.ReasonAccepted:         http.StatusNoContent,
		receiver.ReasonDuplicate:        http.StatusOK,
		receiver.ReasonMissingHeaders:   http.StatusBadRequest,
		receiver.ReasonInvalidTimestamp: http.StatusBadRequest,
		receiver.ReasonTimestampTooOld:  http.StatusUnauthorized,
		receiver.ReasonTimestampTooNew:  http.StatusUnauthorized,
		receiver.ReasonBadSignature:     http.StatusUnauthorized,
		receiver.ReasonBodyTooLarge:     http.StatusRequestEntityTooLarge,
		receiver.ReasonInvalidEvent:     http.StatusBadRequest,
		receiver.ReasonIDMismatch:       http.StatusBadRequest,
	}
	var last receiver.Outcome
	rc, err := receiver.New(receiver.Options{
		Secrets:      []signature.Secret{secret},
		Now:          fixedNow,
		MaxBodyBytes: 1 << 10,
		Dedup:        receiver.NewMemoryDedup(100),
		OnOutcome:    func(_ *http.Request, o receiver.Outcome) { last = o },
	})
	if err != nil {
		f.Fatal(err)
	}
	var handled *event.Event
	h := rc.Handle(func(_ context.Context, e event.Event) error {
		handled = &e
		return nil
	})

	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		handled, last = nil, receiver.Outcome{}
		req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
		req.Header.Set(signature.HeaderID, id)
		req.Header.Set(signature.HeaderTimestamp, ts)
		req.Header.Set(signature.HeaderSignature, sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		want, known := wantStatus[last.Reason]
		if !known || rec.Code != want || last.Status != want {
			t.Fatalf("answered %d with reason %q (outcome status %d)", rec.Code, last.Reason, last.Status)
		}
		if last.Reason != receiver.ReasonAccepted && last.Reason != receiver.ReasonDuplicate && !strings.HasPrefix(rec.Body.String(), string(last.Reason)+": ") {
			t.Fatalf("body %q does not start with the reason %s", rec.Body.String(), last.Reason)
		}
		if handled == nil {
			return
		}
		if handled.ID != id {
			t.Fatalf("handler got event %q for webhook-id %q", handled.ID, id)
		}
		if !signedBy(secret, id, ts, body, sig) {
			t.Fatalf("handler ran for a signature that is not ours: id=%q ts=%q sig=%q", id, ts, sig)
		}
	})
}

// signedBy reports whether sig holds, as one of its space-separated fields,
// the genuine "v1," signature of id.ts.body under secret. It recomputes the
// signature with signature.Sign rather than asking a Verifier, so it does
// not share the code under test.
func signedBy(secret signature.Secret, id, ts string, body []byte, sig string) bool {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	genuine := signature.Sign(id, time.Unix(n, 0), body, secret)
	return slices.Contains(strings.Fields(sig), genuine)
}
