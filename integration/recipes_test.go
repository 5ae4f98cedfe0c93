package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	batchpb "go.temporal.io/api/batch/v1"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/devserver"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/workflows"
)

// The README section "Operating deliveries with the Temporal CLI" is a list
// of recipes: in its ```sh blocks, a "# title" line, the recipe's `temporal`
// line, and the same in `tctl`. The README is the only copy of those
// commands: the tests below read them from it, so a recipe edited there is
// tested as edited.
//
//   - TestRecipes_EveryREADMERecipeIsTested: every README recipe has a test
//     in recipeTests, and every test a recipe.
//   - TestRecipes_RunAgainstTheServer: every `temporal` line runs, its
//     placeholders filled, with the real CLI against the in-process server,
//     beside the same operation through the Go SDK; both must have the
//     effect the README promises.
//   - TestRecipes_TctlSpellingsMatchItsDocumentation (recipes_tctl_test.go):
//     tctl is not installable here, so every `tctl` line is checked against
//     the commands and flags tctl declares, and must ask for what the
//     `temporal` line asks.
//   - TestRecipes_TestScriptInstallsTheCLI: `make test` installs the CLI.

const recipesSection = "## Operating deliveries with the Temporal CLI"

// Placeholders in the README's recipes. exampleSince is the example time of
// the "since" recipe, filled like a placeholder.
const (
	phSub        = "<sub ID>"
	phEvent      = "<event ID>"
	exampleSince = "2026-11-23T00:00:00Z"
)

// recipeTests holds the test of each README recipe, by its title.
var recipeTests = map[string]func(x *recipeRun){
	"Failed deliveries of a subscription since a time":                testFailedSince,
	"Deliveries of one event":                                         testDeliveriesOfEvent,
	"The attempt log of a delivery":                                   testAttemptLog,
	"Retry now, skipping the wait":                                    testRetryNow,
	"Cancel one delivery":                                             testCancelDelivery,
	"Cancel an event, and with it its running deliveries":             testCancelEvent,
	"Cancel every running delivery of a subscription, as a batch job": testBatchCancel,
	"Redeliver: reset a finished delivery to its start":               testReset,
	"The attempt log, decrypted by the codec server of worker dev":    testAttemptLogDecrypted,
}

// recipe is one README recipe, its commands as the README prints them.
type recipe struct {
	title, temporal, tctl string
}

// readREADMERecipes returns the recipes of the README's section, in order.
// Every non-blank line of the section's ```sh blocks must be a "# title",
// or the one `temporal` or the one `tctl` line of the recipe above it, so
// that nothing there escapes the tests.
func readREADMERecipes(t *testing.T) []recipe {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+recipesSection+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", recipesSection)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var out []recipe
	inBlock := false
	for _, line := range strings.Split(section, "\n") {
		line = strings.TrimSpace(line)
		var last *recipe
		if len(out) > 0 {
			last = &out[len(out)-1]
		}
		switch {
		case line == "```sh" || line == "```":
			inBlock = line == "```sh"
		case !inBlock || line == "":
		case strings.HasPrefix(line, "# "):
			out = append(out, recipe{title: strings.TrimPrefix(line, "# ")})
		case last != nil && last.temporal == "" && strings.HasPrefix(line, "temporal "):
			last.temporal = line
		case last != nil && last.tctl == "" && strings.HasPrefix(line, "tctl "):
			last.tctl = line
		default:
			t.Fatalf("README.md, %s: %q is not a \"# title\", nor the one `temporal` or `tctl` line of a recipe; the recipe tests cannot check it", recipesSection, line)
		}
	}
	if len(out) == 0 {
		t.Fatalf("README.md: no recipes in %s", recipesSection)
	}
	for _, r := range out {
		if r.temporal == "" || r.tctl == "" {
			t.Errorf("README.md recipe %q needs a `temporal` line and a `tctl` line", r.title)
		}
	}
	return out
}

func TestRecipes_EveryREADMERecipeIsTested(t *testing.T) {
	inREADME := map[string]bool{}
	for _, r := range readREADMERecipes(t) {
		if inREADME[r.title] {
			t.Errorf("README.md has two recipes titled %q", r.title)
		}
		inREADME[r.title] = true
		if recipeTests[r.title] == nil {
			t.Errorf("README.md recipe %q has no test: add one to recipeTests (integration/recipes_test.go)", r.title)
		}
	}
	for title := range recipeTests {
		if !inREADME[title] {
			t.Errorf("recipeTests tests %q, which README.md does not have (renamed there?)", title)
		}
	}
}

// TestRecipes_TestScriptInstallsTheCLI keeps scripts/test.sh installing the
// CLI version `worker dev` installs, so that `make test` runs the recipes
// with the CLI the README describes.
func TestRecipes_TestScriptInstallsTheCLI(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "scripts", "test.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(devserver.CLIModule)) {
		t.Errorf("scripts/test.sh does not install %s (devserver.CLIModule), the CLI the recipe tests run", devserver.CLIModule)
	}
}

// shellWords splits a command line as sh does for what the recipes use:
// blanks between words, "double" and 'single' quotes. Anything sh would
// expand or interpret is refused rather than guessed.
func shellWords(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quote  rune
	)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == '"' && strings.ContainsRune("$`\\", r):
			return nil, fmt.Errorf("%q inside double quotes in %s: the recipe tests do not expand it", r, line)
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case strings.ContainsRune("$`\\|&;<>()*?[]{}~#", r):
			return nil, fmt.Errorf("shell character %q outside quotes in %s: the recipe tests do not interpret it", r, line)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %s", quote, line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// flagValue returns the value of the first of names in args, given as
// `--name value` or `--name=value`.
func flagValue(args []string, names ...string) (string, bool) {
	for i, a := range args {
		for _, n := range names {
			if a == n && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// setFlag returns args with the value of the flag named by names replaced
// by value, or with names[0] value appended when args do not set it.
func setFlag(args []string, value string, names ...string) []string {
	args = slices.Clone(args)
	for i, a := range args {
		for _, n := range names {
			if a == n && i+1 < len(args) {
				args[i+1] = value
				return args
			}
			if strings.HasPrefix(a, n+"=") {
				args[i] = n + "=" + value
				return args
			}
		}
	}
	return append(args, names[0], value)
}

// findTemporalCLI returns the `temporal` binary where devserver.FindCLI
// looks for it (bin/ of the repository, then PATH), without installing it:
// scripts/test.sh installs it once, before the integration tests. Without
// one it fails the test, saying why the test needs it (need) and how to
// install it.
func findTemporalCLI(t *testing.T, need string) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", "bin", "temporal")); err == nil {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	t.Fatalf("no Temporal CLI in bin/ or on PATH, and %s: run `make test`, "+
		"which installs it, or `GOBIN=$PWD/bin go install %s` (about six minutes the first time)", need, devserver.CLIModule)
	return ""
}

// placeholder matches a placeholder left unfilled.
var placeholder = regexp.MustCompile(`<[^<>]+>`)

// recipeRun is one recipe's test.
type recipeRun struct {
	t   *testing.T
	bin string // the temporal CLI
	recipe
}

// words returns the recipe's `temporal` line split as sh would, its
// placeholders replaced (oldnew as strings.NewReplacer takes them).
func (x *recipeRun) words(oldnew ...string) []string {
	x.t.Helper()
	line := strings.NewReplacer(oldnew...).Replace(x.temporal)
	if p := placeholder.FindString(line); p != "" {
		x.t.Fatalf("placeholder %s of %q is not filled", p, x.temporal)
	}
	words, err := shellWords(line)
	if err != nil {
		x.t.Fatal(err)
	}
	return words
}

// runCLI runs a filled `temporal` line, plus extra, against the test
// server and returns its standard output; stdin answers its prompts. The
// README's namespace (worker dev's "default") is replaced by the test
// server's. The user's CLI configuration stays out: no TEMPORAL_*
// variables, HOME in a temporary directory.
func (x *recipeRun) runCLI(words []string, stdin string, extra ...string) []byte {
	x.t.Helper()
	if len(words) == 0 || words[0] != "temporal" {
		x.t.Fatalf("not a temporal command: %q", words)
	}
	args := append(slices.Clone(words[1:]), extra...)
	args = append(args, "--address", server.GetFrontendHostPort())
	args = setFlag(args, server.GetDefaultNamespace(), "--namespace", "-n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, x.bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TEMPORAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	home := x.t.TempDir()
	cmd.Env = append(cmd.Env, "HOME="+home, "XDG_CONFIG_HOME="+home)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	x.t.Logf("$ temporal %q", args)
	if err := cmd.Run(); err != nil {
		x.t.Fatalf("temporal %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

func TestRecipes_RunAgainstTheServer(t *testing.T) {
	bin := findTemporalCLI(t, "the README's recipes are tested with it")
	for _, r := range readREADMERecipes(t) {
		t.Run(r.title, func(t *testing.T) {
			test := recipeTests[r.title]
			if test == nil {
				t.Fatal("no test for this recipe (see TestRecipes_EveryREADMERecipeIsTested)")
			}
			test(&recipeRun{t: t, bin: bin, recipe: r})
		})
	}
}

// waiting is a retry schedule whose retries wait an hour each: within a
// test, a delivery waits until it is signalled or cancelled.
var waiting = &delivery.Schedule{
	Delays:        []delivery.Duration{delivery.Duration(time.Hour), delivery.Duration(time.Hour)},
	MaxRetryAfter: delivery.Duration(time.Hour),
}

// publishNoWait publishes an event without waiting for its deliveries, and
// terminates its workflow (and so its deliveries) when the test ends.
func publishNoWait(e *env, account, userID string) starter.Receipt {
	e.t.Helper()
	r, err := e.publisher.Publish(context.Background(), userCreated(account, userID))
	if err != nil {
		e.t.Fatalf("publish: %v", err)
	}
	e.t.Cleanup(func() {
		// Most have ended by now; the error says so.
		_ = e.client.TerminateWorkflow(context.Background(), r.WorkflowID, "", "test over")
	})
	return r
}

// mustPublish publishes an event, waits for its deliveries and returns
// the event workflow's summary.
func mustPublish(e *env, account, userID string) (starter.Receipt, workflows.Summary) {
	e.t.Helper()
	r, sum, err := e.publishAndWait(userCreated(account, userID))
	if err != nil {
		e.t.Fatalf("event %s: %v", r.WorkflowID, err)
	}
	return r, sum
}

// waitWaiting waits until a delivery has made n attempts and waits on its
// timer for the next one: only then do a retry-now signal or a cancel mean
// what the recipes say.
func waitWaiting(e *env, workflowID string, n int) {
	e.t.Helper()
	waitFor(e.t, 30*time.Second, fmt.Sprintf("%s to wait after attempt %d", workflowID, n), func() bool {
		h, err := e.tryHistory(workflowID)
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return false
		}
		if err != nil {
			e.t.Fatalf("history of %s: %v", workflowID, err)
		}
		timers := 0
		for _, ev := range h {
			if ev.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED {
				timers++
			}
		}
		return timers >= n
	})
}

func waitStatus(e *env, workflowID string, want enumspb.WorkflowExecutionStatus) {
	e.t.Helper()
	waitFor(e.t, 30*time.Second, fmt.Sprintf("%s to be %s", workflowID, want), func() bool {
		return e.status(workflowID) == want
	})
}

// waitQueryFinds waits until ListWorkflow answers query with exactly the
// workflow IDs want (visibility lags behind history).
func waitQueryFinds(e *env, query string, want ...string) {
	e.t.Helper()
	want = slices.Sorted(slices.Values(want))
	var got []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = got[:0]
		resp, err := e.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			e.t.Fatalf("ListWorkflow(%q): %v", query, err)
		}
		for _, ex := range resp.GetExecutions() {
			got = append(got, ex.GetExecution().GetWorkflowId())
		}
		if slices.Sort(got); slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ListWorkflow(%q) = %q after 30 s, want %q", query, got, want)
		}
	}
}

// listed reads `temporal workflow list -o jsonl` output: the workflow IDs,
// sorted, and the status of each.
func listed(t *testing.T, out []byte) ([]string, map[string]enumspb.WorkflowExecutionStatus) {
	t.Helper()
	var ids []string
	status := map[string]enumspb.WorkflowExecutionStatus{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ex struct {
			Execution struct{ WorkflowID string } `json:"execution"`
			Status    string                      `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ex); err != nil {
			t.Fatalf("temporal workflow list -o jsonl printed a line that is not JSON: %v\n%s", err, out)
		}
		s, err := enumspb.WorkflowExecutionStatusFromString(ex.Status)
		if err != nil {
			t.Fatalf("temporal workflow list: %v", err)
		}
		ids, status[ex.Execution.WorkflowID] = append(ids, ex.Execution.WorkflowID), s
	}
	slices.Sort(ids)
	return ids, status
}

func testFailedSince(x *recipeRun) {
	e := newEnv(x.t)
	const account = "recipes-failed-since"
	rc := newReceiver(x.t, 400, 200, 400)
	sub, _ := e.subscribe(account, rc.srv.URL, nil, fast)
	if _, sum := mustPublish(e, account, "u_1"); sum.Failed != 1 {
		x.t.Fatalf("first event: %+v, want its delivery failed (400)", sum)
	}
	since := time.Now().UTC()
	if _, sum := mustPublish(e, account, "u_2"); sum.Delivered != 1 {
		x.t.Fatalf("second event: %+v, want it delivered", sum)
	}
	r, sum := mustPublish(e, account, "u_3")
	if sum.Failed != 1 {
		x.t.Fatalf("third event: %+v, want its delivery failed (400)", sum)
	}
	want := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
	words := x.words(phSub, sub.ID, exampleSince, since.Format(time.RFC3339Nano))
	query, _ := flagValue(words, "-q", "--query")

	// SDK: the query finds the delivery that failed since T only: not the
	// one that failed before, nor the delivered one.
	waitQueryFinds(e, query, want)

	// CLI: the same.
	ids, status := listed(x.t, x.runCLI(words, "", "-o", "jsonl"))
	if !slices.Equal(ids, []string{want}) || status[want] != enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
		x.t.Errorf("temporal workflow list = %q (statuses %v), want %s, Failed", ids, status, want)
	}
}

func testDeliveriesOfEvent(x *recipeRun) {
	e := newEnv(x.t)
	const account = "recipes-of-event"
	subOK, _ := e.subscribe(account, newReceiver(x.t).srv.URL, nil, fast)
	subRefusing, _ := e.subscribe(account, newReceiver(x.t, 400).srv.URL, nil, fast)
	r, sum := mustPublish(e, account, "u_1")
	if sum.Delivered != 1 || sum.Failed != 1 {
		x.t.Fatalf("event: %+v, want one delivery delivered and one failed", sum)
	}
	mustPublish(e, account, "u_2") // another event: its deliveries must not be listed
	want := []string{workflows.DeliveryWorkflowID(r.Event.ID, subOK.ID), workflows.DeliveryWorkflowID(r.Event.ID, subRefusing.ID)}
	slices.Sort(want)
	words := x.words(phEvent, r.Event.ID)
	query, _ := flagValue(words, "-q", "--query")

	waitQueryFinds(e, query, want...) // SDK: both deliveries, whatever their outcome, and not the event workflow

	if ids, _ := listed(x.t, x.runCLI(words, "", "-o", "jsonl")); !slices.Equal(ids, want) {
		x.t.Errorf("temporal workflow list = %q, want %q", ids, want)
	}
}

// attemptLog returns what an operator reads in a delivery's history: the
// HTTP status of each attempt (from its record: the result of a Deliver
// that succeeded, the details of one that failed; see deliverOutcomes for
// the two shapes) and the failure messages, in order.
func attemptLog(t *testing.T, h []*historypb.HistoryEvent, dc converter.DataConverter) (codes []int, messages []string) {
	t.Helper()
	outcomes, err := deliverOutcomes(h, dc)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outcomes {
		if o.failure != nil {
			messages = append(messages, o.failure.GetMessage())
		}
		if o.record == nil {
			continue
		}
		var rec delivery.Attempt
		if err := dc.FromPayloads(o.record, &rec); err != nil {
			t.Fatalf("event %d: decode the attempt record: %v", o.event.GetEventId(), err)
		}
		codes = append(codes, rec.StatusCode)
	}
	return codes, messages
}

// historyFromCLI reads `temporal workflow show -o json` output.
func historyFromCLI(t *testing.T, out []byte) *historypb.History {
	t.Helper()
	h, err := client.HistoryFromJSON(bytes.NewReader(out), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("temporal workflow show -o json printed what the SDK cannot read: %v\n%s", err, out)
	}
	return h
}

func testAttemptLog(x *recipeRun) {
	e := newEnv(x.t)
	const account = "recipes-attempt-log"
	sub, _ := e.subscribe(account, newReceiver(x.t, 500, 500, 200).srv.URL, nil, fast)
	r, sum := mustPublish(e, account, "u_1")
	if sum.Delivered != 1 {
		x.t.Fatalf("event: %+v, want delivered on the third attempt", sum)
	}
	words := x.words(phEvent, r.Event.ID, phSub, sub.ID)
	id, _ := flagValue(words, "-w", "--workflow-id")
	dc := converter.GetDefaultDataConverter()

	// SDK: the history holds every attempt.
	sdkHistory := e.history(id)
	codes, messages := attemptLog(x.t, sdkHistory, dc)
	if !slices.Equal(codes, []int{500, 500, 200}) || len(messages) != 2 ||
		!strings.Contains(messages[0], "HTTP 500") || !strings.Contains(messages[1], "HTTP 500") {
		x.t.Fatalf("GetWorkflowHistory: attempts %v, failure messages %q; want 500, 500, 200 and two messages naming HTTP 500", codes, messages)
	}

	// CLI: the same history, event for event.
	h := historyFromCLI(x.t, x.runCLI(words, "", "-o", "json"))
	if len(h.GetEvents()) != len(sdkHistory) {
		x.t.Errorf("temporal workflow show: %d events, want %d (as GetWorkflowHistory)", len(h.GetEvents()), len(sdkHistory))
	}
	cliCodes, cliMessages := attemptLog(x.t, h.GetEvents(), dc)
	if !slices.Equal(cliCodes, codes) || !slices.Equal(cliMessages, messages) {
		x.t.Errorf("temporal workflow show: attempts %v, messages %q; want %v, %q", cliCodes, cliMessages, codes, messages)
	}
}

func testRetryNow(x *recipeRun) {
	e := newEnv(x.t)
	const account = "recipes-retry-now"
	rc := newReceiver(x.t, 500, 500, 200)
	sub, secret := e.subscribe(account, rc.srv.URL, nil, waiting)
	rc.verifyWith(secret)
	r := publishNoWait(e, account, "u_1")
	words := x.words(phEvent, r.Event.ID, phSub, sub.ID)
	id, _ := flagValue(words, "-w", "--workflow-id")
	name, _ := flagValue(words, "--name")

	// SDK: the signal makes attempt 2 at once rather than in an hour.
	waitWaiting(e, id, 1)
	if err := e.client.SignalWorkflow(context.Background(), id, "", name, nil); err != nil {
		x.t.Fatal(err)
	}
	rc.waitRequests(2, 30*time.Second)

	// CLI: attempt 3, which the receiver accepts.
	waitWaiting(e, id, 2)
	x.runCLI(words, "")
	var res workflows.DeliveryResult
	if err := e.client.GetWorkflow(context.Background(), id, "").Get(context.Background(), &res); err != nil {
		x.t.Fatalf("delivery: %v", err)
	}
	if res.Status != delivery.StatusDelivered || res.Attempts != 3 {
		x.t.Errorf("delivery ended %s after %d attempts, want delivered after 3", res.Status, res.Attempts)
	}
	for i, g := range rc.requests() {
		if g.Verified != nil || g.Header.Get("webhook-id") != r.Event.ID {
			x.t.Errorf("request %d: webhook-id %q, signature %v; want %s, verified", i+1, g.Header.Get("webhook-id"), g.Verified, r.Event.ID)
		}
	}
}

func testCancelDelivery(x *recipeRun) {
	testCancel(x, 1, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
}

func testCancelEvent(x *recipeRun) {
	testCancel(x, 2, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED)
}

// testCancel runs a cancel recipe that names one workflow: an event with
// subs subscriptions is published for each half, and once every delivery
// waits to retry, the SDK cancels the workflow the recipe names for the
// first event, the CLI for the second. Every delivery must end Canceled
// with no request after its first, and the event workflow end in
// eventStatus (a cancelled delivery does not fail its event; a cancelled
// event cancels its deliveries).
func testCancel(x *recipeRun, subs int, eventStatus enumspb.WorkflowExecutionStatus) {
	e := newEnv(x.t)
	account := "recipes-cancel-" + itoa(subs)
	var (
		subIDs    []string
		receivers []*receiver
	)
	for range subs {
		rc := newReceiver(x.t, 500, 500)
		s, _ := e.subscribe(account, rc.srv.URL, nil, waiting)
		subIDs, receivers = append(subIDs, s.ID), append(receivers, rc)
	}
	for _, half := range []string{"SDK", "CLI"} {
		r := publishNoWait(e, account, "u_"+half)
		var deliveries []string
		for _, s := range subIDs {
			deliveries = append(deliveries, workflows.DeliveryWorkflowID(r.Event.ID, s))
			waitWaiting(e, deliveries[len(deliveries)-1], 1)
		}
		words := x.words(phEvent, r.Event.ID, phSub, subIDs[0])
		id, _ := flagValue(words, "-w", "--workflow-id")
		if half == "SDK" {
			if err := e.client.CancelWorkflow(context.Background(), id, ""); err != nil {
				x.t.Fatal(err)
			}
		} else {
			x.runCLI(words, "")
		}
		for _, d := range deliveries {
			waitStatus(e, d, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED)
		}
		waitStatus(e, r.WorkflowID, eventStatus)
	}
	for i, rc := range receivers {
		if n := len(rc.requests()); n != 2 {
			x.t.Errorf("receiver %d got %d requests, want 2 (one per event, none after the cancel)", i+1, n)
		}
	}
}

func testBatchCancel(x *recipeRun) {
	e := newEnv(x.t)
	const account = "recipes-batch-cancel"
	// Three subscriptions, each receiving both events: the SDK cancels the
	// first's deliveries, the CLI the second's; the third's keep running.
	var subs []string
	for range 3 {
		s, _ := e.subscribe(account, newReceiver(x.t, 500, 500).srv.URL, nil, waiting)
		subs = append(subs, s.ID)
	}
	events := []starter.Receipt{publishNoWait(e, account, "u_1"), publishNoWait(e, account, "u_2")}
	deliveriesOf := func(sub string) []string {
		var ids []string
		for _, r := range events {
			ids = append(ids, workflows.DeliveryWorkflowID(r.Event.ID, sub))
		}
		return ids
	}
	for _, s := range subs {
		for _, id := range deliveriesOf(s) {
			waitWaiting(e, id, 1)
		}
	}
	ctx := context.Background()
	for i, half := range []string{"SDK", "CLI"} {
		words := x.words(phSub, subs[i])
		query, _ := flagValue(words, "-q", "--query")
		reason, _ := flagValue(words, "--reason")
		// A batch job acts on what visibility finds: wait until it finds them.
		waitQueryFinds(e, query, deliveriesOf(subs[i])...)
		var jobID string
		if half == "SDK" {
			jobID = uuid.NewString()
			_, err := e.client.WorkflowService().StartBatchOperation(ctx, &workflowservice.StartBatchOperationRequest{
				Namespace:       server.GetDefaultNamespace(),
				JobId:           jobID,
				VisibilityQuery: query,
				Reason:          reason,
				Operation: &workflowservice.StartBatchOperationRequest_CancellationOperation{
					CancellationOperation: &batchpb.BatchOperationCancellation{Identity: "recipes test"},
				},
			})
			if err != nil {
				x.t.Fatalf("StartBatchOperation: %v", err)
			}
		} else {
			// The CLI asks to confirm; the operator answers y.
			out := x.runCLI(words, "y\n")
			m := regexp.MustCompile(`Started batch for job ID: (\S+)`).FindSubmatch(out)
			if m == nil {
				x.t.Fatalf("temporal workflow cancel --query printed no job ID:\n%s", out)
			}
			jobID = string(m[1])
		}
		waitBatchDone(e, jobID, 2)
		for _, id := range deliveriesOf(subs[i]) {
			waitStatus(e, id, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED)
		}
	}
	for _, id := range deliveriesOf(subs[2]) {
		if s := e.status(id); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			x.t.Errorf("%s is %s, want still running: a batch job reached beyond its query", id, s)
		}
	}
}

// waitBatchDone waits until a batch job has completed with done operations
// and none failed, and until no batch job of the namespace runs any more:
// the server runs one at a time per namespace by default.
func waitBatchDone(e *env, jobID string, done int64) {
	e.t.Helper()
	ctx := context.Background()
	var d *workflowservice.DescribeBatchOperationResponse
	waitFor(e.t, time.Minute, "batch job "+jobID+" to complete", func() bool {
		var err error
		d, err = e.client.WorkflowService().DescribeBatchOperation(ctx, &workflowservice.DescribeBatchOperationRequest{
			Namespace: server.GetDefaultNamespace(), JobId: jobID,
		})
		if err != nil {
			e.t.Fatalf("describe batch job %s: %v", jobID, err)
		}
		return d.GetState() != enumspb.BATCH_OPERATION_STATE_RUNNING
	})
	if d.GetState() != enumspb.BATCH_OPERATION_STATE_COMPLETED || d.GetCompleteOperationCount() != done || d.GetFailureOperationCount() != 0 {
		e.t.Fatalf("batch job %s: %s, %d done, %d failed; want completed, %d done", jobID, d.GetState(), d.GetCompleteOperationCount(), d.GetFailureOperationCount(), done)
	}
	waitFor(e.t, time.Minute, "no batch job to be running", func() bool {
		l, err := e.client.WorkflowService().ListBatchOperations(ctx, &workflowservice.ListBatchOperationsRequest{Namespace: server.GetDefaultNamespace()})
		if err != nil {
			e.t.Fatalf("list batch jobs: %v", err)
		}
		return !slices.ContainsFunc(l.GetOperationInfo(), func(op *batchpb.BatchOperationInfo) bool {
			return op.GetState() == enumspb.BATCH_OPERATION_STATE_RUNNING
		})
	})
}

func testReset(x *recipeRun) {
	e := newEnv(x.t)
	const account = "recipes-reset"
	rc := newReceiver(x.t)
	sub, secret := e.subscribe(account, rc.srv.URL, nil, fast)
	rc.verifyWith(secret)
	r, sum := mustPublish(e, account, "u_1")
	if sum.Delivered != 1 {
		x.t.Fatalf("event: %+v, want delivered", sum)
	}
	words := x.words(phEvent, r.Event.ID, phSub, sub.ID)
	id, _ := flagValue(words, "-w", "--workflow-id")
	reason, _ := flagValue(words, "--reason")
	if typ, _ := flagValue(words, "--type", "-t"); typ != "FirstWorkflowTask" {
		x.t.Fatalf("the recipe resets to %q; this test's SDK half does what FirstWorkflowTask does", typ)
	}
	ctx := context.Background()
	runs := []string{e.describeRun(id)}

	// redelivered checks that a reset made a new run, which delivered the
	// event again as the receiver's n-th request, with the same webhook-id.
	redelivered := func(half string, n int) {
		x.t.Helper()
		run := e.describeRun(id)
		if slices.Contains(runs, run) {
			x.t.Fatalf("%s: the latest run of %s is %s, an old one: no reset happened", half, id, run)
		}
		runs = append(runs, run)
		var res workflows.DeliveryResult
		if err := e.client.GetWorkflow(ctx, id, run).Get(ctx, &res); err != nil || res.Status != delivery.StatusDelivered {
			x.t.Fatalf("%s: the new run ended %+v, %v; want delivered", half, res, err)
		}
		got := rc.waitRequests(n, 30*time.Second)
		if g := got[n-1]; g.Verified != nil || g.Header.Get("webhook-id") != r.Event.ID {
			x.t.Errorf("%s: redelivery with webhook-id %q, signature %v; want the event ID %s, verified", half, g.Header.Get("webhook-id"), g.Verified, r.Event.ID)
		}
	}

	// SDK: reset to the end of the first workflow task, as FirstWorkflowTask.
	h := e.history(id)
	i := slices.IndexFunc(h, func(ev *historypb.HistoryEvent) bool {
		return ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
	})
	if i < 0 {
		x.t.Fatalf("%s has no completed workflow task", id)
	}
	_, err := e.client.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 server.GetDefaultNamespace(),
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: id},
		Reason:                    reason,
		WorkflowTaskFinishEventId: h[i].GetEventId(),
		RequestId:                 uuid.NewString(),
	})
	if err != nil {
		x.t.Fatalf("ResetWorkflowExecution: %v", err)
	}
	redelivered("SDK", 2)

	// CLI: the same, from the run the SDK's reset made.
	x.runCLI(words, "")
	redelivered("CLI", 3)
}

// describeRun returns the run ID of a workflow's latest run.
func (e *env) describeRun(workflowID string) string {
	e.t.Helper()
	d, err := e.client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if err != nil {
		e.t.Fatalf("describe %s: %v", workflowID, err)
	}
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

func testAttemptLogDecrypted(x *recipeRun) {
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		x.t.Fatal(err)
	}
	keys, err := payloadcodec.ParseKeyring(payloadcodec.FormatKey("recipes", key))
	if err != nil {
		x.t.Fatal(err)
	}
	dc := payloadcodec.NewDataConverter(keys)
	c, err := client.Dial(client.Options{HostPort: server.GetFrontendHostPort(), Namespace: server.GetDefaultNamespace(), DataConverter: dc})
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(c.Close)
	e := newEnvWithClient(x.t, c)
	// The codec server as `worker dev` runs it: no token, loopback peers
	// only, the worker's namespace only.
	h, err := payloadcodec.NewHTTPHandler(keys, payloadcodec.HandlerOptions{
		AllowUnauthenticated: true,
		AllowedNamespaces:    []string{server.GetDefaultNamespace()},
	})
	if err != nil {
		x.t.Fatal(err)
	}
	codec := httptest.NewServer(h)
	x.t.Cleanup(codec.Close)

	const account = "recipes-decrypted"
	sub, _ := e.subscribe(account, newReceiver(x.t).srv.URL, nil, fast)
	r, sum := mustPublish(e, account, "u_recipes_codec")
	if sum.Delivered != 1 {
		x.t.Fatalf("event: %+v, want delivered", sum)
	}
	email := r.Event.Data.User.Email
	words := x.words(phEvent, r.Event.ID, phSub, sub.ID)
	// The README's endpoint is worker dev's; runCLI puts the test server's
	// namespace in place of its "default". Both must be in the recipe.
	_, hasNamespace := flagValue(words, "-n", "--namespace")
	if _, hasCodec := flagValue(words, "--codec-endpoint"); !hasCodec || !hasNamespace {
		x.t.Fatalf("the recipe must name the codec endpoint and the namespace: %s", x.temporal)
	}
	words = setFlag(words, codec.URL, "--codec-endpoint")
	id, _ := flagValue(words, "-w", "--workflow-id")

	// SDK: the history as stored is encrypted; the client's data converter
	// decrypts the delivery's input, the event with the email.
	stored := (&env{t: x.t, client: server.GetDefaultClient()}).history(id)
	started := stored[0].GetWorkflowExecutionStartedEventAttributes()
	for _, p := range started.GetInput().GetPayloads() {
		if enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc != payloadcodec.MetadataEncodingEncrypted {
			x.t.Fatalf("the delivery's input is stored as %q, want %q", enc, payloadcodec.MetadataEncodingEncrypted)
		}
	}
	var in workflows.DeliveryInput
	if err := dc.FromPayloads(started.GetInput(), &in); err != nil || in.Event.Data.User.Email != email {
		x.t.Fatalf("decrypting the delivery's input: %v, email %q; want %q", err, in.Event.Data.User.Email, email)
	}

	// CLI: with the codec endpoint, the history it shows holds the email.
	shown := historyFromCLI(x.t, x.runCLI(words, "", "-o", "json"))
	found := slices.ContainsFunc(payloadsIn(shown), func(p *commonpb.Payload) bool {
		return bytes.Contains(p.GetData(), []byte(email))
	})
	if !found {
		x.t.Errorf("temporal workflow show --codec-endpoint: no payload holds the email %q", email)
	}
}
