package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/userhooks/userhooks/event"
)

// eventFlags are the publish flags that describe the event; --file replaces
// them all.
var eventFlags = []string{"id", "type", "account", "user-id", "email", "name", "username", "roles", "tags", "status", "attributes", "previous"}

// publishAnswer is the API's answer to POST /v1/events.
type publishAnswer struct {
	EventID    string `json:"event_id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Duplicate  bool   `json:"duplicate"`
	Event      struct {
		Type      string `json:"type"`
		AccountID string `json:"account_id"`
	} `json:"event"`
}

func publish(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	c := newCommand("publish")
	var (
		conn                                                  connFlags
		file, id, typ, account, userID, email, name, username string
		roles, tags, status, attributes, previous             string
		asJSON                                                bool
	)
	fs := c.fs
	fs.StringVar(&file, "file", "", "read the whole event (JSON envelope) from this file, - for stdin")
	fs.StringVar(&id, "id", "", "event ID (idempotency key); a UUIDv7 when empty")
	fs.StringVar(&typ, "type", "", "user.created, user.updated or user.deleted")
	fs.StringVar(&account, "account", "", "account ID the user belongs to; the API key's account when empty (another is refused)")
	fs.StringVar(&userID, "user-id", "", "user ID")
	fs.StringVar(&email, "email", "", "user email")
	fs.StringVar(&name, "name", "", "user display name")
	fs.StringVar(&username, "username", "", "user login name")
	fs.StringVar(&roles, "roles", "", "comma-separated roles")
	fs.StringVar(&tags, "tags", "", "comma-separated tags")
	fs.StringVar(&status, "status", "", `the user's status on the platform, free text (e.g. "active", "suspended")`)
	fs.StringVar(&attributes, "attributes", "", `custom attributes as a JSON object, e.g. '{"plan":"pro"}'`)
	fs.StringVar(&previous, "previous", "", `user.updated: JSON object of changed fields and their previous values, e.g. '{"email":"old@example.com"}'`)
	fs.BoolVar(&asJSON, "json", false, "print the API's answer as JSON")
	conn.register(fs)
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	var e event.Event
	if file != "" {
		// The file is the whole event: a flag that also describes it would
		// be silently ignored, so refuse the combination.
		var both []string
		fs.Visit(func(f *flag.Flag) {
			if slices.Contains(eventFlags, f.Name) {
				both = append(both, "--"+f.Name)
			}
		})
		if len(both) > 0 {
			return usageError{fmt.Sprintf("--file cannot be combined with %s: put those fields in the file", strings.Join(both, ", "))}
		}
		body, err := readEventFile(file, stdin)
		if err != nil {
			return err
		}
		// ID, timestamp and account may be left out of the file; Decode
		// would reject them as missing, so fill them in first.
		if e, err = decodeDraft(body); err != nil {
			return err
		}
	} else {
		e = event.Event{ID: id, Type: event.Type(typ), AccountID: account, Data: event.Data{User: event.User{
			ID: userID, Email: email, Name: name, Username: username, Roles: splitList(roles), Tags: splitList(tags), Status: status,
		}}}
		if attributes != "" {
			if err := json.Unmarshal([]byte(attributes), &e.Data.User.Attributes); err != nil {
				return usageError{fmt.Sprintf(`--attributes must be a JSON object such as '{"plan":"pro"}': %v`, err)}
			}
		}
		if previous != "" {
			if err := json.Unmarshal([]byte(previous), &e.Data.PreviousAttributes); err != nil {
				return usageError{fmt.Sprintf("--previous must be a JSON object: %v", err)}
			}
		}
	}
	e, err := prepareDraft(e, time.Now())
	if err != nil {
		return err
	}
	api, err := conn.client()
	if err != nil {
		return err
	}
	api.problemsAsJSON = asJSON
	body, err := newJSONBody(e)
	if err != nil {
		return err
	}
	var a publishAnswer
	raw, err := api.call(ctx, http.MethodPost, "/v1/events", nil, body, &a)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status >= 500 {
			// The event may or may not have been taken: the ID, assigned
			// here, makes trying again safe.
			return fmt.Errorf("%w\npublishing is idempotent by event ID: try again with --id %s", err, e.ID)
		}
		return err
	}
	if asJSON {
		return writeRaw(stdout, raw)
	}
	verb := "Published"
	if a.Duplicate {
		verb = "Already published (nothing new started)"
	}
	fmt.Fprintf(stdout, "%s %s %s\n", verb, oneLine(a.Event.Type, 40), oneLine(a.EventID, 200))
	return fields(stdout, "  account", a.Event.AccountID, "  workflow", a.WorkflowID, "  run", a.RunID)
}

// prepareDraft checks the event before anything is sent, so that bad input
// fails at once and without a network call; the API checks it again and is
// the authority. It assigns the event ID here, so that a publish whose
// answer was lost can be repeated with the same ID. An event without an
// account is checked as if it had one: the API fills in the key's.
func prepareDraft(e event.Event, now time.Time) (event.Event, error) {
	const placeholder = "the-api-keys-account"
	account := e.AccountID
	if account == "" {
		e.AccountID = placeholder
	}
	prepared, err := event.Prepare(e, now)
	if err != nil {
		return event.Event{}, err
	}
	prepared.AccountID = account
	return prepared, nil
}

// readEventFile reads the event file name ("-" for stdin). A file larger
// than event.MaxBodyBytes is invalid: event.Decode refuses such a body, and
// reading stops there instead of loading a file of any size.
func readEventFile(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name == "-" {
		name = "(stdin)"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read event file: %w", err)
		}
		defer f.Close()
		r = f
	}
	body, err := io.ReadAll(io.LimitReader(r, event.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read event file %s: %w", name, err)
	}
	if len(body) > event.MaxBodyBytes {
		return nil, &event.ValidationError{Problems: []string{
			fmt.Sprintf("event file %s is larger than %d bytes, the most an event may be", name, event.MaxBodyBytes)}}
	}
	return body, nil
}

// decodeDraft reads an event that may lack ID, timestamp and account. Like
// event.DecodeStrict it refuses unknown fields (a misspelt field would
// otherwise be dropped) and anything after the event object.
func decodeDraft(body []byte) (event.Event, error) {
	var e event.Event
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, &event.ValidationError{Problems: []string{"event file is not a valid event: " + err.Error()}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return e, &event.ValidationError{Problems: []string{"event file has data after the event object"}}
	}
	return e, nil
}
