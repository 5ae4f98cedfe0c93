package payloadcodec_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/userhooks/userhooks/payloadcodec"
)

// testKey returns a deterministic 32-byte key, so failures are reproducible
// and tests can look for its bytes in outputs.
func testKey(seed byte) []byte {
	k := make([]byte, payloadcodec.KeySize)
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return k
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// keyring parses "id:seed" pairs into a keyring of testKey(seed) keys.
func keyring(t testing.TB, ids ...string) *payloadcodec.Keyring {
	t.Helper()
	var entries []string
	for i, id := range ids {
		entries = append(entries, payloadcodec.FormatKey(id, testKey(byte(10*i+1))))
	}
	k, err := payloadcodec.ParseKeyring(strings.Join(entries, ","))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// assertNoKeyMaterial fails if s contains any of the keys, raw or in one
// of the base64 spellings, or a long fragment of them.
func assertNoKeyMaterial(t *testing.T, s string, keys ...[]byte) {
	t.Helper()
	for _, k := range keys {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			e := enc.EncodeToString(k)
			for i := 0; i+8 <= len(e); i += 4 {
				if strings.Contains(s, e[i:i+8]) {
					t.Fatalf("%q contains key material %q", s, e[i:i+8])
				}
			}
		}
		if bytes.Contains([]byte(s), k[:8]) {
			t.Fatalf("%q contains raw key bytes", s)
		}
		if strings.Contains(s, fmt.Sprintf("%x", k[:8])) || strings.Contains(s, fmt.Sprint(k[:8])[1:20]) {
			t.Fatalf("%q contains key bytes in hex or decimal", s)
		}
	}
}

func TestParseKeyring_FirstEntryIsActiveAndAllAreKept(t *testing.T) {
	k1, k2, k3 := testKey(1), testKey(2), testKey(3)
	spec := " k2:" + b64(k2) + ",\n k1:" + base64.RawURLEncoding.EncodeToString(k1) + "\n\nold.2024-01_a:" + base64.URLEncoding.EncodeToString(k3) + "\n"
	k, err := payloadcodec.ParseKeyring(spec)
	if err != nil {
		t.Fatal(err)
	}
	if k.ActiveKeyID() != "k2" {
		t.Errorf("active = %q, want k2", k.ActiveKeyID())
	}
	if got, want := k.KeyIDs(), []string{"k2", "k1", "old.2024-01_a"}; !slices.Equal(got, want) {
		t.Errorf("key IDs = %q, want %q", got, want)
	}
}

func TestParseKeyring_RejectsBadSpecsWithoutLeakingKeys(t *testing.T) {
	short, long, good := make([]byte, 16), make([]byte, 33), testKey(9)
	copy(short, testKey(4))
	copy(long, testKey(5))
	cases := []struct {
		name, spec, wantErr string
	}{
		{"empty", "", "empty keyring"},
		{"only separators", " ,\n, ", "empty keyring"},
		{"no key ID", b64(good), "entry 1 is not KEYID:BASE64KEY"},
		{"key ID and key swapped", b64(good) + ":k1", "entry 1: a key ID must be"},
		{"empty key ID", ":" + b64(good), "entry 1: a key ID must be"},
		{"key ID with a space", "k 1:" + b64(good), "entry 1 is not KEYID:BASE64KEY"},
		{"key ID too long", strings.Repeat("k", 65) + ":" + b64(good), "entry 1: a key ID must be"},
		{"key too short", "k1:" + b64(short), `key "k1" is 16 bytes, want 32`},
		{"key too long", "k1:" + b64(long), `key "k1" is 33 bytes, want 32`},
		{"empty key", "k1:", `key "k1" is 0 bytes, want 32`},
		{"bad base64", "k1:" + b64(good)[:20] + "!*" + b64(good)[22:], `key "k1" is not valid base64`},
		{"duplicate key IDs", "k1:" + b64(good) + ",k2:" + b64(testKey(8)) + ",k1:" + b64(testKey(7)), `entry 3: key ID "k1" appears more than once`},
		{"second entry malformed", "k1:" + b64(good) + "," + b64(long), "entry 2 is not KEYID:BASE64KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := payloadcodec.ParseKeyring(tc.spec)
			if err == nil {
				t.Fatalf("ParseKeyring accepted %q: %v", tc.spec, k)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
			assertNoKeyMaterial(t, err.Error(), short, long, good, testKey(8), testKey(7))
		})
	}
}

func TestNewKeyring_ValidatesLikeParseKeyring(t *testing.T) {
	if _, err := payloadcodec.NewKeyring("k1", map[string][]byte{"k1": testKey(1), "k0": testKey(2)}); err != nil {
		t.Fatal(err)
	}
	secret := testKey(3)
	for name, tc := range map[string]struct {
		active string
		keys   map[string][]byte
	}{
		"no active key":     {"k2", map[string][]byte{"k1": secret}},
		"short key":         {"k1", map[string][]byte{"k1": secret[:31]}},
		"key as an ID":      {"k1", map[string][]byte{"k1": testKey(1), b64(secret): testKey(2)}},
		"key as active ID":  {b64(secret), map[string][]byte{"k1": testKey(1)}},
		"empty active ID":   {"", map[string][]byte{"": secret}},
		"nil map of keys":   {"k1", nil},
		"ID with separator": {"k,1", map[string][]byte{"k,1": secret}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := payloadcodec.NewKeyring(tc.active, tc.keys)
			if err == nil {
				t.Fatal("accepted")
			}
			assertNoKeyMaterial(t, err.Error(), secret)
		})
	}
}

func TestKeyring_PrintingRedactsKeyMaterial(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	k, err := payloadcodec.NewKeyring("k2", map[string][]byte{"k1": k1, "k2": k2})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(k)
	outs := []string{k.String(), k.GoString(), fmt.Sprint(k), fmt.Sprint(*k), string(js), fmt.Sprint([]any{k})}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q", "%o", "%b"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, *k))
	}
	for _, s := range outs {
		assertNoKeyMaterial(t, s, k1, k2)
	}
	if s := k.String(); !strings.Contains(s, `"k2"`) || !strings.Contains(s, `"k1"`) || !strings.Contains(s, "REDACTED") {
		t.Errorf("String() = %q, want key IDs and REDACTED", s)
	}
}

func TestGenerateKey_Returns32RandomBytes(t *testing.T) {
	a, err := payloadcodec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := payloadcodec.GenerateKey()
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Fatalf("keys %x and %x: want 32 bytes each, different", a, b)
	}
	if _, err := payloadcodec.ParseKeyring(payloadcodec.FormatKey("gen", a)); err != nil {
		t.Fatalf("FormatKey output does not parse: %v", err)
	}
}

func TestEnsureKeyringFile_CreatesOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "codec.keys")
	first, err := payloadcodec.EnsureKeyringFile(path, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if first.ActiveKeyID() != "dev-1" {
		t.Errorf("active key = %q", first.ActiveKeyID())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	// A second call reads the same key: what the first encrypted decodes.
	second, err := payloadcodec.EnsureKeyringFile(path, "other")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := payloadcodec.NewCodec(first).Encode(jsonPayloads(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := payloadcodec.NewCodec(second).Decode(enc); err != nil {
		t.Fatalf("second keyring cannot decode what the first encoded: %v", err)
	}
	if _, err := payloadcodec.EnsureKeyringFile(filepath.Join(t.TempDir(), "missing-dir", "codec.keys"), "dev"); err == nil {
		t.Error("created a keyring file in a missing directory")
	}
}

func TestReadKeyringFile_SkipsCommentsAndNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	os.WriteFile(good, []byte("# rotated 2026-11\nk2:"+b64(testKey(2))+"\n  # old\nk1:"+b64(testKey(1))+"\n"), 0o600)
	k, err := payloadcodec.ReadKeyringFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.KeyIDs(); !slices.Equal(got, []string{"k2", "k1"}) {
		t.Errorf("key IDs = %q", got)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("k1:"+b64(testKey(1)[:16])), 0o600)
	_, err = payloadcodec.ReadKeyringFile(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("error %v does not name the file", err)
	}
}
