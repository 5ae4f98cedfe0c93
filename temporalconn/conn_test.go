package temporalconn_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/temporalconn"
)

const (
	keyA = "a:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	keyB = "b:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
)

func TestKeyring_ExactlyOneSourceOfKeysOrPlaintext(t *testing.T) {
	file := filepath.Join(t.TempDir(), "codec.keys")
	if err := os.WriteFile(file, []byte("# comment\n"+keyB+"\n"+keyA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cfg        temporalconn.Config
		wantActive string // "" with wantErr "": plaintext
		wantErr    string
	}{
		{name: "nothing set", wantErr: "payload encryption needs keys"},
		{name: "keys", cfg: temporalconn.Config{CodecKeys: keyA + "," + keyB}, wantActive: "a"},
		{name: "keys file", cfg: temporalconn.Config{CodecKeysFile: file}, wantActive: "b"},
		{name: "plaintext", cfg: temporalconn.Config{PlaintextHistory: true}},
		{name: "keys and file", cfg: temporalconn.Config{CodecKeys: keyA, CodecKeysFile: file}, wantErr: "set only one of"},
		{name: "keys and plaintext", cfg: temporalconn.Config{CodecKeys: keyA, PlaintextHistory: true}, wantErr: "set only one of"},
		{name: "missing file", cfg: temporalconn.Config{CodecKeysFile: file + ".missing"}, wantErr: "read keyring file"},
		{name: "bad keys", cfg: temporalconn.Config{CodecKeys: "a:c2hvcnQ="}, wantErr: temporalconn.EnvCodecKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := tt.cfg.Keyring()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Keyring() error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "c2hvcnQ") || strings.Contains(err.Error(), "AAAAAAAA") {
					t.Errorf("error %q contains key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Keyring() error = %v", err)
			}
			if got := k.ActiveKeyID(); got != tt.wantActive {
				t.Errorf("active key = %q, want %q", got, tt.wantActive)
			}
		})
	}
	if _, err := (temporalconn.Config{}).Keyring(); !errors.Is(err, temporalconn.ErrNoCodecKeys) {
		t.Errorf("no keys: error %v does not match ErrNoCodecKeys", err)
	}
}

// TestClientOptions_EncryptsPayloadsUnlessPlaintext checks that the client
// options carry a data converter whose payloads are encrypted.
func TestClientOptions_EncryptsPayloadsUnlessPlaintext(t *testing.T) {
	opts, err := temporalconn.Config{Address: "localhost:7233", Namespace: "default", CodecKeys: keyA}.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.DataConverter == nil {
		t.Fatal("no data converter with codec keys")
	}
	p, err := opts.DataConverter.ToPayload(map[string]string{"email": "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.GetMetadata()["encoding"]); got != payloadcodec.MetadataEncodingEncrypted {
		t.Errorf("payload encoding = %q, want %q", got, payloadcodec.MetadataEncodingEncrypted)
	}
	if strings.Contains(string(p.GetData()), "ada@example.com") {
		t.Error("payload data holds the email in clear")
	}
	// Failure details (an attempt record, with the receiver's response
	// excerpt) are encrypted too; the message stays readable.
	if opts.FailureConverter == nil {
		t.Fatal("no failure converter with codec keys: failure details would be written in clear")
	}
	f := opts.FailureConverter.ErrorToFailure(temporal.NewNonRetryableApplicationError("attempt 1: HTTP 503", "ServerError", nil,
		map[string]string{"response_excerpt": "ada@example.com"}))
	details := f.GetApplicationFailureInfo().GetDetails().GetPayloads()
	if len(details) != 1 || string(details[0].GetMetadata()["encoding"]) != payloadcodec.MetadataEncodingEncrypted ||
		strings.Contains(string(details[0].GetData()), "ada@example.com") {
		t.Errorf("failure details = %v, want one encrypted payload", details)
	}
	if f.GetMessage() != "attempt 1: HTTP 503" {
		t.Errorf("failure message = %q, want it in clear", f.GetMessage())
	}

	opts, err = temporalconn.Config{Address: "localhost:7233", Namespace: "default", PlaintextHistory: true}.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.DataConverter != nil {
		t.Error("plaintext history: want the SDK's default data converter (nil)")
	}
	if _, err := (temporalconn.Config{Address: "localhost:7233"}).ClientOptions(nil); !errors.Is(err, temporalconn.ErrNoCodecKeys) {
		t.Errorf("no keys: ClientOptions error = %v, want ErrNoCodecKeys", err)
	}
}
