package payloadcodec_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/userhooks/userhooks/payloadcodec"
)

type user struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type eventInput struct {
	EventID string `json:"event_id"`
	User    user   `json:"user"`
}

var ada = eventInput{EventID: "01a207bf", User: user{ID: "u_42", Email: "ada@lovelace.example", Name: "Ada Lovelace"}}

// jsonPayloads returns payloads as the default converter writes them.
func jsonPayloads(t testing.TB, values ...any) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(values...)
	if err != nil {
		t.Fatal(err)
	}
	return ps.Payloads
}

func TestDataConverter_RoundTripKeepsEmailOutOfPayload(t *testing.T) {
	dc := payloadcodec.NewDataConverter(keyring(t, "k1"))
	ps, err := dc.ToPayloads(ada, "second arg ada@lovelace.example")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(ps) // what the server stores
	if err != nil {
		t.Fatal(err)
	}
	for _, pii := range []string{"ada@lovelace.example", "Ada Lovelace", "lovelace", "u_42", "json/plain"} {
		if strings.Contains(string(raw), pii) {
			t.Errorf("encoded payloads contain %q", pii)
		}
	}
	for i, p := range ps.Payloads {
		if got := string(p.Metadata[converter.MetadataEncoding]); got != payloadcodec.MetadataEncodingEncrypted {
			t.Errorf("payload %d: encoding %q, want %q", i, got, payloadcodec.MetadataEncodingEncrypted)
		}
		if got := string(p.Metadata[payloadcodec.MetadataEncryptionKeyID]); got != "k1" {
			t.Errorf("payload %d: key ID %q, want k1", i, got)
		}
		if len(p.Metadata) != 2 {
			t.Errorf("payload %d: metadata %v, want encoding and key ID only", i, p.Metadata)
		}
	}
	var got eventInput
	var second string
	if err := dc.FromPayloads(ps, &got, &second); err != nil {
		t.Fatal(err)
	}
	if got != ada || second != "second arg ada@lovelace.example" {
		t.Errorf("round trip gave %+v, %q", got, second)
	}
	if s := dc.ToString(ps.Payloads[0]); !strings.Contains(s, "ada@lovelace.example") {
		t.Errorf("ToString = %q, want the decrypted value", s)
	}
}

func TestCodec_RoundTripPreservesWholePayload(t *testing.T) {
	c := payloadcodec.NewCodec(keyring(t, "k1"))
	in := []*commonpb.Payload{
		{Metadata: map[string][]byte{"encoding": []byte("json/plain"), "custom": {0, 1, 2}}, Data: []byte(`{"a":1}`)},
		{Metadata: map[string][]byte{"encoding": []byte("binary/null")}},
		{},
	}
	orig := clonePayloads(in)
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	assertUnchanged(t, in, orig)
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	assertEqualPayloads(t, dec, orig)
}

func TestCodec_NonceIsFreshForEveryPayload(t *testing.T) {
	c := payloadcodec.NewCodec(keyring(t, "k1"))
	p := jsonPayloads(t, ada)
	a, _ := c.Encode(p)
	b, _ := c.Encode(p)
	if string(a[0].Data[:12]) == string(b[0].Data[:12]) || string(a[0].Data) == string(b[0].Data) {
		t.Fatal("the same payload encrypted twice gave the same nonce or ciphertext")
	}
	plain, _ := proto.Marshal(p[0])
	if got, want := len(a[0].Data), 12+len(plain)+16; got != want {
		t.Errorf("data is %d bytes, want nonce 12 + plaintext %d + tag 16 = %d", got, len(plain), want)
	}
}

func TestCodec_RotatedKeyringDecryptsPayloadsOfTheOldKey(t *testing.T) {
	old, err := payloadcodec.NewKeyring("k1", map[string][]byte{"k1": testKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := payloadcodec.NewKeyring("k2", map[string][]byte{"k1": testKey(1), "k2": testKey(2)})
	if err != nil {
		t.Fatal(err)
	}
	before, err := payloadcodec.NewDataConverter(old).ToPayload(ada)
	if err != nil {
		t.Fatal(err)
	}
	after, err := payloadcodec.NewDataConverter(rotated).ToPayload(ada)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(after.Metadata[payloadcodec.MetadataEncryptionKeyID]); got != "k2" {
		t.Errorf("the rotated keyring encrypts with %q, want k2", got)
	}
	for name, p := range map[string]*commonpb.Payload{"old key": before, "new key": after} {
		var got eventInput
		if err := payloadcodec.NewDataConverter(rotated).FromPayload(p, &got); err != nil || got != ada {
			t.Errorf("%s: decoded %+v, %v", name, got, err)
		}
	}
}

func TestCodec_UnknownKeyIDFailsNamingTheKeyID(t *testing.T) {
	enc, err := payloadcodec.NewCodec(keyring(t, "retired-2025")).Encode(jsonPayloads(t, ada))
	if err != nil {
		t.Fatal(err)
	}
	_, err = payloadcodec.NewCodec(keyring(t, "current")).Decode(enc)
	if !errors.Is(err, payloadcodec.ErrUnknownKeyID) {
		t.Fatalf("error %v, want ErrUnknownKeyID", err)
	}
	if !strings.Contains(err.Error(), `key ID "retired-2025"`) {
		t.Errorf("error %q does not name the key ID", err)
	}
	assertNoKeyMaterial(t, err.Error(), testKey(1))

	var v eventInput
	err = payloadcodec.NewDataConverter(keyring(t, "current")).FromPayload(enc[0], &v)
	if !errors.Is(err, payloadcodec.ErrUnknownKeyID) {
		t.Errorf("data converter error %v, want ErrUnknownKeyID", err)
	}
}

func TestCodec_TamperedPayloadFails(t *testing.T) {
	// k2 is the same key as k1, so a payload relabelled as k2 decrypts with
	// the right key: only the key ID's binding as additional data catches it.
	ring, err := payloadcodec.NewKeyring("k1", map[string][]byte{"k1": testKey(1), "k2": testKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	c := payloadcodec.NewCodec(ring)
	cases := []struct {
		name    string
		tamper  func(p *commonpb.Payload)
		wantErr error
	}{
		{"nonce bit flipped", func(p *commonpb.Payload) { p.Data[0] ^= 1 }, payloadcodec.ErrDecrypt},
		{"ciphertext bit flipped", func(p *commonpb.Payload) { p.Data[20] ^= 0x80 }, payloadcodec.ErrDecrypt},
		{"tag bit flipped", func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 }, payloadcodec.ErrDecrypt},
		{"truncated", func(p *commonpb.Payload) { p.Data = p.Data[:len(p.Data)-1] }, payloadcodec.ErrDecrypt},
		{"byte appended", func(p *commonpb.Payload) { p.Data = append(p.Data, 0) }, payloadcodec.ErrDecrypt},
		{"shorter than nonce and tag", func(p *commonpb.Payload) { p.Data = p.Data[:27] }, payloadcodec.ErrDecrypt},
		{"empty data", func(p *commonpb.Payload) { p.Data = nil }, payloadcodec.ErrDecrypt},
		{"key ID relabelled", func(p *commonpb.Payload) { p.Metadata[payloadcodec.MetadataEncryptionKeyID] = []byte("k2") }, payloadcodec.ErrDecrypt},
		{"key ID removed", func(p *commonpb.Payload) { delete(p.Metadata, payloadcodec.MetadataEncryptionKeyID) }, payloadcodec.ErrMalformed},
		{"key ID garbage", func(p *commonpb.Payload) {
			p.Metadata[payloadcodec.MetadataEncryptionKeyID] = []byte(strings.Repeat("\x00é", 100))
		}, payloadcodec.ErrUnknownKeyID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := c.Encode(jsonPayloads(t, ada))
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(enc[0])
			dec, err := c.Decode(enc)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Decode = %v, %v; want %v", dec, err, tc.wantErr)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			assertNoKeyMaterial(t, err.Error(), testKey(1))
		})
	}
}

func TestCodec_UnencryptedPayloadsPassThroughDecode(t *testing.T) {
	c := payloadcodec.NewCodec(keyring(t, "k1"))
	plain := jsonPayloads(t, ada, nil, []byte{1, 2})
	plain = append(plain, &commonpb.Payload{}, &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("binary/zlib")}, Data: []byte{9}})
	encrypted, err := c.Encode(jsonPayloads(t, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	mixed := append(append([]*commonpb.Payload{}, plain...), encrypted[0])
	dec, err := c.Decode(mixed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		if dec[i] != plain[i] {
			t.Errorf("payload %d was not passed through unchanged", i)
		}
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(dec[len(plain)], &s); err != nil || s != "secret" {
		t.Errorf("encrypted payload among plain ones decoded to %q, %v", s, err)
	}
	// A history recorded before encryption decodes with the new converter.
	var got eventInput
	if err := payloadcodec.NewDataConverter(keyring(t, "k1")).FromPayload(plain[0], &got); err != nil || got != ada {
		t.Errorf("plain payload through the encrypting converter: %+v, %v", got, err)
	}
}

func TestCodec_WithoutKeyringFailsInsteadOfPanicking(t *testing.T) {
	for name, c := range map[string]converter.PayloadCodec{
		"nil keyring":  payloadcodec.NewCodec(nil),
		"zero keyring": payloadcodec.NewCodec(&payloadcodec.Keyring{}),
	} {
		if _, err := c.Encode(jsonPayloads(t, ada)); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
		enc, _ := payloadcodec.NewCodec(keyring(t, "k1")).Encode(jsonPayloads(t, ada))
		if _, err := c.Decode(enc); !errors.Is(err, payloadcodec.ErrUnknownKeyID) {
			t.Errorf("%s: Decode error %v, want ErrUnknownKeyID", name, err)
		}
	}
}

func TestCodec_IsSafeForConcurrentUse(t *testing.T) {
	dc := payloadcodec.NewDataConverter(keyring(t, "k1", "k0"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				p, err := dc.ToPayload(ada)
				if err != nil {
					t.Error(err)
					return
				}
				var got eventInput
				if err := dc.FromPayload(p, &got); err != nil || got != ada {
					t.Errorf("got %+v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func clonePayloads(ps []*commonpb.Payload) []*commonpb.Payload {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		out[i] = proto.Clone(p).(*commonpb.Payload)
	}
	return out
}

func assertUnchanged(t *testing.T, got, orig []*commonpb.Payload) {
	t.Helper()
	for i := range orig {
		if !proto.Equal(got[i], orig[i]) {
			t.Errorf("payload %d was modified: %v, was %v", i, got[i], orig[i])
		}
	}
}

func assertEqualPayloads(t *testing.T, got, want []*commonpb.Payload) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d payloads, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("payload %d = %v, want %v", i, got[i], want[i])
		}
	}
}
