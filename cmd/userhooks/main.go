// Command userhooks is the shell client of userhooks. What a platform team
// does day to day goes through the HTTP API, authenticated by an API key and
// scoped to its account:
//
//	userhooks publish --type user.created --user-id u_42 --email ada@example.com
//	userhooks subscriptions create --url https://crm.example.com/hooks --types user.created,user.deleted
//	userhooks subscriptions rotate-secret --id SUB --overlap 48h
//	userhooks deliveries list --subscription SUB --status failed --since 24h
//	userhooks deliveries show --event EVT --subscription SUB
//
// The API is at --api-url (env USERHOOKS_API_URL, default
// http://127.0.0.1:8000, where `worker dev` serves it). The key comes from
// the file named by --api-key-file, else from USERHOOKS_API_KEY, else from
// the file named by USERHOOKS_API_KEY_FILE or .userhooks/api-key (where
// `worker dev` writes one); no flag takes the key itself, since command
// lines are visible to other users.
//
// Operator tasks work on the database directly, --store (env
// USERHOOKS_STORE, default .userhooks/userhooks.db):
//
//	userhooks apikeys create --account acme --name "billing service"
//	userhooks apikeys list --account acme
//	userhooks apikeys revoke --account acme --id KEY_ID
//	userhooks codec-keys generate --id k2026
//
// Results print as aligned tables, or with --json as JSON for scripts (the
// API's answer as it came, where there is one). Errors go to stderr, with
// the API's explanation; with --json, a refusal by the API also prints its
// problem document (RFC 9457) to stdout, as it came. The exit status is 0 on success and for -h; 2 when
// the command is called wrongly or its input is invalid, whether the CLI or
// the API (400, 413, 422) found it, and nothing was changed; 1 for anything
// else (401, 404, 409, 5xx, an API that cannot be reached).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/subscription"
)

const usage = `usage: userhooks <command> [flags]

Through the HTTP API (--api-url, key from USERHOOKS_API_KEY or .userhooks/api-key):
  publish                      publish a user event
  subscriptions <command>      create, list, get, update, enable, disable,
                               rotate-secret, delete
  deliveries <command>         list, show, redeliver, cancel, retry, recover

Operator tasks, on the database (--store, env USERHOOKS_STORE):
  apikeys <command>            create, list, revoke API keys
  codec-keys generate          print a new payload encryption key, for
                               USERHOOKS_CODEC_KEYS or a keys file

-h lists a command's flags; --json prints JSON for scripts (all but codec-keys),
and with it the API's problem document, on stdout, when the API refuses.
Exit status: 0 done, 2 invalid input (nothing was changed), 1 anything else.
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
		var ae *apiError
		if errors.As(err, &ae) && ae.printProblem && ae.problem != nil {
			// For scripts: the API's explanation in its own words, where
			// --json output goes. The exit status says it failed.
			if werr := writeRaw(stdout, ae.problem); werr != nil {
				fmt.Fprintln(stderr, "userhooks:", werr)
			}
		}
		fmt.Fprintln(stderr, "userhooks:", err)
	}
	return exitCode(err)
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCode maps the result of run to the process's exit status: 0 for
// success and help, 2 for a wrong call or input found invalid (by the CLI
// or by the API), 1 otherwise.
func exitCode(err error) int {
	var (
		ue   usageError
		ae   *apiError
		serr *subscription.ValidationError
		kerr *apikey.ValidationError
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ae):
		if ae.badInput() {
			return 2
		}
		return 1
	case errors.As(err, &ue), errors.Is(err, event.ErrInvalid), errors.As(err, &serr), errors.As(err, &kerr):
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
	case "deliveries", "delivery":
		return deliveries(ctx, args[1:], stdout)
	case "apikeys", "apikey", "api-keys":
		return apiKeys(ctx, args[1:], stdout)
	case "codec-keys":
		return codecKeys(args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q\n\n%s", args[0], usage)}
}

// subcommand picks the command of a group (subscriptions, deliveries,
// apikeys): help for -h, a usageError for a missing or unknown one.
func subcommand(group string, args []string, groupUsage string, stdout io.Writer, known ...string) (string, error) {
	if len(args) == 0 {
		return "", usageError{fmt.Sprintf("missing %s command\n\n%s", group, groupUsage)}
	}
	switch verb := args[0]; verb {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, groupUsage)
		return "", flag.ErrHelp
	default:
		for _, k := range known {
			if verb == k {
				return verb, nil
			}
		}
		return "", usageError{fmt.Sprintf("unknown %s command %q\n\n%s", group, verb, groupUsage)}
	}
}

// command is one command's flags, some of them required.
type command struct {
	fs       *flag.FlagSet
	required []string
}

func newCommand(name string) *command {
	return &command{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
}

// requiredString declares a flag the command cannot run without.
func (c *command) requiredString(p *string, name, usage string) {
	c.fs.StringVar(p, name, "", usage+" (required)")
	c.required = append(c.required, name)
}

// given reports whether the flag was set on the command line.
func (c *command) given(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// parse parses args and checks that every required flag has a value.
func (c *command) parse(args []string, stdout io.Writer) error {
	if err := parseFlags(c.fs, args, stdout); err != nil {
		return err
	}
	var missing []string
	for _, name := range c.required {
		if c.fs.Lookup(name).Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return usageError{fmt.Sprintf("%s: missing required %s\n\n%s", c.fs.Name(), strings.Join(missing, ", "), flagsUsage(c.fs))}
	}
	return nil
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

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
