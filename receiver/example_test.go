package receiver_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/signature"
)

// A service that applies user events with a typed handler, de-duplicating
// in its own database.
func ExampleReceiver_Handle() {
	secret, err := signature.ParseSecret(os.Getenv("WEBHOOK_SECRET")) // "whsec_…"
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:app.db?_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	dedup, err := receiver.OpenSQLDedup(context.Background(), db, receiver.SQLDedupOptions{})
	if err != nil {
		log.Fatal(err)
	}
	rcv, err := receiver.New(receiver.Options{
		Secrets: []signature.Secret{secret}, // old and new during a rotation
		Dedup:   dedup,
		OnOutcome: func(r *http.Request, o receiver.Outcome) {
			log.Printf("webhook %s %s user %s: %d %s %v", o.MessageID, o.EventType, o.UserID, o.Status, o.Reason, o.Err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks", rcv.Handle(func(ctx context.Context, e event.Event) error {
		switch e.Type {
		case event.TypeUserCreated, event.TypeUserUpdated:
			// Upsert e.Data.User; for an update, the changed fields are
			// the keys of e.Data.PreviousAttributes.
		case event.TypeUserDeleted:
			// Deactivate e.Data.User.ID.
		}
		return nil // nil answers 204; an error answers 500 and the sender retries
	}))
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}

// An existing http.Handler behind the receiver, reading the event from the
// request's context.
func ExampleReceiver_Wrap() {
	secret, err := signature.ParseSecret(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	rcv, err := receiver.New(receiver.Options{
		Secrets: []signature.Secret{secret},
		Dedup:   receiver.NewMemoryDedup(0), // one process; SQLDedup survives restarts
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("POST /webhooks", rcv.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, _ := receiver.EventFrom(r.Context())
		fmt.Fprintf(w, "got %s for user %s", e.Type, e.Data.User.ID) // 200: done
	})))
}
