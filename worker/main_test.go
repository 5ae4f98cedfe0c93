package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/signature"
)

// clearHealthEnv makes the test independent of the environment it runs in.
func clearHealthEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{envDisableAfter, envOperatorURL, envOperatorSecret, "USERHOOKS_ALLOW_CIDRS", "USERHOOKS_ALLOW_HTTP"} {
		t.Setenv(name, "")
	}
}

func TestParseConfig_EndpointHealth(t *testing.T) {
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	const (
		publicURL  = "https://ops.example.com/userhooks?token=url-token"
		badSecret  = "whsec_***not-base64***"
		privateURL = "https://10.0.0.7/userhooks?token=url-token"
	)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		dev  bool

		wantDisableAfter time.Duration
		// wantOperator is the operator webhook's URL; "" for none.
		wantOperator string
		// wantErr is part of the error; "" for none.
		wantErr string
	}{
		{name: "defaults", wantDisableAfter: activities.DefaultDisableAfter},
		{name: "environment", env: map[string]string{envDisableAfter: "36h", envOperatorURL: publicURL, envOperatorSecret: secret.Reveal()},
			wantDisableAfter: 36 * time.Hour, wantOperator: publicURL},
		{name: "flags win over the environment", env: map[string]string{envDisableAfter: "36h", envOperatorURL: "https://other.example/x", envOperatorSecret: secret.Reveal()},
			args: []string{"-disable-after", "48h", "-operator-webhook-url", publicURL}, wantDisableAfter: 48 * time.Hour, wantOperator: publicURL},
		{name: "0 turns automatic disabling off", args: []string{"-disable-after", "0"}, wantDisableAfter: 0},
		{name: "0 in the environment", env: map[string]string{envDisableAfter: "0"}, wantDisableAfter: 0},
		{name: "negative", args: []string{"-disable-after", "-1h"}, wantErr: "-disable-after -1h0m0s: want a positive duration"},
		{name: "not a duration in the environment", env: map[string]string{envDisableAfter: "5 days"}, wantErr: envDisableAfter + `="5 days": not a duration`},
		{name: "not a duration as a flag", args: []string{"-disable-after", "5d"}, wantErr: "invalid value"},
		{name: "URL without a secret", args: []string{"-operator-webhook-url", publicURL}, wantErr: "secret is required"},
		{name: "secret without a URL", env: map[string]string{envOperatorSecret: secret.Reveal()}, wantErr: "no URL"},
		{name: "invalid secret", env: map[string]string{envOperatorURL: publicURL, envOperatorSecret: badSecret}, wantErr: "operator webhook secret"},
		{name: "private address refused by the egress policy", env: map[string]string{envOperatorURL: privateURL, envOperatorSecret: secret.Reveal()},
			wantErr: "operator webhook URL"},
		{name: "private address allowed by -allow-cidrs", env: map[string]string{envOperatorURL: privateURL, envOperatorSecret: secret.Reveal()},
			args: []string{"-allow-cidrs", "10.0.0.0/8"}, wantDisableAfter: activities.DefaultDisableAfter, wantOperator: privateURL},
		{name: "plain http refused", args: []string{"-operator-webhook-url", "http://ops.example.com/x"}, env: map[string]string{envOperatorSecret: secret.Reveal()},
			wantErr: "http"},
		{name: "the secret is no flag", args: []string{"-operator-webhook-secret", secret.Reveal()}, wantErr: "flag provided but not defined"},
		{name: "dev: none configured (runDev uses the demo receiver)", dev: true, wantDisableAfter: activities.DefaultDisableAfter},
		{name: "dev: loopback over http allowed", dev: true, args: []string{"-operator-webhook-url", "http://127.0.0.1:9999/ops"},
			env: map[string]string{envOperatorSecret: secret.Reveal()}, wantDisableAfter: activities.DefaultDisableAfter, wantOperator: "http://127.0.0.1:9999/ops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearHealthEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string{"-store", filepath.Join(t.TempDir(), "subs.db"), "-plaintext-history"}, tt.args...)
			if tt.dev {
				args = tt.args
			}
			cfg, err := parseConfig(args, tt.dev)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig error = %v, want one containing %q", err, tt.wantErr)
				}
				for _, leak := range []string{secret.Reveal(), badSecret, "url-token"} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("error %q repeats %q", err, leak)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if cfg.disableAfter != tt.wantDisableAfter {
				t.Errorf("disableAfter = %s, want %s", cfg.disableAfter, tt.wantDisableAfter)
			}
			switch {
			case tt.wantOperator == "" && cfg.operator != nil:
				t.Errorf("operator = %s, want none", cfg.operator.URL)
			case tt.wantOperator != "" && (cfg.operator == nil || cfg.operator.URL != tt.wantOperator || !cfg.operator.Secret.Equal(secret)):
				t.Errorf("operator = %+v, want %s with the secret from %s", cfg.operator, tt.wantOperator, envOperatorSecret)
			}
		})
	}
}

func TestParseConfig_DevAllowsTheDemoReceiverOnce(t *testing.T) {
	clearHealthEnv(t)
	cfg, err := parseConfig([]string{"-allow-cidrs", "10.0.0.0/8"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.allowCIDRs != "10.0.0.0/8,127.0.0.0/8" || !cfg.allowHTTP {
		t.Errorf("dev policy: allow-cidrs %q, allow-http %t; want the given CIDRs plus 127.0.0.0/8, and http", cfg.allowCIDRs, cfg.allowHTTP)
	}
}

func TestEnsureDevSecret_KeepsOneSecretPrivately(t *testing.T) {
	file := filepath.Join(t.TempDir(), "operator-webhook-secret")
	first, err := ensureDevSecret(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", fi, err)
	}
	again, err := ensureDevSecret(file)
	if err != nil || !again.Equal(first) {
		t.Errorf("second call: %v; want the same secret", err)
	}
	if err := os.WriteFile(file, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh, err := ensureDevSecret(file)
	if err != nil || fresh.Equal(first) || fresh.IsZero() {
		t.Errorf("over an invalid file: %v; want a new secret", err)
	}
	if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != fresh.Reveal() {
		t.Errorf("file holds %q, want the new secret", b)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten secret file: %v, %v; want mode 0600", fi, err)
	}
}

func TestOperatorReceiver_VerifiesAndPrintsSubscriptionDisabled(t *testing.T) {
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	e := activities.OperatorEvent{
		ID: "01a2088a-0000-7000-8000-00000000000a", Type: activities.EventSubscriptionDisabled,
		Timestamp: time.Now().UTC().Truncate(time.Millisecond), AccountID: "acme",
		Data: activities.SubscriptionDisabledData{SubscriptionID: "01a2088a-0000-7000-8000-000000000001",
			Endpoint: "http://127.0.0.1:9000", Reason: activities.ReasonGone},
	}
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		signWith signature.Secret
		want     int
		wantOut  string
	}{
		{"signed with the operator secret", secret, http.StatusNoContent,
			"verified subscription.disabled " + e.ID + ": subscription " + e.Data.SubscriptionID + ` of account "acme" (http://127.0.0.1:9000) was disabled: endpoint answered 410 Gone`},
		{"signed with another secret", other, http.StatusUnauthorized, "REJECTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			o := &operatorReceiver{verifier: signature.Verifier{Secrets: []signature.Secret{secret}}, out: &out}
			req := httptest.NewRequest(http.MethodPost, "/operator", bytes.NewReader(body))
			signature.SetHeaders(req.Header, e.ID, time.Now(), body, tt.signWith)
			rec := httptest.NewRecorder()
			o.ServeHTTP(rec, req)
			if rec.Code != tt.want || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("answer %d, printed %q; want %d and %q", rec.Code, out.String(), tt.want, tt.wantOut)
			}
		})
	}
}
