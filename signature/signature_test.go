package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/userhooks/userhooks/signature"
)

// The test vector published with the Standard Webhooks specification and
// carried by every official library's tests.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// now is the fixed "current time" of tests that do not involve the official
// library (which always reads the real clock).
var now = time.Unix(1_800_000_000, 0)

func fixedNow() time.Time { return now }

func mustParse(t testing.TB, s string) signature.Secret {
	t.Helper()
	sec, err := signature.ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return sec
}

func mustGenerate(t testing.TB) signature.Secret {
	t.Helper()
	sec, err := signature.GenerateSecret()
	if err != nil {
		t.Fatalf("GenerateSecret: %v", err)
	}
	return sec
}

// signedHeaders returns headers for body signed at ts with secrets.
func signedHeaders(msgID string, ts time.Time, body []byte, secrets ...signature.Secret) http.Header {
	h := http.Header{}
	signature.SetHeaders(h, msgID, ts, body, secrets...)
	return h
}

func TestSign_MatchesSpecTestVector(t *testing.T) {
	sec := mustParse(t, vectorSecret)
	got := signature.Sign(vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorBody), sec)
	if got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
}

func TestVerify_AcceptsSpecTestVector(t *testing.T) {
	h := http.Header{}
	h.Set(signature.HeaderID, vectorMsgID)
	h.Set(signature.HeaderTimestamp, strconv.Itoa(vectorTimestamp))
	h.Set(signature.HeaderSignature, vectorSignature)
	v := signature.Verifier{
		Secrets: []signature.Secret{mustParse(t, vectorSecret)},
		Now:     func() time.Time { return time.Unix(vectorTimestamp+10, 0) },
	}
	if err := v.Verify(h, []byte(vectorBody)); err != nil {
		t.Fatalf("Verify(spec vector) = %v, want nil", err)
	}
}

func TestSign_IgnoresSubSecondPrecision(t *testing.T) {
	sec := mustParse(t, vectorSecret)
	got := signature.Sign(vectorMsgID, time.Unix(vectorTimestamp, 999_999_999), []byte(vectorBody), sec)
	if got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
}

func TestSign_JoinsRotatedSecretsWithOneSpace(t *testing.T) {
	oldSec, newSec := mustGenerate(t), mustGenerate(t)
	ts, body := now, []byte(`{}`)
	got := signature.Sign("msg_1", ts, body, oldSec, newSec)
	want := signature.Sign("msg_1", ts, body, oldSec) + " " + signature.Sign("msg_1", ts, body, newSec)
	if got != want {
		t.Fatalf("Sign(two secrets) = %q, want %q", got, want)
	}
	if parts := strings.Split(got, " "); len(parts) != 2 || !strings.HasPrefix(parts[0], "v1,") || !strings.HasPrefix(parts[1], "v1,") {
		t.Fatalf("Sign(two secrets) = %q, want two space-separated v1 signatures", got)
	}
}

func TestSign_SkipsZeroSecrets(t *testing.T) {
	sec := mustParse(t, vectorSecret)
	got := signature.Sign(vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorBody), signature.Secret{}, sec, signature.Secret{})
	if got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
	if got := signature.Sign("msg_1", now, nil); got != "" {
		t.Fatalf("Sign(no secrets) = %q, want empty", got)
	}
}

func TestSetHeaders_SetsAllThreeHeaders(t *testing.T) {
	sec := mustParse(t, vectorSecret)
	h := http.Header{}
	h.Set(signature.HeaderSignature, "v1,stale")
	signature.SetHeaders(h, vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorBody), sec)
	for name, want := range map[string]string{
		signature.HeaderID:        vectorMsgID,
		signature.HeaderTimestamp: strconv.Itoa(vectorTimestamp),
		signature.HeaderSignature: vectorSignature,
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want [%q]", name, got, want)
		}
	}
}

// The official library must accept what we send, including during a
// rotation when the receiver knows only one of the two secrets.
func TestInterop_OfficialLibraryVerifiesOurHeaders(t *testing.T) {
	oldSec, newSec := mustGenerate(t), mustGenerate(t)
	body := []byte(`{"type":"user.created","data":{"name":"Ada \u00e9"}}` + "\n")
	tests := []struct {
		name         string
		signWith     []signature.Secret
		receiverKeys signature.Secret
	}{
		{"single secret", []signature.Secret{oldSec}, oldSec},
		{"rotation, receiver has old secret", []signature.Secret{oldSec, newSec}, oldSec},
		{"rotation, receiver has new secret", []signature.Secret{oldSec, newSec}, newSec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := signedHeaders("msg_interop", time.Now(), body, tt.signWith...)
			wh, err := standardwebhooks.NewWebhook(tt.receiverKeys.Reveal())
			if err != nil {
				t.Fatalf("NewWebhook: %v", err)
			}
			if err := wh.Verify(body, h); err != nil {
				t.Fatalf("official Verify = %v, want nil", err)
			}
		})
	}
}

func TestInterop_OfficialLibraryRejectsOurHeadersUnderOtherSecret(t *testing.T) {
	body := []byte(`{}`)
	h := signedHeaders("msg_interop", time.Now(), body, mustGenerate(t))
	wh, err := standardwebhooks.NewWebhook(mustGenerate(t).Reveal())
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	if err := wh.Verify(body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("official Verify = %v, want ErrNoMatchingSignature", err)
	}
}

func TestInterop_WeVerifyOfficialLibrarySignature(t *testing.T) {
	sec := mustGenerate(t)
	wh, err := standardwebhooks.NewWebhook(sec.Reveal())
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	body := []byte(`{"hello":"world"}`)
	ts := time.Now()
	sig, err := wh.Sign("msg_official", ts, body)
	if err != nil {
		t.Fatalf("official Sign: %v", err)
	}
	if ours := signature.Sign("msg_official", ts, body, sec); ours != sig {
		t.Errorf("our Sign = %q, official Sign = %q", ours, sig)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, "msg_official")
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	v := signature.Verifier{Secrets: []signature.Secret{mustGenerate(t), sec}}
	if err := v.Verify(h, body); err != nil {
		t.Fatalf("Verify(official signature) = %v, want nil", err)
	}
}

func TestVerify_AcceptsAnySecretDuringRotation(t *testing.T) {
	oldSec, newSec := mustGenerate(t), mustGenerate(t)
	body := []byte(`{}`)
	tests := []struct {
		name     string
		signWith []signature.Secret
	}{
		{"signed with old only", []signature.Secret{oldSec}},
		{"signed with new only", []signature.Secret{newSec}},
		{"signed with both", []signature.Secret{oldSec, newSec}},
	}
	v := signature.Verifier{Secrets: []signature.Secret{oldSec, newSec}, Now: fixedNow}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := v.Verify(signedHeaders("msg_1", now, body, tt.signWith...), body); err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
		})
	}
}

func TestVerify_AcceptsTimestampsWithinTolerance(t *testing.T) {
	sec := mustGenerate(t)
	body := []byte(`{}`)
	tests := []struct {
		name      string
		tolerance time.Duration
		skew      time.Duration
	}{
		{"default tolerance, exactly 5m old", 0, -signature.DefaultTolerance},
		{"default tolerance, exactly 5m ahead", 0, signature.DefaultTolerance},
		{"negative tolerance means default", -time.Second, -4 * time.Minute},
		{"custom tolerance, 20m old", 30 * time.Minute, -20 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := signature.Verifier{Secrets: []signature.Secret{sec}, Tolerance: tt.tolerance, Now: fixedNow}
			if err := v.Verify(signedHeaders("msg_1", now.Add(tt.skew), body, sec), body); err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
		})
	}
}

func TestVerify_RejectsTamperedBody(t *testing.T) {
	sec := mustGenerate(t)
	h := signedHeaders("msg_1", now, []byte(`{"amount":1}`), sec)
	v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}
	for _, body := range []string{`{"amount":9}`, `{"amount":1} `, `{"amount":1}` + "\n", ``} {
		if err := v.Verify(h, []byte(body)); !errors.Is(err, signature.ErrNoMatchingSignature) {
			t.Errorf("Verify(body %q) = %v, want ErrNoMatchingSignature", body, err)
		}
	}
}

func TestVerify_RejectsTamperedIDOrTimestamp(t *testing.T) {
	sec := mustGenerate(t)
	body := []byte(`{}`)
	v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}

	h := signedHeaders("msg_1", now, body, sec)
	h.Set(signature.HeaderID, "msg_2")
	if err := v.Verify(h, body); !errors.Is(err, signature.ErrNoMatchingSignature) {
		t.Errorf("Verify(changed id) = %v, want ErrNoMatchingSignature", err)
	}

	h = signedHeaders("msg_1", now, body, sec)
	h.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
	if err := v.Verify(h, body); !errors.Is(err, signature.ErrNoMatchingSignature) {
		t.Errorf("Verify(changed timestamp) = %v, want ErrNoMatchingSignature", err)
	}
}

func TestVerify_RejectsWrongSecret(t *testing.T) {
	body := []byte(`{}`)
	h := signedHeaders("msg_1", now, body, mustGenerate(t))
	v := signature.Verifier{Secrets: []signature.Secret{mustGenerate(t), mustGenerate(t)}, Now: fixedNow}
	if err := v.Verify(h, body); !errors.Is(err, signature.ErrNoMatchingSignature) {
		t.Fatalf("Verify = %v, want ErrNoMatchingSignature", err)
	}
}

func TestVerify_RejectsStaleTimestamp(t *testing.T) {
	sec := mustGenerate(t)
	body := []byte(`{}`)
	tests := []struct {
		name      string
		tolerance time.Duration
		ts        time.Time
	}{
		{"one second past default tolerance", 0, now.Add(-signature.DefaultTolerance - time.Second)},
		{"past custom tolerance", time.Minute, now.Add(-2 * time.Minute)},
		{"epoch", 0, time.Unix(0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := signature.Verifier{Secrets: []signature.Secret{sec}, Tolerance: tt.tolerance, Now: fixedNow}
			if err := v.Verify(signedHeaders("msg_1", tt.ts, body, sec), body); !errors.Is(err, signature.ErrTimestampTooOld) {
				t.Fatalf("Verify = %v, want ErrTimestampTooOld", err)
			}
		})
	}
}

func TestVerify_RejectsFutureTimestamp(t *testing.T) {
	sec := mustGenerate(t)
	body := []byte(`{}`)
	tests := []struct {
		name string
		ts   time.Time
	}{
		{"one second past default tolerance", now.Add(signature.DefaultTolerance + time.Second)},
		{"far future", time.Unix(1<<62, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}
			if err := v.Verify(signedHeaders("msg_1", tt.ts, body, sec), body); !errors.Is(err, signature.ErrTimestampTooNew) {
				t.Fatalf("Verify = %v, want ErrTimestampTooNew", err)
			}
		})
	}
}

func TestVerify_RejectsMissingHeader(t *testing.T) {
	sec := mustGenerate(t)
	body := []byte(`{}`)
	v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}
	for _, name := range []string{signature.HeaderID, signature.HeaderTimestamp, signature.HeaderSignature} {
		for _, how := range []string{"deleted", "empty"} {
			t.Run(name+" "+how, func(t *testing.T) {
				h := signedHeaders("msg_1", now, body, sec)
				if how == "deleted" {
					h.Del(name)
				} else {
					h.Set(name, "")
				}
				err := v.Verify(h, body)
				if !errors.Is(err, signature.ErrMissingHeaders) {
					t.Fatalf("Verify = %v, want ErrMissingHeaders", err)
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name the missing header %s", err, name)
				}
			})
		}
	}
	if err := v.Verify(nil, body); !errors.Is(err, signature.ErrMissingHeaders) {
		t.Errorf("Verify(nil header) = %v, want ErrMissingHeaders", err)
	}
}

func TestVerify_RejectsMalformedHeader(t *testing.T) {
	sec := mustGenerate(t)
	body := []byte(`{}`)
	good := signedHeaders("msg_1", now, body, sec)
	goodSig := good.Get(signature.HeaderSignature)
	goodB64 := strings.TrimPrefix(goodSig, "v1,")
	unix := strconv.FormatInt(now.Unix(), 10)
	tests := []struct {
		name      string
		header    string
		value     string
		wantError error
	}{
		{"timestamp not a number", signature.HeaderTimestamp, "yesterday", signature.ErrInvalidTimestamp},
		{"timestamp in milliseconds", signature.HeaderTimestamp, unix + "000", signature.ErrTimestampTooNew},
		{"timestamp with fraction", signature.HeaderTimestamp, unix + ".5", signature.ErrInvalidTimestamp},
		{"timestamp with plus sign", signature.HeaderTimestamp, "+" + unix, signature.ErrInvalidTimestamp},
		{"timestamp negative", signature.HeaderTimestamp, "-" + unix, signature.ErrInvalidTimestamp},
		{"timestamp with leading zero", signature.HeaderTimestamp, "0" + unix, signature.ErrInvalidTimestamp},
		{"timestamp with spaces", signature.HeaderTimestamp, " " + unix + " ", signature.ErrInvalidTimestamp},
		{"timestamp overflowing int64", signature.HeaderTimestamp, "99999999999999999999", signature.ErrInvalidTimestamp},
		{"timestamp RFC 3339", signature.HeaderTimestamp, now.UTC().Format(time.RFC3339), signature.ErrInvalidTimestamp},
		{"signature without version", signature.HeaderSignature, goodB64, signature.ErrNoMatchingSignature},
		{"signature version only", signature.HeaderSignature, "v1", signature.ErrNoMatchingSignature},
		{"signature empty after comma", signature.HeaderSignature, "v1,", signature.ErrNoMatchingSignature},
		{"signature under v1a", signature.HeaderSignature, "v1a," + goodB64, signature.ErrNoMatchingSignature},
		{"signature under v2", signature.HeaderSignature, "v2," + goodB64, signature.ErrNoMatchingSignature},
		{"signature with uppercase version", signature.HeaderSignature, "V1," + goodB64, signature.ErrNoMatchingSignature},
		{"signature truncated", signature.HeaderSignature, goodSig[:len(goodSig)-1], signature.ErrNoMatchingSignature},
		{"signature with extra comma field", signature.HeaderSignature, goodSig + ",x", signature.ErrNoMatchingSignature},
		{"signature in hex", signature.HeaderSignature, "v1," + strings.Repeat("ab", 32), signature.ErrNoMatchingSignature},
		{"signature garbage", signature.HeaderSignature, ",,, ,\x00\xff", signature.ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good.Clone()
			h.Set(tt.header, tt.value)
			v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}
			if err := v.Verify(h, body); !errors.Is(err, tt.wantError) {
				t.Fatalf("Verify(%s=%q) = %v, want %v", tt.header, tt.value, err, tt.wantError)
			}
		})
	}
}

func TestVerify_FindsV1AmongOtherVersions(t *testing.T) {
	sec := mustGenerate(t)
	body := []byte(`{}`)
	h := signedHeaders("msg_1", now, body, sec)
	sig := h.Get(signature.HeaderSignature)
	h.Set(signature.HeaderSignature, "v1a,"+strings.Repeat("A", 86)+"==  v1,bm9wZQ== "+sig+" v2,whatever")
	v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}
	if err := v.Verify(h, body); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
}

// A zero Secret in the verifier's list (a missing config value, say) must not
// turn into an empty HMAC key that anyone can sign with.
func TestVerify_IgnoresZeroSecret(t *testing.T) {
	body := []byte(`{}`)
	unix := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, nil)
	mac.Write([]byte("msg_1." + unix + "." + string(body)))
	h := http.Header{}
	h.Set(signature.HeaderID, "msg_1")
	h.Set(signature.HeaderTimestamp, unix)
	h.Set(signature.HeaderSignature, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))

	v := signature.Verifier{Secrets: []signature.Secret{{}}, Now: fixedNow}
	if err := v.Verify(h, body); !errors.Is(err, signature.ErrNoSecrets) {
		t.Errorf("Verify(only zero secret) = %v, want ErrNoSecrets", err)
	}
	v.Secrets = append(v.Secrets, mustGenerate(t))
	if err := v.Verify(h, body); !errors.Is(err, signature.ErrNoMatchingSignature) {
		t.Errorf("Verify(zero and real secret) = %v, want ErrNoMatchingSignature", err)
	}
}

func TestVerify_RejectsEverythingWithoutSecrets(t *testing.T) {
	body := []byte(`{}`)
	h := signedHeaders("msg_1", now, body, mustGenerate(t))
	if err := (signature.Verifier{}).Verify(h, body); !errors.Is(err, signature.ErrNoSecrets) {
		t.Fatalf("zero Verifier.Verify = %v, want ErrNoSecrets", err)
	}
}

// Errors end up in logs and HTTP responses: they must not carry the secret,
// nor the signature the verifier expected (which would let a caller forge
// the message it just sent).
func TestVerify_ErrorsHoldNoSecretMaterial(t *testing.T) {
	sec := mustParse(t, vectorSecret)
	body := []byte(vectorBody)
	expected := signature.Sign(vectorMsgID, now, body, sec)
	v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}
	headers := []http.Header{
		signedHeaders(vectorMsgID, now, body, mustGenerate(t)),
		signedHeaders(vectorMsgID, now.Add(-time.Hour), body, sec),
		signedHeaders(vectorMsgID, now.Add(time.Hour), body, sec),
		{"Webhook-Id": {vectorMsgID}},
		{"Webhook-Id": {vectorMsgID}, "Webhook-Timestamp": {"x"}, "Webhook-Signature": {"v1,x"}},
	}
	forbidden := []string{
		sec.Reveal(),
		strings.TrimPrefix(sec.Reveal(), signature.SecretPrefix),
		expected,
		strings.TrimPrefix(expected, "v1,"),
	}
	for i, h := range headers {
		err := v.Verify(h, body)
		if err == nil {
			t.Fatalf("case %d: Verify = nil, want an error", i)
		}
		for _, f := range forbidden {
			if strings.Contains(err.Error(), f) {
				t.Errorf("case %d: error %q discloses %q", i, err, f)
			}
		}
	}
}

// FuzzVerify checks that Verify never panics and only ever fails with one of
// its documented errors, and that nothing the fuzzer makes up verifies.
func FuzzVerify(f *testing.F) {
	sec := mustParse(f, vectorSecret)
	f.Add(vectorMsgID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorBody))
	f.Add(vectorMsgID, strconv.FormatInt(now.Unix(), 10), signature.Sign(vectorMsgID, now, []byte(vectorBody), sec), []byte(vectorBody))
	f.Add("", "", "", []byte(nil))
	f.Add("msg", "0", "v1, v1a,abc v1,,,", []byte("x"))
	f.Add("msg.1", "-1", "v1,"+strings.Repeat("=", 44), []byte{0xff, 0})
	f.Add("msg", "9223372036854775807", "\t v1,x \n", []byte("{}"))

	sentinels := []error{
		signature.ErrMissingHeaders, signature.ErrInvalidTimestamp, signature.ErrTimestampTooOld,
		signature.ErrTimestampTooNew, signature.ErrNoMatchingSignature,
	}
	v := signature.Verifier{Secrets: []signature.Secret{sec}, Now: fixedNow}
	f.Fuzz(func(t *testing.T, msgID, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(signature.HeaderID, msgID)
		h.Set(signature.HeaderTimestamp, ts)
		h.Set(signature.HeaderSignature, sig)
		err := v.Verify(h, body)
		if err == nil {
			// Only a genuine signature over exactly these inputs may pass.
			n, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil {
				t.Fatalf("Verify accepted timestamp %q that does not parse: %v", ts, perr)
			}
			genuine := strings.TrimPrefix(signature.Sign(msgID, time.Unix(n, 0), body, sec), "v1,")
			if !strings.Contains(sig, genuine) {
				t.Fatalf("Verify accepted a signature that is not ours: id=%q ts=%q sig=%q", msgID, ts, sig)
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("Verify = %v, want one of the documented errors", err)
	})
}
