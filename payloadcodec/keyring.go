package payloadcodec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"unicode"
)

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// MaxKeyIDLen is the longest key ID a Keyring accepts.
const MaxKeyIDLen = 64

// Keyring holds AES-256 keys by key ID: the active key encrypts, every key
// decrypts. It is immutable and safe for concurrent use. Printing it (with
// any fmt verb) shows key IDs only, never key material.
type Keyring struct {
	active string
	ids    []string // active first, then the others in the order given
	aeads  map[string]cipher.AEAD
}

// NewKeyring returns a keyring of keys (key ID → 32-byte key) whose active
// key is activeID. Key IDs are 1 to 64 letters, digits, '.', '_' or '-'.
// The keys are not retained; only ciphers made from them are.
func NewKeyring(activeID string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[activeID]; !ok {
		if err := checkKeyID(activeID); err != nil {
			return nil, fmt.Errorf("payloadcodec: active key: %w", err)
		}
		return nil, fmt.Errorf("payloadcodec: active key ID %q has no key", activeID)
	}
	others := make([]string, 0, len(keys))
	for id := range keys {
		if id != activeID {
			others = append(others, id)
		}
	}
	slices.Sort(others)
	k := &Keyring{active: activeID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, id := range append([]string{activeID}, others...) {
		if err := k.add(id, keys[id]); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// ParseKeyring parses a keyring written as KEYID:BASE64KEY entries
// separated by commas (or white space, so a file may hold one per line),
// for example "k2:…,k1:…". The first entry is the active key. Keys are
// standard or URL-safe base64, padded or not, of exactly 32 bytes. Errors
// name entries by position or key ID and never contain key material.
func ParseKeyring(spec string) (*Keyring, error) {
	entries := strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(entries) == 0 {
		return nil, errors.New("payloadcodec: empty keyring: want KEYID:BASE64KEY entries separated by commas, the active key first")
	}
	k := &Keyring{aeads: make(map[string]cipher.AEAD, len(entries))}
	for i, e := range entries {
		id, b64, ok := strings.Cut(e, ":")
		if !ok {
			// Do not echo the entry: it may be a key whose ID is missing.
			return nil, fmt.Errorf("payloadcodec: keyring entry %d is not KEYID:BASE64KEY", i+1)
		}
		if err := checkKeyID(id); err != nil {
			return nil, fmt.Errorf("payloadcodec: keyring entry %d: %w", i+1, err)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("payloadcodec: keyring entry %d: key ID %q appears more than once", i+1, id)
		}
		key, err := decodeBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("payloadcodec: key %q is not valid base64", id)
		}
		if err := k.add(id, key); err != nil {
			return nil, err
		}
		if i == 0 {
			k.active = id
		}
	}
	return k, nil
}

// ReadKeyringFile reads a keyring in the format of ParseKeyring from a file
// (such as a mounted secret); lines starting with '#' are comments.
func ReadKeyringFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("payloadcodec: read keyring file: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines[i] = ""
		}
	}
	k, err := ParseKeyring(strings.Join(lines, "\n"))
	if err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	return k, nil
}

// EnsureKeyringFile reads the keyring file at path, or, when there is none,
// creates it (mode 0600, in an existing directory) holding one new random
// key with ID keyID. It is meant for local development, where a key that
// survives restarts keeps the recorded histories readable.
func EnsureKeyringFile(path, keyID string) (*Keyring, error) {
	k, err := ReadKeyringFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := checkKeyID(keyID); err != nil {
		return nil, fmt.Errorf("payloadcodec: %w", err)
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return ReadKeyringFile(path) // created meanwhile by another process
	}
	if err != nil {
		return nil, fmt.Errorf("payloadcodec: create keyring file: %w", err)
	}
	_, err = io.WriteString(f, "# Payload encryption keys of userhooks; the first one encrypts.\n"+FormatKey(keyID, key)+"\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("payloadcodec: write keyring file %s: %w", path, err)
	}
	return ReadKeyringFile(path)
}

// GenerateKey returns a new random AES-256 key.
func GenerateKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("payloadcodec: generate key: %w", err)
	}
	return key, nil
}

// FormatKey returns the keyring entry "id:BASE64KEY" that ParseKeyring
// reads. The result contains the key: treat it as a secret.
func FormatKey(id string, key []byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

// ActiveKeyID returns the ID of the key that encrypts.
func (k *Keyring) ActiveKeyID() string {
	if k == nil {
		return ""
	}
	return k.active
}

// KeyIDs returns the IDs of all keys, the active one first.
func (k *Keyring) KeyIDs() []string {
	if k == nil {
		return nil
	}
	return slices.Clone(k.ids)
}

// String describes the keyring by its key IDs; key material is redacted.
func (k *Keyring) String() string {
	if k == nil {
		return "payloadcodec.Keyring(nil)"
	}
	return fmt.Sprintf("payloadcodec.Keyring{active: %q, keys: %q, material: REDACTED}", k.active, k.ids)
}

// GoString is String, so %#v redacts too.
func (k *Keyring) GoString() string { return k.String() }

// Format implements fmt.Formatter so that every verb (%d and %x included,
// which would otherwise print the ciphers' key schedules) prints String.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

func (k *Keyring) add(id string, key []byte) error {
	if err := checkKeyID(id); err != nil {
		return fmt.Errorf("payloadcodec: %w", err)
	}
	if len(key) != KeySize {
		return fmt.Errorf("payloadcodec: key %q is %d bytes, want %d (AES-256)", id, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("payloadcodec: key %q: %w", id, err)
	}
	// Seal draws a random 12-byte nonce and prepends it; Open reads it back.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return fmt.Errorf("payloadcodec: key %q: %w", id, err)
	}
	k.aeads[id] = aead
	k.ids = append(k.ids, id)
	return nil
}

func (k *Keyring) lookup(id string) (cipher.AEAD, bool) {
	if k == nil {
		return nil, false
	}
	a, ok := k.aeads[id]
	return a, ok
}

// checkKeyID reports whether id can name a key. It never echoes an invalid
// ID, which may be key material pasted in the wrong place.
func checkKeyID(id string) error {
	ok := id != "" && len(id) <= MaxKeyIDLen
	for _, r := range id {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}
	if !ok {
		return fmt.Errorf("a key ID must be 1 to %d letters, digits, '.', '_' or '-'", MaxKeyIDLen)
	}
	return nil
}

func decodeBase64(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}
