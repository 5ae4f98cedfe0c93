// Command userhooks publishes events and manages subscriptions from a shell.
//
//	userhooks publish --account acme --type user.created --user-id u_42 --email ada@example.com
//	userhooks publish --file event.json
//	userhooks subscriptions create --account acme --url https://crm.example.com/hooks
//	userhooks subscriptions list --account acme
//
// Errors go to stderr. The exit status is 0 on success and for -h, 2 when the
// command is called wrongly or its input is invalid (nothing was changed or
// sent), and 1 for any other failure. --json prints results as JSON for
// scripts.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/subscription/stores"
	"github.com/userhooks/userhooks/temporalconn"
	"github.com/userhooks/userhooks/workflows"
)

const usage = `usage: userhooks <command> [flags]

commands:
  publish                         publish a user event
  subscriptions create|list|get|enable|disable|delete
                                  manage subscriptions in the store
  codec-keys generate [--id ID]   print a new payload encryption key, for
                                  USERHOOKS_CODEC_KEYS or a keys file

Run "userhooks <command> -h" for the flags of a command.
`

const subscriptionsUsage = `usage: userhooks subscriptions <command> [flags]

commands:
  create   --account ACCOUNT --url URL [--types T1,T2] [--description TEXT] [--schedule JSON]
  list     --account ACCOUNT
  get      --id ID
  enable   --id ID
  disable  --id ID
  delete   --id ID

Every command takes --store (env USERHOOKS_STORE) and --json.
Run "userhooks subscriptions <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs the command, reports its error on stderr and returns the exit
// status. Help asked for with -h is not an error.
func cli(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdin, stdout)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "userhooks:", err)
	}
	return exitCode(err)
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCode maps the result of run to the process's exit status: 0 for
// success and help, 2 for a wrong call or invalid input, 1 otherwise.
func exitCode(err error) int {
	var (
		ue   usageError
		verr *subscription.ValidationError
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue), errors.Is(err, event.ErrInvalid), errors.As(err, &verr):
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"missing command\n\n" + usage}
	}
	switch args[0] {
	case "publish":
		return publish(ctx, args[1:], stdin, stdout)
	case "subscriptions", "subscription", "subs":
		return subscriptions(ctx, args[1:], stdout)
	case "codec-keys":
		return codecKeys(args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q\n\n%s", args[0], usage)}
}

// parseFlags parses args into fs. With -h it prints the flags to stdout and
// returns flag.ErrHelp. A flag it does not know, a bad flag value or a stray
// argument (which would make flag stop parsing and silently drop every flag
// after it) is a usageError that lists the flags.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard) // errors are returned, help goes to stdout
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, flagsUsage(fs))
		return err
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q (flags take the form --name=value)", fs.Arg(0))
	}
	if err != nil {
		return usageError{fmt.Sprintf("%s: %v\n\n%s", fs.Name(), err, flagsUsage(fs))}
	}
	return nil
}

func flagsUsage(fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: userhooks %s [flags]\n\nflags:\n", fs.Name())
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// eventFlags are the publish flags that describe the event; --file replaces
// them all.
var eventFlags = []string{"id", "type", "account", "user-id", "email", "name", "username", "roles", "previous"}

func publish(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	tc := temporalconn.FromEnv(workflows.TaskQueue)
	if tc.CodecKeys == "" && tc.CodecKeysFile == "" && !tc.PlaintextHistory {
		// Like --store, default to what `worker dev` made in .userhooks.
		if _, err := os.Stat(devCodecKeysFile); err == nil {
			tc.CodecKeysFile = devCodecKeysFile
		}
	}
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
	if err := parseFlags(fs, args, stdout); err != nil {
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
	if _, err := tc.Keyring(); err != nil {
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

// devCodecKeysFile is where `worker dev` keeps its payload encryption keys.
const devCodecKeysFile = ".userhooks/codec.keys"

// codecKeys prints a new payload encryption key as KEYID:BASE64KEY.
func codecKeys(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "generate" {
		return usageError{"usage: userhooks codec-keys generate [--id ID]"}
	}
	fs := flag.NewFlagSet("codec-keys generate", flag.ContinueOnError)
	id := fs.String("id", "k"+time.Now().UTC().Format("20060102"), "key ID, stored with every payload it encrypts")
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		return err
	}
	// Validate the ID the way a keyring will when it is read back.
	line := payloadcodec.FormatKey(*id, key)
	if _, err := payloadcodec.ParseKeyring(line); err != nil {
		return usageError{fmt.Sprintf("--id: %v", err)}
	}
	fmt.Fprintln(stdout, line)
	return nil
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

// decodeDraft reads an event that may lack ID and timestamp. Like
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

func subscriptions(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"missing subscriptions command\n\n" + subscriptionsUsage}
	}
	verb := args[0]
	fs := flag.NewFlagSet("subscriptions "+verb, flag.ContinueOnError)
	var (
		storePath, account, url, types, desc, id, scheduleJSON string
		asJSON                                                 bool
		required                                               []string
	)
	// requiredString declares a flag the command cannot run without.
	requiredString := func(p *string, name, usage string) {
		fs.StringVar(p, name, "", usage+" (required)")
		required = append(required, name)
	}
	fs.StringVar(&storePath, "store", envOr("USERHOOKS_STORE", ".userhooks/userhooks.db"), "subscription store: "+stores.Supported+" (env USERHOOKS_STORE)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	switch verb {
	case "create":
		requiredString(&account, "account", "account ID")
		requiredString(&url, "url", "receiver URL")
		fs.StringVar(&types, "types", "", "comma-separated event types; all when empty")
		fs.StringVar(&desc, "description", "", "free text")
		fs.StringVar(&scheduleJSON, "schedule", "", `retry schedule override as JSON, e.g. '{"delays":["10s","1m"],"jitter":0.1,"max_retry_after":"1h"}'`)
	case "list":
		requiredString(&account, "account", "account ID")
	case "get", "enable", "disable", "delete":
		requiredString(&id, "id", "subscription ID")
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, subscriptionsUsage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown subscriptions command %q\n\n%s", verb, subscriptionsUsage)}
	}
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	var missing []string
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return usageError{fmt.Sprintf("%s: missing required %s\n\n%s", fs.Name(), strings.Join(missing, ", "), flagsUsage(fs))}
	}

	var (
		s      subscription.Subscription
		secret signature.Secret
	)
	if verb == "create" {
		// Check everything before touching the store, so bad input leaves
		// no trace, not even a new database file.
		var err error
		if s, secret, err = newSubscription(account, url, types, desc, scheduleJSON); err != nil {
			return err
		}
		// The default store lives in .userhooks/, which may not exist yet.
		if path, ok := stores.SQLitePath(storePath); ok {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("create directory of subscription store: %w", err)
			}
		}
	} else if path, ok := stores.SQLitePath(storePath); ok {
		// Only create makes a store: a mistyped --store must not leave an
		// empty database behind and report "not found".
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no subscription store at %s (create a subscription first, or check --store / USERHOOKS_STORE): %w", path, err)
		}
	}
	store, err := stores.Open(ctx, storePath)
	if err != nil {
		return err
	}
	defer store.Close()

	switch verb {
	case "create":
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
		all := []subscriptionView{} // [] rather than null for scripts
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

// newSubscription builds and validates an enabled subscription with a new
// secret from the flags of subscriptions create.
func newSubscription(account, url, types, desc, scheduleJSON string) (subscription.Subscription, signature.Secret, error) {
	secret, err := signature.GenerateSecret()
	if err != nil {
		return subscription.Subscription{}, signature.Secret{}, err
	}
	s := subscription.Subscription{AccountID: account, URL: url, EventTypes: splitList(types), Description: desc, Enabled: true,
		Secrets: []subscription.Secret{{Key: secret}}}
	if scheduleJSON != "" {
		if s.Schedule, err = parseSchedule(scheduleJSON); err != nil {
			return subscription.Subscription{}, signature.Secret{}, err
		}
	}
	if err := s.Validate(); err != nil {
		return subscription.Subscription{}, signature.Secret{}, err
	}
	return s, secret, nil
}

// parseSchedule reads a --schedule value. Unknown fields are refused: a
// misspelt "delays" would otherwise give a schedule without retries.
func parseSchedule(text string) (*delivery.Schedule, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	var sch *delivery.Schedule
	if err := dec.Decode(&sch); err != nil {
		return nil, usageError{fmt.Sprintf("--schedule is not a valid retry schedule: %v", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, usageError{"--schedule has data after the schedule object"}
	}
	if sch == nil {
		return nil, usageError{`--schedule must be a JSON object such as '{"delays":["10s","1m"]}'`}
	}
	return sch, nil
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
