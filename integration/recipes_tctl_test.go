package integration

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// What tctl v1 (deprecated; github.com/temporalio/tctl, package cli_curr,
// which `tctl` runs) declares for the commands the recipes use; only the
// flags the recipes may need are listed:
//
//   - app.go: the global flags, --address/--ad, --namespace/--ns,
//     --codec_endpoint and --codec_auth (the namespace goes to the codec
//     server with each request);
//   - workflow.go: the workflow subcommands and their flags; `cancel` and
//     `signal` take --query, --reason and --yes, and with --query run a
//     batch job (workflowCommands.go: CancelWorkflow → BatchCancelV2, which
//     counts the workflows and asks to confirm unless --yes);
//     `list` takes the flags of getFlagsForList (flags.go), among them
//     --query/-q;
//   - flags.go: names and aliases, e.g. FlagWorkflowIDWithAlias =
//     "workflow_id, wid, w", FlagNameWithAlias = "name, n" (so -n is the
//     signal name there, not the namespace), FlagResetType = "reset_type";
//   - resetTypesMap: the values of --reset_type.
//
// The same commands are documented at https://docs.temporal.io/tctl-v1/workflow
// ("tctl v1.17 workflow command reference"). tctl parses with urfave/cli
// v1: a name or alias takes one dash or two, and global flags go before
// the command.
//
// Each flag maps to the long name of the `temporal` flag that asks for the
// same thing (temporalcli/commands.gen.go of the CLI), so that the two
// spellings of a recipe can be compared.
var (
	tctlGlobalFlags = tctlFlags{
		"address, ad": "address", "namespace, ns": "namespace",
		"codec_endpoint": "codec-endpoint", "codec_auth": "codec-auth",
	}
	tctlCommands = map[string]tctlFlags{
		"workflow list": {"query, q": "query"},
		"workflow show": {"workflow_id, wid, w": "workflow-id", "run_id, rid, r": "run-id"},
		"workflow signal": {"workflow_id, wid, w": "workflow-id", "run_id, rid, r": "run-id", "query": "query",
			"name, n": "name", "input, i": "input", "reason": "reason", "yes": "yes"},
		"workflow cancel": {"workflow_id, wid, w": "workflow-id", "run_id, rid, r": "run-id", "query": "query",
			"reason": "reason", "yes": "yes"},
		"workflow reset": {"workflow_id, wid, w": "workflow-id", "run_id, rid, r": "run-id", "event_id": "event-id",
			"reason": "reason", "reset_type": "type"},
	}
	// tctlResetTypes are the values tctl's --reset_type takes.
	tctlResetTypes = []string{"FirstWorkflowTask", "LastWorkflowTask", "LastContinuedAsNew", "BadBinary"}
	// temporalShortFlags are the `temporal` CLI's one-letter aliases that
	// the recipes may use.
	temporalShortFlags = map[string]string{
		"w": "workflow-id", "r": "run-id", "q": "query", "n": "namespace",
		"t": "type", "e": "event-id", "i": "input", "y": "yes", "o": "output",
	}
)

// tctlFlags maps tctl flag names, as tctl declares them ("name, alias"),
// to `temporal` flag names.
type tctlFlags map[string]string

// lookup returns the `temporal` name of a tctl flag given as on a command
// line.
func (f tctlFlags) lookup(arg string) (string, bool) {
	name := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	for decl, temporalName := range f {
		if slices.Contains(strings.Split(decl, ", "), name) {
			return temporalName, true
		}
	}
	return "", false
}

// parseFlags reads args, flags only, into options by `temporal` flag name;
// lookup names each flag, or says it is unknown. "yes" is the one flag
// without a value.
func parseFlags(args []string, lookup func(string) (string, bool)) (map[string]string, error) {
	opts := map[string]string{}
	for i := 0; i < len(args); i++ {
		arg, value, hasValue := strings.Cut(args[i], "=")
		name, ok := lookup(arg)
		switch {
		case !strings.HasPrefix(arg, "-"):
			return nil, fmt.Errorf("unexpected argument %q", arg)
		case !ok:
			return nil, fmt.Errorf("unknown flag %s", arg)
		case name == "yes":
			value = "true"
		case !hasValue && i+1 < len(args):
			i++
			value = args[i]
		case !hasValue:
			return nil, fmt.Errorf("flag %s has no value", arg)
		}
		if _, dup := opts[name]; dup {
			return nil, fmt.Errorf("flag %s given twice", arg)
		}
		opts[name] = value
	}
	return opts, nil
}

// tctlCommand checks a tctl line against tctl's declarations and returns
// its command (such as "workflow show") and options by `temporal` name.
func tctlCommand(line string) (string, map[string]string, error) {
	words, err := shellWords(line)
	if err != nil {
		return "", nil, err
	}
	words = words[1:] // "tctl"
	n := 0            // global flags (all take a value) before the command
	for n < len(words) && strings.HasPrefix(words[n], "-") {
		if strings.Contains(words[n], "=") {
			n++
		} else {
			n += 2
		}
	}
	if n+2 > len(words) {
		return "", nil, errors.New("no command")
	}
	opts, err := parseFlags(words[:n], tctlGlobalFlags.lookup)
	if err != nil {
		return "", nil, fmt.Errorf("global flags (before the command): %w", err)
	}
	command := words[n] + " " + words[n+1]
	flags, ok := tctlCommands[command]
	if !ok {
		return "", nil, fmt.Errorf("%q is not one of the tctl commands this test knows: %q", command, slices.Sorted(maps.Keys(tctlCommands)))
	}
	cmdOpts, err := parseFlags(words[n+2:], flags.lookup)
	if err != nil {
		return "", nil, fmt.Errorf("tctl %s: %w", command, err)
	}
	for k, v := range cmdOpts {
		if _, dup := opts[k]; dup {
			return "", nil, fmt.Errorf("%s given as a global flag and a flag of the command", k)
		}
		opts[k] = v
	}
	if t, ok := opts["type"]; ok && !slices.Contains(tctlResetTypes, t) {
		return "", nil, fmt.Errorf("--reset_type %s is not one of %q", t, tctlResetTypes)
	}
	return command, opts, nil
}

func TestRecipes_TctlSpellingsMatchItsDocumentation(t *testing.T) {
	for _, r := range readREADMERecipes(t) {
		t.Run(r.title, func(t *testing.T) {
			tctlCmd, tctlOpts, err := tctlCommand(r.tctl)
			if err != nil {
				t.Fatalf("%s: %v", r.tctl, err)
			}
			words, err := shellWords(r.temporal)
			if err != nil || len(words) < 3 {
				t.Fatalf("%s: not a temporal command (%v)", r.temporal, err)
			}
			temporalOpts, err := parseFlags(words[3:], func(arg string) (string, bool) {
				if long, ok := strings.CutPrefix(arg, "--"); ok {
					return long, true // the CLI itself checks these: the recipe runs
				}
				name, ok := temporalShortFlags[strings.TrimPrefix(arg, "-")]
				return name, ok
			})
			if err != nil {
				t.Fatalf("%s: %v", r.temporal, err)
			}
			if temporalCmd := words[1] + " " + words[2]; tctlCmd != temporalCmd || !maps.Equal(tctlOpts, temporalOpts) {
				t.Errorf("the two spellings ask for different things:\n  temporal %s %v\n  tctl %s %v", temporalCmd, temporalOpts, tctlCmd, tctlOpts)
			}
		})
	}
}
