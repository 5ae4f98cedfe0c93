// Command userhooks publishes events and manages subscriptions from a shell.
//
//	userhooks publish --account acme --type user.created --user-id u_42 --email ada@example.com
//	userhooks publish --file event.json
//	userhooks subscriptions create --account acme --url https://crm.example.com/hooks
//	userhooks subscriptions list --account acme
//
// Errors go to stderr with a non-zero exit status; --json prints results as
// JSON for scripts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/temporalconn"
	"github.com/userhooks/userhooks/workflows"
)

const usage = `usage: userhooks <command> [flags]

commands:
  publish                         publish a user event
  subscriptions create|list|get|enable|disable|delete
                                  manage subscriptions in the store

Run "userhooks <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "userhooks:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue), errors.Is(err, event.ErrInvalid):
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	switch args[0] {
	case "publish":
		return publish(ctx, args[1:], stdin, stdout)
	case "subscriptions", "subscription", "subs":
		return subscriptions(ctx, args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q\n\n%s", args[0], usage)}
}

func publish(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	tc := temporalconn.FromEnv(workflows.TaskQueue)
	tc.RegisterFlags(fs)
	var (
		file, id, typ, account, userID, email, name, username string
		roles, previous                                       string
		asJSON                                                bool
	)
	fs.StringVar(&file, "file", "", "read the whole event (JSON envelope) from this file, - for stdin")
	fs.StringVar(&id, "id", "", "event ID (idempotency key); a UUIDv7 when empty")
	fs.StringVar(&typ, "type", "", "user.created, user.updated or user.deleted")
	fs.StringVar(&account, "account", "", "account ID the user belongs to")
	fs.StringVar(&userID, "user-id", "", "user ID")
	fs.StringVar(&email, "email", "", "user email")
	fs.StringVar(&name, "name", "", "user display name")
	fs.StringVar(&username, "username", "", "user login name")
	fs.StringVar(&roles, "roles", "", "comma-separated roles")
	fs.StringVar(&previous, "previous", "", `user.updated: JSON object of changed fields and their previous values, e.g. '{"email":"old@example.com"}'`)
	fs.BoolVar(&asJSON, "json", false, "print the receipt as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var e event.Event
	if file != "" {
		var body []byte
		var err error
		if file == "-" {
			body, err = io.ReadAll(io.LimitReader(stdin, event.MaxBodyBytes+1))
		} else {
			body, err = os.ReadFile(file)
		}
		if err != nil {
			return fmt.Errorf("read event: %w", err)
		}
		// ID and timestamp may be left out of the file; Decode would
		// reject them as missing, so fill them in first.
		if e, err = decodeDraft(body); err != nil {
			return err
		}
	} else {
		e = event.Event{ID: id, Type: event.Type(typ), AccountID: account, Data: event.Data{User: event.User{
			ID: userID, Email: email, Name: name, Username: username, Roles: splitList(roles),
		}}}
		if previous != "" {
			if err := json.Unmarshal([]byte(previous), &e.Data.PreviousAttributes); err != nil {
				return usageError{fmt.Sprintf("--previous must be a JSON object: %v", err)}
			}
		}
	}
	// Validate before connecting: bad input is reported without a server.
	if _, err := event.Prepare(e, time.Now()); err != nil {
		return err
	}
	c, err := tc.Dial(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := starter.New(c, starter.Options{TaskQueue: tc.TaskQueue}).Publish(ctx, e)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, r)
	}
	verb := "Published"
	if r.Duplicate {
		verb = "Already published (nothing new started)"
	}
	fmt.Fprintf(stdout, "%s %s %s\n  workflow  %s\n  run       %s\n", verb, r.Event.Type, r.Event.ID, r.WorkflowID, r.RunID)
	return nil
}

// decodeDraft reads an event that may lack ID and timestamp.
func decodeDraft(body []byte) (event.Event, error) {
	var e event.Event
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, &event.ValidationError{Problems: []string{"event file is not a valid event: " + err.Error()}}
	}
	return e, nil
}

func subscriptions(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: userhooks subscriptions create|list|get|enable|disable|delete [flags]"}
	}
	verb := args[0]
	fs := flag.NewFlagSet("subscriptions "+verb, flag.ContinueOnError)
	var (
		storePath, account, url, types, desc, id, scheduleJSON string
		asJSON                                                 bool
	)
	fs.StringVar(&storePath, "store", envOr("USERHOOKS_STORE", ".userhooks/userhooks.db"), "SQLite store file (env USERHOOKS_STORE)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	switch verb {
	case "create":
		fs.StringVar(&account, "account", "", "account ID (required)")
		fs.StringVar(&url, "url", "", "receiver URL (required)")
		fs.StringVar(&types, "types", "", "comma-separated event types; all when empty")
		fs.StringVar(&desc, "description", "", "free text")
		fs.StringVar(&scheduleJSON, "schedule", "", `retry schedule override as JSON, e.g. '{"delays":["10s","1m"],"jitter":0.1,"min_retry_after":"1s","max_retry_after":"1h"}'`)
	case "list":
		fs.StringVar(&account, "account", "", "account ID (required)")
	case "get", "enable", "disable", "delete":
		fs.StringVar(&id, "id", "", "subscription ID (required)")
	default:
		return usageError{fmt.Sprintf("unknown subscriptions command %q", verb)}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	required := map[string]string{"account": account, "url": url, "id": id}
	for flagName, v := range required {
		if fs.Lookup(flagName) != nil && v == "" && !(verb == "create" && flagName == "id") {
			return usageError{fmt.Sprintf("--%s is required", flagName)}
		}
	}
	store, err := subscription.OpenSQLite(storePath)
	if err != nil {
		return err
	}
	defer store.Close()

	switch verb {
	case "create":
		secret, err := signature.GenerateSecret()
		if err != nil {
			return err
		}
		s := subscription.Subscription{AccountID: account, URL: url, EventTypes: splitList(types), Description: desc, Enabled: true,
			Secrets: []subscription.Secret{{Key: secret}}}
		if scheduleJSON != "" {
			s.Schedule = new(delivery.Schedule)
			if err := json.Unmarshal([]byte(scheduleJSON), s.Schedule); err != nil {
				return usageError{fmt.Sprintf("--schedule: %v", err)}
			}
		}
		if err := store.Create(ctx, &s); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, struct {
				subscriptionView
				Secret string `json:"secret"`
			}{view(s), secret.Reveal()})
		}
		fmt.Fprintf(stdout, "Created subscription %s\n  secret  %s\n(the secret is shown only now: give it to the receiver)\n", s.ID, secret.Reveal())
		return nil
	case "list":
		var all []subscriptionView
		for after := ""; ; {
			page, err := store.List(ctx, account, after, 500)
			if err != nil {
				return err
			}
			for _, s := range page {
				all = append(all, view(s))
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].ID
		}
		if asJSON {
			return writeJSON(stdout, all)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tENABLED\tTYPES\tURL")
		for _, s := range all {
			fmt.Fprintf(tw, "%s\t%t\t%s\t%s\n", s.ID, s.Enabled, orAll(s.EventTypes), s.URL)
		}
		return tw.Flush()
	case "get":
		s, err := store.Get(ctx, id)
		if err != nil {
			return err
		}
		return writeJSON(stdout, view(s))
	case "enable", "disable":
		if err := store.SetEnabled(ctx, id, verb == "enable"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Subscription %s %sd\n", id, verb)
		return nil
	default: // delete
		if err := store.Delete(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Subscription %s deleted\n", id)
		return nil
	}
}

// subscriptionView is a subscription as the CLI shows it: without secrets.
type subscriptionView struct {
	ID          string             `json:"id"`
	AccountID   string             `json:"account_id"`
	URL         string             `json:"url"`
	EventTypes  []string           `json:"event_types"`
	Description string             `json:"description,omitempty"`
	Enabled     bool               `json:"enabled"`
	Schedule    *delivery.Schedule `json:"schedule,omitempty"`
	Secrets     int                `json:"secrets"`
	CreatedAt   time.Time          `json:"created_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
}

func view(s subscription.Subscription) subscriptionView {
	return subscriptionView{ID: s.ID, AccountID: s.AccountID, URL: s.URL, EventTypes: s.EventTypes, Description: s.Description,
		Enabled: s.Enabled, Schedule: s.Schedule, Secrets: len(s.Secrets), CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

func orAll(types []string) string {
	if len(types) == 0 {
		return "(all)"
	}
	return strings.Join(types, ",")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
