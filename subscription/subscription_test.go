package subscription_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

func validSubscription(t *testing.T) subscription.Subscription {
	t.Helper()
	return *newSubscription(t, "acct_1")
}

func TestValidate_AcceptsValidSubscriptions(t *testing.T) {
	tests := map[string]func(s *subscription.Subscription){
		"minimal":         func(s *subscription.Subscription) {},
		"given UUIDv4 id": func(s *subscription.Subscription) { s.ID = uuid.NewString() },
		"http url":        func(s *subscription.Subscription) { s.URL = "http://receiver.example:8080/hooks?x=1" },
		"every event type": func(s *subscription.Subscription) {
			s.EventTypes = []string{"user.created", "user.updated", "user.deleted"}
		},
		"repeated event type":     func(s *subscription.Subscription) { s.EventTypes = []string{"user.created", "user.created"} },
		"longest account id":      func(s *subscription.Subscription) { s.AccountID = strings.Repeat("é", 128) },
		"longest description":     func(s *subscription.Subscription) { s.Description = strings.Repeat("é", 1024) },
		"default schedule":        func(s *subscription.Subscription) { sched := delivery.DefaultSchedule(); s.Schedule = &sched },
		"expired secret retained": func(s *subscription.Subscription) { s.Secrets[0].ExpiresAt = time.Unix(1, 0) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			s := validSubscription(t)
			mutate(&s)
			if err := s.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidate_NamesEveryBrokenField(t *testing.T) {
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	s := subscription.Subscription{
		ID:          "42",
		AccountID:   "acct\n1",
		URL:         "javascript:alert(1)",
		EventTypes:  []string{"user.created", "", "user.exploded"},
		Description: "bad \x00 byte",
		Secrets:     []subscription.Secret{{Key: key}, {Key: key}, {}},
		Schedule:    &delivery.Schedule{Jitter: 2},
	}
	err = s.Validate()
	var verr *subscription.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate = %v, want a *ValidationError", err)
	}
	want := []string{
		"id must be a UUID",
		"account_id must not contain control characters",
		`url scheme is "javascript"`,
		"event_types[1] is empty",
		`event_types[2] "user.exploded" is not a known event type; want one of user.created, user.updated, user.deleted`,
		"description must not contain NUL",
		"secrets[1] repeats secrets[0]",
		"secrets[2] has no key",
		"schedule: retry schedule jitter",
	}
	if len(verr.Problems) != len(want) {
		t.Errorf("got %d problems, want %d: %q", len(verr.Problems), len(want), verr.Problems)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if strings.Contains(err.Error(), strings.TrimPrefix(key.Reveal(), signature.SecretPrefix)) {
		t.Error("validation error discloses a secret")
	}
}

func TestValidate_CutsLongValuesShort(t *testing.T) {
	s := validSubscription(t)
	s.EventTypes = []string{strings.Repeat("x", 10_000)}
	err := s.Validate()
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("Validate of a 10,000-byte event type: %d-byte error, want a short one", len(fmt.Sprint(err)))
	}
}

func TestActiveSecrets_ExpiredSecretsStopSigning(t *testing.T) {
	newKey, oldKey, olderKey := mustKey(t), mustKey(t), mustKey(t)
	rotation := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	s := subscription.Subscription{Secrets: []subscription.Secret{
		{Key: newKey},
		{Key: oldKey, ExpiresAt: rotation},
		{Key: olderKey, ExpiresAt: rotation.Add(-time.Hour)},
	}}
	tests := []struct {
		name string
		now  time.Time
		want []signature.Secret
	}{
		{"before both expiries", rotation.Add(-2 * time.Hour), []signature.Secret{newKey, oldKey, olderKey}},
		{"at the first expiry", rotation.Add(-time.Hour), []signature.Secret{newKey, oldKey}},
		{"just before the second", rotation.Add(-time.Nanosecond), []signature.Secret{newKey, oldKey}},
		{"at the second expiry", rotation, []signature.Secret{newKey}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.ActiveSecrets(tc.now)
			if !slices.EqualFunc(got, tc.want, signature.Secret.Equal) {
				t.Errorf("ActiveSecrets gave %d keys, want %d, newest first", len(got), len(tc.want))
			}
		})
	}
}

func TestMatches_EmptyEventTypesMatchAll(t *testing.T) {
	all := subscription.Subscription{}
	some := subscription.Subscription{EventTypes: []string{"user.created", "user.deleted"}}
	for _, et := range []string{"user.created", "user.updated", "user.deleted"} {
		if !all.Matches(et) {
			t.Errorf("a subscription of all types does not match %s", et)
		}
	}
	if !some.Matches("user.deleted") || some.Matches("user.updated") {
		t.Errorf("a subscription of %q: Matches(user.deleted) = %t, Matches(user.updated) = %t",
			some.EventTypes, some.Matches("user.deleted"), some.Matches("user.updated"))
	}
}

func TestEffectiveSchedule_DefaultsWhenUnset(t *testing.T) {
	var s subscription.Subscription
	if got := s.EffectiveSchedule(); got.MaxAttempts() != delivery.DefaultSchedule().MaxAttempts() {
		t.Errorf("EffectiveSchedule without a schedule allows %d attempts, want the default's %d", got.MaxAttempts(), delivery.DefaultSchedule().MaxAttempts())
	}
	custom := delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Minute)}}
	s.Schedule = &custom
	if got := s.EffectiveSchedule(); got.MaxAttempts() != 2 {
		t.Errorf("EffectiveSchedule with a custom schedule allows %d attempts, want 2", got.MaxAttempts())
	}
}

func TestSubscription_PrintingRedactsSecrets(t *testing.T) {
	s := validSubscription(t)
	keyText := strings.TrimPrefix(s.Secrets[0].Key.Reveal(), signature.SecretPrefix)
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), string(j)} {
		if strings.Contains(text, keyText) {
			t.Errorf("printed subscription discloses its secret: %s", text)
		}
	}
}

func mustKey(t *testing.T) signature.Secret {
	t.Helper()
	key, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return key
}
