package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/userhooks/userhooks/event"
)

func validUpdated() event.Event {
	return event.Event{
		ID:        "evt_1",
		Type:      event.TypeUserUpdated,
		Timestamp: time.Date(2026, 11, 23, 9, 0, 0, 123_000_000, time.UTC),
		AccountID: "acme",
		Data: event.Data{
			User: event.User{
				ID: "u_42", Email: "ada@example.com", Name: "Ada <Admin> & Co",
				Roles:      []string{"admin"},
				Attributes: map[string]json.RawMessage{"plan": json.RawMessage(`"pro"`), "big": json.RawMessage(`12345678901234567890`)},
			},
			PreviousAttributes: map[string]json.RawMessage{"email": json.RawMessage(`"old@example.com"`), "attributes.plan": json.RawMessage(`null`)},
		},
	}
}

// The body must survive the JSON round trip Temporal's data converter puts it
// through (struct → JSON → struct) byte for byte, or attempts would sign
// different bodies.
func TestMarshal_StableAcrossJSONRoundTrip(t *testing.T) {
	e := validUpdated()
	first, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		var back event.Event
		if err := json.Unmarshal(first, &back); err != nil {
			t.Fatal(err)
		}
		again, err := back.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatalf("round trip %d changed the body:\n%s\n%s", i, first, again)
		}
	}
	if !strings.Contains(string(first), `"big":12345678901234567890`) {
		t.Errorf("large integer attribute was not kept verbatim: %s", first)
	}
}

func TestPrepare_AssignsIDAndTimestamp(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, time.FixedZone("X", 3600))
	e, err := event.Prepare(event.Event{Type: event.TypeUserCreated, AccountID: "acme", Data: event.Data{User: event.User{ID: "u1"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.ID) != 36 || e.ID[14] != '7' {
		t.Errorf("id %q is not a UUIDv7", e.ID)
	}
	if want := now.UTC().Truncate(time.Millisecond); !e.Timestamp.Equal(want) || e.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp %v, want %v in UTC", e.Timestamp, want)
	}
}

func TestValidate_RejectsBadEvents(t *testing.T) {
	tests := []struct {
		name   string
		change func(*event.Event)
		want   string
	}{
		{"unknown type", func(e *event.Event) { e.Type = "user.exploded"; e.Data.PreviousAttributes = nil }, `type "user.exploded" is unknown`},
		{"missing user id", func(e *event.Event) { e.Data.User.ID = "" }, "data.user.id is required"},
		{"missing account", func(e *event.Event) { e.AccountID = "" }, "account_id is required"},
		{"slash in id", func(e *event.Event) { e.ID = "a/b" }, `id "a/b" may only contain`},
		{"id too long", func(e *event.Event) { e.ID = strings.Repeat("a", 129) }, "id is 129 characters"},
		{"updated without previous", func(e *event.Event) { e.Data.PreviousAttributes = nil }, "previous_attributes is required for user.updated"},
		{"previous on created", func(e *event.Event) { e.Type = event.TypeUserCreated }, "only allowed on user.updated"},
		{"previous names unknown field", func(e *event.Event) {
			e.Data.PreviousAttributes["shoe_size"] = json.RawMessage(`41`)
		}, "previous_attributes.shoe_size is not a field"},
		{"invalid raw attribute", func(e *event.Event) { e.Data.User.Attributes["x"] = json.RawMessage(`{`) }, "attributes.x is not valid JSON"},
		{"too large", func(e *event.Event) {
			e.Data.User.Attributes["blob"] = json.RawMessage(`"` + strings.Repeat("x", event.MaxBodyBytes) + `"`)
		}, "event body is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validUpdated()
			tt.change(&e)
			err := e.Validate()
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("Validate() = %v, want a validation error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	if err := validUpdated().Validate(); err != nil {
		t.Fatalf("valid event rejected: %v", err)
	}
}

func TestDecode_LenientAndStrict(t *testing.T) {
	body := `{"id":"e1","type":"user.created","timestamp":"2026-11-23T09:00:00Z","account_id":"a","data":{"user":{"id":"u"}},"future_field":1}`
	if _, err := event.Decode([]byte(body)); err != nil {
		t.Errorf("Decode rejected an unknown field: %v", err)
	}
	if _, err := event.DecodeStrict([]byte(body)); err == nil || !strings.Contains(err.Error(), "future_field") {
		t.Errorf("DecodeStrict = %v, want an error naming future_field", err)
	}
	for _, bad := range []string{``, `null`, `[]`, `{"id":1}`, body[:len(body)-1], `{"id":"e1"} {}`} {
		if _, err := event.Decode([]byte(bad)); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("Decode(%q) = %v, want a validation error", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := validUpdated().Marshal()
	f.Add(b)
	f.Add([]byte(`{"type":"user.deleted"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := event.Decode(body)
		if err != nil {
			return
		}
		// Whatever decodes and validates must re-encode and validate again.
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("valid event does not encode: %v", err)
		}
		if _, err := event.Decode(out); err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
	})
}
