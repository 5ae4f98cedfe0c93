package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver/usersync"
	"github.com/userhooks/userhooks/signature"
)

func newSecret(t *testing.T) signature.Secret {
	t.Helper()
	s, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig_TakesSecretsFromFlagsOrTheEnvironment(t *testing.T) {
	a, b, c := newSecret(t), newSecret(t), newSecret(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []signature.Secret
	}{
		{"flags, repeated", []string{"-secret", a.Reveal(), "-secret", b.Reveal()}, nil, []signature.Secret{a, b}},
		{"USERSYNC_SECRET", nil, map[string]string{envSecret: a.Reveal()}, []signature.Secret{a}},
		{"USERSYNC_SECRETS, commas and spaces", nil, map[string]string{envSecrets: a.Reveal() + ", " + b.Reveal() + " " + c.Reveal()}, []signature.Secret{a, b, c}},
		{"both variables", nil, map[string]string{envSecrets: a.Reveal(), envSecret: b.Reveal()}, []signature.Secret{a, b}},
		{"flags win over the environment", []string{"-secret", c.Reveal()}, map[string]string{envSecret: a.Reveal()}, []signature.Secret{c}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.secrets) != len(tt.want) {
				t.Fatalf("%d secrets, want %d", len(cfg.secrets), len(tt.want))
			}
			for i := range tt.want {
				if !cfg.secrets[i].Equal(tt.want[i]) {
					t.Errorf("secret %d differs", i)
				}
			}
		})
	}
}

func TestParseConfig_Defaults(t *testing.T) {
	cfg, err := parseConfig(nil, env(map[string]string{envSecret: newSecret(t).Reveal()}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "127.0.0.1:9100" || cfg.db != "usersync.db" || cfg.path != "/webhooks" ||
		cfg.onDelete != usersync.DeactivateOnDelete || cfg.tolerance != signature.DefaultTolerance {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestParseConfig_RefusesBadInputWithoutQuotingSecrets(t *testing.T) {
	good := newSecret(t).Reveal()
	typo := good[:len(good)-3] + "!!!" // a secret with a typo is still a secret
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no secret", nil, nil, "no secret"},
		{"malformed flag secret", []string{"-secret", typo}, nil, "-secret: secret 1 of 1"},
		{"malformed env secret", nil, map[string]string{envSecrets: good + "," + typo}, "secret 2 of 2"},
		{"unknown delete mode", []string{"-secret", good, "-on-delete", "shred"}, nil, "-on-delete"},
		{"relative path", []string{"-secret", good, "-path", "hooks"}, nil, "-path"},
		{"zero tolerance", []string{"-secret", good, "-tolerance", "0s"}, nil, "-tolerance"},
		{"extra argument", []string{"-secret", good, "serve"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var usage bytes.Buffer
			_, err := parseConfig(tt.args, env(tt.env), &usage)
			if err == nil {
				t.Fatal("parseConfig = nil error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			for _, s := range []string{typo, good, strings.TrimPrefix(typo, signature.SecretPrefix)} {
				if strings.Contains(err.Error()+usage.String(), s) {
					t.Errorf("error or usage output discloses a secret: %q", err)
				}
			}
		})
	}
}

// The command end to end: a real listener, a signed delivery and a forged
// one, one log line each, and a clean stop.
func TestServe_AppliesDeliveriesAndLogsOneLineEach(t *testing.T) {
	secret := newSecret(t)
	cfg, err := parseConfig([]string{"-db", filepath.Join(t.TempDir(), "users.db"), "-secret", secret.Reveal()}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, zap.New(core)) }()

	e := event.Event{
		ID: "evt_1", Type: event.TypeUserCreated, Timestamp: time.Now().UTC().Truncate(time.Millisecond), AccountID: "acme",
		Data: event.Data{User: event.User{ID: "u_42", Email: "ada@example.com", Name: "Ada Lovelace"}},
	}
	body, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/webhooks"
	post := func(secrets ...signature.Secret) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		signature.SetHeaders(req.Header, e.ID, time.Now(), body, secrets...)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := post(secret); status != http.StatusNoContent {
		t.Errorf("signed delivery: %d, want 204", status)
	}
	if status := post(newSecret(t)); status != http.StatusUnauthorized {
		t.Errorf("forged delivery: %d, want 401", status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v, want a clean stop", err)
	}

	var lines []string
	for _, entry := range logs.All() {
		fields := entry.ContextMap()
		line := fmt.Sprintf("%s %v", entry.Message, fields)
		lines = append(lines, line)
		for _, forbidden := range []string{"ada@example.com", "Ada Lovelace", secret.Reveal(), strings.TrimPrefix(secret.Reveal(), signature.SecretPrefix)} {
			if strings.Contains(line, forbidden) {
				t.Errorf("log line discloses %q: %s", forbidden, line)
			}
		}
	}
	applied := logs.FilterMessage("event applied").All()
	if len(applied) != 1 || applied[0].ContextMap()["user_id"] != "u_42" || applied[0].ContextMap()["event_id"] != "evt_1" || applied[0].ContextMap()["action"] != "created" {
		t.Errorf("want one 'event applied' line for u_42/evt_1, got:\n%s", strings.Join(lines, "\n"))
	}
	rejected := logs.FilterMessage("event rejected").All()
	if len(rejected) != 1 || rejected[0].ContextMap()["reason"] != "bad_signature" || rejected[0].Level != zapcore.WarnLevel {
		t.Errorf("want one warn 'event rejected' line with reason bad_signature, got:\n%s", strings.Join(lines, "\n"))
	}
	if n := logs.FilterMessage("usersync listening").Len(); n != 1 {
		t.Errorf("%d start lines, want 1", n)
	}
}

func TestServe_FailsOnAnUnusableDatabase(t *testing.T) {
	cfg, err := parseConfig([]string{"-db", t.TempDir(), "-secret", newSecret(t).Reveal()}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := serve(context.Background(), cfg, ln, zap.NewNop()); err == nil {
		t.Fatal("serve on a directory as database = nil error")
	}
}
