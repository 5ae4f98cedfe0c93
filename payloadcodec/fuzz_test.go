package payloadcodec_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/userhooks/userhooks/payloadcodec"
)

// FuzzDecode sends arbitrary bodies to the codec server's /decode, and
// decodes the same bytes read as protobuf payloads: neither may panic, the
// server answers only 200 (with payloads) or 400, and whatever decodes
// yields one payload per input.
func FuzzDecode(f *testing.F) {
	k := keyring(f, "k1", "k0")
	codec := payloadcodec.NewCodec(k)
	h := newHandler(f, k, payloadcodec.HandlerOptions{AllowUnauthenticated: true, MaxBodyBytes: 1 << 16})

	enc, err := codec.Encode(jsonPayloads(f, ada, "x"))
	if err != nil {
		f.Fatal(err)
	}
	foreign, _ := payloadcodec.NewCodec(keyring(f, "other")).Encode(jsonPayloads(f, ada))
	tampered := proto.Clone(enc[0]).(*commonpb.Payload)
	tampered.Data[5] ^= 1
	for _, ps := range [][]*commonpb.Payload{enc, jsonPayloads(f, ada), foreign, {tampered}, {}} {
		j, _ := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
		f.Add(j)
		b, _ := proto.Marshal(&commonpb.Payloads{Payloads: ps})
		f.Add(b)
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"payloads":null}`, `{"payloads":[null]}`, `{"payloads":[{}]}`,
		`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA=="}}]}`,
		`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"azE="},"data":"AAAA"}]}`,
		`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"azE="},"data":"` + string(bytes.Repeat([]byte("A"), 60)) + `"}]}`,
		`{"payloads":[{"data":"!!"}]}`, `{"payloads":{}}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:50000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			var ps commonpb.Payloads
			if err := protojson.Unmarshal(w.Body.Bytes(), &ps); err != nil {
				t.Fatalf("200 with a body that is not payloads: %v: %q", err, w.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %q", w.Code, w.Body)
		}

		var ps commonpb.Payloads
		if proto.Unmarshal(body, &ps) != nil {
			return
		}
		dec, err := codec.Decode(ps.Payloads)
		if err == nil && len(dec) != len(ps.Payloads) {
			t.Fatalf("%d payloads decoded to %d", len(ps.Payloads), len(dec))
		}
	})
}
