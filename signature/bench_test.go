package signature_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/userhooks/userhooks/signature"
)

// benchBody is the size of a typical event body (about 400 bytes).
var benchBody = []byte(`{"id":"0192f5e4-6c1a-7b3e-9a41-5d2c8e7f1a60","type":"user.updated","timestamp":"2026-11-23T09:32:15.123Z","account_id":"acme","data":{"user":{"id":"u_42","email":"ada@lovelace.example","username":"ada","name":"Ada Lovelace","roles":["admin","billing"],"status":"active","attributes":{"plan":"pro","seats":12}},"previous_attributes":{"attributes.plan":"free","email":"ada@example.com"}}}`)

const benchMsgID = "0192f5e4-6c1a-7b3e-9a41-5d2c8e7f1a60"

func benchSecrets(b *testing.B, n int) []signature.Secret {
	b.Helper()
	secrets := make([]signature.Secret, n)
	for i := range secrets {
		s, err := signature.GenerateSecret()
		if err != nil {
			b.Fatal(err)
		}
		secrets[i] = s
	}
	return secrets
}

// BenchmarkSign measures signing one delivery with one secret and with two
// (during a rotation both sign).
func BenchmarkSign(b *testing.B) {
	ts := time.Unix(1_795_000_000, 0)
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			secrets := benchSecrets(b, n)
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				if sig := signature.Sign(benchMsgID, ts, benchBody, secrets...); sig == "" {
					b.Fatal("empty signature")
				}
			}
		})
	}
}

// BenchmarkSetHeaders measures what the Deliver activity does per attempt:
// sign and set the three Standard Webhooks headers.
func BenchmarkSetHeaders(b *testing.B) {
	ts := time.Unix(1_795_000_000, 0)
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			secrets := benchSecrets(b, n)
			h := http.Header{}
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				signature.SetHeaders(h, benchMsgID, ts, benchBody, secrets...)
			}
			if h.Get(signature.HeaderSignature) == "" {
				b.Fatal("no signature header")
			}
		})
	}
}

// BenchmarkVerify measures a receiver checking a delivery: signed with one
// secret, and signed with two (a rotation) where the receiver holds only
// the second, so the first signature is tried and rejected first.
func BenchmarkVerify(b *testing.B) {
	now := time.Unix(1_795_000_000, 0)
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("signatures=%d", n), func(b *testing.B) {
			secrets := benchSecrets(b, n)
			h := http.Header{}
			signature.SetHeaders(h, benchMsgID, now, benchBody, secrets...)
			v := signature.Verifier{Secrets: secrets[n-1:], Now: func() time.Time { return now }}
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				if err := v.Verify(h, benchBody); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
