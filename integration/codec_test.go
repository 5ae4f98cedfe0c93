package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/workflows"
)

// TestEncryptedHistory_HoldsNoUserDataOrSecrets publishes an event through
// a worker and client that encrypt payloads, then reads the raw histories
// of the event and its deliveries (as stored, without the codec) and finds
// neither the user's email and name, nor the subscriptions' secret and
// URL query, nor the receivers' response bodies in them, while the
// receivers got the event in clear and an operator can read it through
// the codec server. One delivery fails once before it succeeds and
// another fails for good, so that history holds failure details: the
// attempt record of a failed Deliver (with the response excerpt) and the
// result of a failed delivery; those must be encrypted too. The same check
// on an unencrypted installation is the control: it must find the email
// and the response bodies.
func TestEncryptedHistory_HoldsNoUserDataOrSecrets(t *testing.T) {
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := payloadcodec.ParseKeyring(payloadcodec.FormatKey("it1", key))
	if err != nil {
		t.Fatal(err)
	}
	// Dialled as temporalconn.Config.ClientOptions does.
	dc := payloadcodec.NewDataConverter(keys)
	c, err := client.Dial(client.Options{
		HostPort:         server.GetFrontendHostPort(),
		Namespace:        server.GetDefaultNamespace(),
		DataConverter:    dc,
		FailureConverter: payloadcodec.NewFailureConverter(dc),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	type result struct {
		raw      []byte // every history, binary protobuf as stored
		payloads []*commonpb.Payload
		// failureDetails are the payloads of failures' details, with
		// where each is.
		failureDetails map[*commonpb.Payload]string
		email, secret  string
		failedSecret   string
		// excerpts are the receivers' response bodies: of the attempt
		// that failed before a retry succeeded, and of the delivery that
		// failed.
		excerpts []string
	}
	run := func(t *testing.T, e *env, account string) result {
		var res result
		nonce := rand.Text()
		res.excerpts = []string{"excerpt-" + account + "-" + nonce, "final-" + account + "-" + nonce}
		// The first endpoint is unavailable once, then takes the event;
		// the second refuses it for good.
		retried, refused := newReceiver(t, http.StatusServiceUnavailable), newReceiver(t, http.StatusBadRequest)
		sub, secret := e.subscribe(account, answerErrorsWith(t, retried, res.excerpts[0]).URL+"/hooks?token=q-"+account, nil, fast)
		failed, failedSecret := e.subscribe(account, answerErrorsWith(t, refused, res.excerpts[1]).URL+"/hooks?token=q-"+account+"-failed", nil, fast)
		retried.verifyWith(secret)
		refused.verifyWith(failedSecret)
		ev := userCreated(account, "u_codec")
		ev.Data.User.Email = "ada.codec." + account + "@example.com"
		r, sum, err := e.publishAndWait(ev)
		if want := (workflows.Summary{Subscriptions: 2, Delivered: 1, Failed: 1}); err != nil || sum != want {
			t.Fatalf("publish: summary %+v, error %v; want %+v", sum, err, want)
		}
		for _, rcv := range []struct {
			name string
			r    *receiver
			n    int
		}{{"the retried endpoint", retried, 2}, {"the refusing endpoint", refused, 1}} {
			got := rcv.r.requests()
			if len(got) != rcv.n {
				t.Fatalf("%s got %d requests, want %d", rcv.name, len(got), rcv.n)
			}
			for i, g := range got {
				if g.Verified != nil || !bytes.Contains(g.Body, []byte(ev.Data.User.Email)) {
					t.Fatalf("%s: request %d (verified: %v) is not a signed request carrying the email in clear", rcv.name, i+1, g.Verified)
				}
			}
		}
		res.email, res.secret, res.failedSecret = ev.Data.User.Email, secret.Reveal(), failedSecret.Reveal()
		res.failureDetails = map[*commonpb.Payload]string{}
		kinds := map[enumspb.EventType]bool{}
		for _, id := range []string{r.WorkflowID, workflows.DeliveryWorkflowID(r.Event.ID, sub.ID), workflows.DeliveryWorkflowID(r.Event.ID, failed.ID)} {
			// Read as stored: the default client has no codec.
			h := &historypb.History{Events: (&env{t: t, client: server.GetDefaultClient()}).history(id)}
			b, err := proto.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			res.raw = append(res.raw, b...)
			walked := payloadsIn(h)
			res.payloads = append(res.payloads, walked...)
			inWalk := map[*commonpb.Payload]bool{}
			for _, p := range walked {
				inWalk[p] = true
			}
			for p, at := range failureDetailsIn(h) {
				where := fmt.Sprintf("the %s event %d of %s", at.GetEventType(), at.GetEventId(), id)
				if !inWalk[p] {
					t.Errorf("payloadsIn misses the failure details of %s", where)
				}
				res.failureDetails[p] = where
				kinds[at.GetEventType()] = true
			}
		}
		// A failed Deliver's attempt record, and a failed delivery's
		// result: without them the checks below prove nothing about
		// failures.
		for _, k := range []enumspb.EventType{enumspb.EVENT_TYPE_MARKER_RECORDED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED} {
			if !kinds[k] {
				t.Errorf("no %s event in the histories has a failure with details", k)
			}
		}
		return res
	}

	t.Run("encrypted", func(t *testing.T) {
		res := run(t, newEnvWithClient(t, c), "acme-codec")
		for what, s := range map[string]string{"email": res.email, "name": "Ada Lovelace", "secret": res.secret, "second subscription's secret": res.failedSecret, "URL query": "q-acme-codec",
			"response excerpt of the retried attempt": res.excerpts[0], "response excerpt of the failed delivery": res.excerpts[1]} {
			if bytes.Contains(res.raw, []byte(s)) {
				t.Errorf("the stored history contains the %s %q", what, s)
			}
		}
		if len(res.payloads) == 0 {
			t.Fatal("found no payloads in the histories")
		}
		var encrypted []*commonpb.Payload
		for _, p := range res.payloads {
			if enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc != payloadcodec.MetadataEncodingEncrypted {
				where := "a payload in history"
				if w, ok := res.failureDetails[p]; ok {
					where = "a failure detail of " + w
				}
				t.Errorf("%s has encoding %q, want %q", where, enc, payloadcodec.MetadataEncodingEncrypted)
				continue
			}
			encrypted = append(encrypted, p)
		}

		// An operator reads them through the codec server, as the Web UI
		// and `temporal workflow show --codec-endpoint` do.
		const token = "operator-token-0123456789"
		h, err := payloadcodec.NewHTTPHandler(keys, payloadcodec.HandlerOptions{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		body, err := protojson.Marshal(&commonpb.Payloads{Payloads: encrypted})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(payloadcodec.HeaderNamespace, server.GetDefaultNamespace())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var decoded commonpb.Payloads
		var raw json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("codec server: status %d, error %v", resp.StatusCode, err)
		}
		if err := protojson.Unmarshal(raw, &decoded); err != nil {
			t.Fatal(err)
		}
		var clear []string
		for _, p := range decoded.GetPayloads() {
			clear = append(clear, string(p.GetData()))
		}
		for _, s := range append([]string{res.email}, res.excerpts...) {
			if !strings.Contains(strings.Join(clear, "\n"), s) {
				t.Errorf("the codec server's decoded payloads lack %q", s)
			}
		}
	})

	t.Run("control: unencrypted history holds the email and response excerpts", func(t *testing.T) {
		res := run(t, newEnv(t), "acme-plain")
		for _, s := range append([]string{res.email}, res.excerpts...) {
			if !bytes.Contains(res.raw, []byte(s)) {
				t.Errorf("the unencrypted history does not contain %q: the check above proves nothing", s)
			}
		}
	})
}

// answerErrorsWith serves r's answers, but with body instead of r's own
// whenever the status is not 2xx: a receiver's error page, which Deliver
// keeps as the attempt's response excerpt. r still records and verifies
// every request and picks each status from its script.
func answerErrorsWith(t *testing.T, r *receiver, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got := httptest.NewRecorder()
		r.ServeHTTP(got, req)
		w.WriteHeader(got.Code)
		if got.Code/100 == 2 {
			w.Write(got.Body.Bytes())
		} else {
			io.WriteString(w, body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// failureDetailsIn returns the payloads of the details of every failure in
// h (and of their causes), each with the event that holds it: the marker
// of a Deliver that failed with its attempt record, the end of a delivery
// that failed with its result, and its parent's record of that end.
func failureDetailsIn(h *historypb.History) map[*commonpb.Payload]*historypb.HistoryEvent {
	out := map[*commonpb.Payload]*historypb.HistoryEvent{}
	for _, ev := range h.GetEvents() {
		var f *failurepb.Failure
		switch {
		case ev.GetMarkerRecordedEventAttributes() != nil:
			f = ev.GetMarkerRecordedEventAttributes().GetFailure()
		case ev.GetWorkflowExecutionFailedEventAttributes() != nil:
			f = ev.GetWorkflowExecutionFailedEventAttributes().GetFailure()
		case ev.GetChildWorkflowExecutionFailedEventAttributes() != nil:
			f = ev.GetChildWorkflowExecutionFailedEventAttributes().GetFailure()
		}
		for ; f != nil; f = f.GetCause() {
			for _, p := range f.GetApplicationFailureInfo().GetDetails().GetPayloads() {
				out[p] = ev
			}
		}
	}
	return out
}

// payloadsIn returns every Payload message anywhere in m, except search
// attributes: those are indexed by the server, so they cannot be
// encrypted, and userhooks puts only IDs and statuses in them.
func payloadsIn(m proto.Message) []*commonpb.Payload {
	var out []*commonpb.Payload
	var walk func(protoreflect.Message)
	walk = func(msg protoreflect.Message) {
		switch p := msg.Interface().(type) {
		case *commonpb.Payload:
			out = append(out, p)
			return
		case *commonpb.SearchAttributes:
			return
		}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	walk(m.ProtoReflect())
	return out
}
