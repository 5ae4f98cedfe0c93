package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
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
// of the event and its delivery (as stored, without the codec) and finds
// neither the user's email and name nor the subscription's secret in them,
// while the receiver got the event in clear and an operator can read it
// through the codec server. The same check on an unencrypted installation
// is the control: it must find the email.
func TestEncryptedHistory_HoldsNoUserDataOrSecrets(t *testing.T) {
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := payloadcodec.ParseKeyring(payloadcodec.FormatKey("it1", key))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{
		HostPort:      server.GetFrontendHostPort(),
		Namespace:     server.GetDefaultNamespace(),
		DataConverter: payloadcodec.NewDataConverter(keys),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	type result struct {
		raw           []byte // every history, binary protobuf as stored
		payloads      []*commonpb.Payload
		email, secret string
	}
	run := func(t *testing.T, e *env, account string) result {
		rcv := newReceiver(t)
		sub, secret := e.subscribe(account, rcv.srv.URL+"/hooks?token=q-"+account, nil, fast)
		rcv.verifyWith(secret)
		ev := userCreated(account, "u_codec")
		ev.Data.User.Email = "ada.codec." + account + "@example.com"
		r, sum, err := e.publishAndWait(ev)
		if err != nil || sum.Delivered != 1 {
			t.Fatalf("publish: summary %+v, error %v", sum, err)
		}
		got := rcv.requests()
		if len(got) != 1 || got[0].Verified != nil || !bytes.Contains(got[0].Body, []byte(ev.Data.User.Email)) {
			t.Fatalf("receiver got %d requests (first verified: %v); want one signed request carrying the email in clear", len(got), got)
		}
		var res result
		res.email, res.secret = ev.Data.User.Email, secret.Reveal()
		for _, id := range []string{r.WorkflowID, workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)} {
			// Read as stored: the default client has no codec.
			h := &historypb.History{Events: (&env{t: t, client: server.GetDefaultClient()}).history(id)}
			b, err := proto.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			res.raw = append(res.raw, b...)
			res.payloads = append(res.payloads, payloadsIn(h)...)
		}
		return res
	}

	t.Run("encrypted", func(t *testing.T) {
		res := run(t, newEnvWithClient(t, c), "acme-codec")
		for what, s := range map[string]string{"email": res.email, "name": "Ada Lovelace", "secret": res.secret, "URL query": "q-acme-codec"} {
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
				t.Errorf("a payload in history has encoding %q, want %q", enc, payloadcodec.MetadataEncodingEncrypted)
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
		if !strings.Contains(strings.Join(clear, "\n"), res.email) {
			t.Errorf("the codec server's decoded payloads lack the email %q", res.email)
		}
	})

	t.Run("control: unencrypted history holds the email", func(t *testing.T) {
		res := run(t, newEnv(t), "acme-plain")
		if !bytes.Contains(res.raw, []byte(res.email)) {
			t.Error("the unencrypted history does not contain the email: the check above proves nothing")
		}
	})
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
