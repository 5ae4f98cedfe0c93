package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/userhooks/userhooks/event"
)

// benchEvent is a typical user.updated event: a few user fields, roles,
// custom attributes and the previous values of what changed (about 400
// bytes of JSON).
func benchEvent() event.Event {
	return event.Event{
		ID:        "0192f5e4-6c1a-7b3e-9a41-5d2c8e7f1a60",
		Type:      event.TypeUserUpdated,
		Timestamp: time.Date(2026, 11, 23, 9, 32, 15, 123_000_000, time.UTC),
		AccountID: "acme",
		Data: event.Data{
			User: event.User{
				ID: "u_42", Email: "ada@lovelace.example", Name: "Ada Lovelace", Username: "ada",
				Roles:      []string{"admin", "billing"},
				Status:     "active",
				Attributes: map[string]json.RawMessage{"plan": json.RawMessage(`"pro"`), "seats": json.RawMessage(`12`)},
			},
			PreviousAttributes: map[string]json.RawMessage{
				"email":           json.RawMessage(`"ada@example.com"`),
				"attributes.plan": json.RawMessage(`"free"`),
			},
		},
	}
}

// BenchmarkMarshal measures producing the body every delivery attempt
// signs and sends.
func BenchmarkMarshal(b *testing.B) {
	e := benchEvent()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		body, err := e.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		n = len(body)
	}
	b.SetBytes(int64(n))
}

// BenchmarkDecode measures what a receiver does with a delivered body:
// decode and validate it, leniently (Decode) and strictly (DecodeStrict,
// as publishing through the API does).
func BenchmarkDecode(b *testing.B) {
	body, err := benchEvent().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		decode func([]byte) (event.Event, error)
	}{
		{"lenient", event.Decode},
		{"strict", event.DecodeStrict},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := bc.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPrepare measures what Publish does before starting a workflow:
// assign an ID and validate.
func BenchmarkPrepare(b *testing.B) {
	e := benchEvent()
	e.ID = ""
	now := time.Date(2026, 11, 23, 9, 32, 15, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Prepare(e, now); err != nil {
			b.Fatal(err)
		}
	}
}
