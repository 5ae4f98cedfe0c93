package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/event"
)

const deliveriesUsage = `usage: userhooks deliveries <command> [flags]

commands (deliveries of the API key's account):
  list       [--subscription ID] [--event ID] [--user ID] [--type TYPE] [--status STATUS]
             [--since TIME] [--until TIME] [--limit N] [--page-token TOKEN]
  show       --event ID --subscription ID [--run ID]
             the delivery and its attempt log
  redeliver  --event ID --subscription ID     deliver a finished delivery again
  cancel     --event ID --subscription ID     stop a running delivery's retries
  retry      --event ID --subscription ID     attempt a waiting delivery now
  recover    --subscription ID --since TIME   redeliver what failed since TIME

TIME is an RFC 3339 time (2026-11-23T09:00:00Z), a date (2026-11-23, UTC),
or a duration back from now (90m, 36h, 7d).
Every command takes --api-url, --api-key-file and --json.
Run "userhooks deliveries <command> -h" for the flags of a command.
`

// maxListLimit is the most deliveries one list prints.
const maxListLimit = 1000

// deliveryStatuses are the values of --status.
var deliveryStatuses = []string{"pending", "retrying", "delivered", "failed", "canceled", "skipped"}

// deliveryAnswer is a delivery as the API shows it.
type deliveryAnswer struct {
	EventID        string     `json:"event_id"`
	SubscriptionID string     `json:"subscription_id"`
	AccountID      string     `json:"account_id"`
	EventType      string     `json:"event_type"`
	UserID         string     `json:"user_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	WorkflowID     string     `json:"workflow_id"`
	RunID          string     `json:"run_id"`
	StartedAt      *time.Time `json:"started_at"`
	ClosedAt       *time.Time `json:"closed_at"`
	Endpoint       string     `json:"endpoint"`
	RedeliveryOf   *string    `json:"redelivery_of"`
}

// deliveryDetailAnswer is a delivery with its attempt log.
type deliveryDetailAnswer struct {
	deliveryAnswer
	AttemptLog []struct {
		Attempt         int        `json:"attempt"`
		StartedAt       *time.Time `json:"started_at"`
		DurationMs      int64      `json:"duration_ms"`
		StatusCode      *int       `json:"status_code"`
		ErrorClass      *string    `json:"error_class"`
		Error           *string    `json:"error"`
		ResponseExcerpt *string    `json:"response_excerpt"`
		RetryAfter      *string    `json:"retry_after"`
		Skipped         bool       `json:"skipped"`
		Succeeded       bool       `json:"succeeded"`
	} `json:"attempt_log"`
	NextAttemptAt         *time.Time `json:"next_attempt_at"`
	WaitingForPermitSince *time.Time `json:"waiting_for_permit_since"`
}

// deliveryPage is one page of GET /v1/deliveries, or several joined.
type deliveryPage struct {
	Deliveries    []json.RawMessage `json:"deliveries"`
	NextPageToken *string           `json:"next_page_token"`
}

func deliveries(ctx context.Context, args []string, stdout io.Writer) error {
	verb, err := subcommand("deliveries", args, deliveriesUsage, stdout,
		"list", "show", "redeliver", "cancel", "retry", "recover")
	if err != nil {
		return err
	}
	c := newCommand("deliveries " + verb)
	var (
		conn                                          connFlags
		sub, evt, user, typ, status, since, until, tk string
		run                                           string
		limit                                         int
		asJSON                                        bool
	)
	fs := c.fs
	switch verb {
	case "list":
		fs.StringVar(&sub, "subscription", "", "only deliveries to this subscription ID")
		fs.StringVar(&evt, "event", "", "only deliveries of this event ID")
		fs.StringVar(&user, "user", "", "only deliveries of events about this user ID")
		fs.StringVar(&typ, "type", "", "only this event type: user.created, user.updated or user.deleted")
		fs.StringVar(&status, "status", "", "only this status: "+strings.Join(deliveryStatuses, ", "))
		fs.StringVar(&since, "since", "", "only deliveries started at or after TIME (RFC 3339, a date, or a duration back from now: 36h, 7d)")
		fs.StringVar(&until, "until", "", "only deliveries started before TIME")
		fs.IntVar(&limit, "limit", 50, fmt.Sprintf("list at most this many, 1 to %d", maxListLimit))
		fs.StringVar(&tk, "page-token", "", "continue a list where a previous one stopped (its next page token)")
	case "recover":
		c.requiredString(&sub, "subscription", "subscription ID")
		c.requiredString(&since, "since", "redeliver what failed since TIME (RFC 3339, a date, or a duration back from now: 36h, 7d)")
	default: // show, redeliver, cancel, retry
		c.requiredString(&evt, "event", "event ID")
		c.requiredString(&sub, "subscription", "subscription ID")
		if verb == "show" {
			fs.StringVar(&run, "run", "", "run ID of an earlier run (after a redelivery); the latest run when empty")
		}
	}
	fs.BoolVar(&asJSON, "json", false, "print JSON (the API's answer)")
	conn.register(fs)
	if err := c.parse(args[1:], stdout); err != nil {
		return err
	}

	// Check everything before calling the API.
	now := time.Now()
	var problems []string
	if sub != "" {
		problems = appendErr(problems, checkUUID("subscription", sub))
	}
	if run != "" {
		problems = appendErr(problems, checkUUID("run", run))
	}
	if evt != "" && !validID(evt) {
		problems = append(problems, "--event must be an event ID: 1 to 128 letters, digits and . _ : -")
	}
	if user != "" && !validID(user) {
		problems = append(problems, "--user must be a user ID: 1 to 128 letters, digits and . _ : -")
	}
	if typ != "" && !event.Type(typ).Valid() {
		problems = append(problems, "--type must be user.created, user.updated or user.deleted")
	}
	if status != "" && !slices.Contains(deliveryStatuses, status) {
		problems = append(problems, "--status must be one of "+strings.Join(deliveryStatuses, ", "))
	}
	sinceT, err := parseWhen("since", since, now)
	problems = appendErr(problems, err)
	untilT, err := parseWhen("until", until, now)
	problems = appendErr(problems, err)
	switch {
	case !sinceT.IsZero() && !untilT.IsZero() && !untilT.After(sinceT):
		problems = append(problems, "--until must be later than --since")
	case verb == "recover" && sinceT.After(now):
		problems = append(problems, "--since is in the future")
	}
	if verb == "list" && (limit < 1 || limit > maxListLimit) {
		problems = append(problems, fmt.Sprintf("--limit must be from 1 to %d", maxListLimit))
	}
	if len(problems) > 0 {
		return usageError{fmt.Sprintf("deliveries %s: %s", verb, strings.Join(problems, "; "))}
	}

	client, err := conn.client()
	if err != nil {
		return err
	}
	client.problemsAsJSON = asJSON
	keyPath := "/v1/deliveries/" + pathEscape(evt) + "/" + pathEscape(sub)
	switch verb {
	case "list":
		q := url.Values{}
		for name, v := range map[string]string{"subscription_id": sub, "event_id": evt, "user_id": user, "event_type": typ, "status": status} {
			if v != "" {
				q.Set(name, v)
			}
		}
		if !sinceT.IsZero() {
			q.Set("started_after", sinceT.Format(time.RFC3339Nano))
		}
		if !untilT.IsZero() {
			q.Set("started_before", untilT.Format(time.RFC3339Nano))
		}
		return listDeliveries(ctx, client, q, limit, tk, asJSON, stdout)
	case "show":
		return showDelivery(ctx, client, keyPath, run, asJSON, stdout)
	case "recover":
		return recoverDeliveries(ctx, client, sub, sinceT, asJSON, stdout)
	}
	return operateDelivery(ctx, client, verb, evt, sub, asJSON, stdout)
}

// showDelivery prints a delivery (the run runID, or the latest) and its
// attempt log.
func showDelivery(ctx context.Context, client *apiClient, keyPath, runID string, asJSON bool, stdout io.Writer) error {
	var q url.Values
	if runID != "" {
		q = url.Values{"run_id": {runID}}
	}
	var d deliveryDetailAnswer
	raw, err := client.call(ctx, http.MethodGet, keyPath, q, nil, &d)
	if err != nil {
		return err
	}
	if asJSON {
		return writeRaw(stdout, raw)
	}
	return printDelivery(stdout, d, time.Now())
}

// recoverDeliveries redelivers what failed for a subscription since a time.
func recoverDeliveries(ctx context.Context, client *apiClient, sub string, since time.Time, asJSON bool, stdout io.Writer) error {
	body, err := newJSONBody(map[string]string{"since": since.Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	var res struct {
		Redelivered    []deliveryAnswer `json:"redelivered"`
		AlreadyRunning int              `json:"already_running"`
	}
	raw, err := client.call(ctx, http.MethodPost, "/v1/subscriptions/"+pathEscape(sub)+"/recover", nil, body, &res)
	if err != nil {
		return err
	}
	if asJSON {
		return writeRaw(stdout, raw)
	}
	fmt.Fprintf(stdout, "Redelivered %d failed %s of subscription %s since %s; %d still running, left alone.\n",
		len(res.Redelivered), plural(len(res.Redelivered), "delivery", "deliveries"), sub, since.UTC().Format(timeLayout), res.AlreadyRunning)
	if len(res.Redelivered) == 0 {
		return nil
	}
	tw := newTable(stdout)
	row(tw, "EVENT", "EVENT TYPE", "USER", "NEW RUN")
	for _, d := range res.Redelivered {
		row(tw, d.EventID, d.EventType, d.UserID, d.RunID)
	}
	return tw.Flush()
}

// operateDelivery redelivers, cancels or retries one delivery.
func operateDelivery(ctx context.Context, client *apiClient, verb, evt, sub string, asJSON bool, stdout io.Writer) error {
	var d deliveryAnswer
	raw, err := client.call(ctx, http.MethodPost, "/v1/deliveries/"+pathEscape(evt)+"/"+pathEscape(sub)+"/"+verb, nil, nil, &d)
	if err != nil {
		return err
	}
	if asJSON {
		return writeRaw(stdout, raw)
	}
	switch verb {
	case "redeliver":
		fmt.Fprintf(stdout, "Redelivery started: event %s to subscription %s, run %s\n", evt, sub, oneLine(d.RunID, 100))
	case "cancel":
		fmt.Fprintf(stdout, "Cancel requested: the delivery of event %s to subscription %s stops retrying\n", evt, sub)
	case "retry":
		fmt.Fprintf(stdout, "Retry requested: the delivery of event %s to subscription %s attempts again now\n", evt, sub)
	}
	return nil
}

// listDeliveries reads pages until limit deliveries or the last page, and
// prints them. With --json it prints them in the shape of one page of the
// API, with the token that continues the list.
func listDeliveries(ctx context.Context, client *apiClient, q url.Values, limit int, token string, asJSON bool, stdout io.Writer) error {
	all := deliveryPage{Deliveries: []json.RawMessage{}}
	if token != "" {
		all.NextPageToken = &token
	}
	for {
		q.Set("limit", strconv.Itoa(min(listPageSize, limit-len(all.Deliveries))))
		q.Del("page_token")
		if all.NextPageToken != nil {
			q.Set("page_token", *all.NextPageToken)
		}
		var page deliveryPage
		if _, err := client.call(ctx, http.MethodGet, "/v1/deliveries", q, nil, &page); err != nil {
			return err
		}
		all.Deliveries = append(all.Deliveries, page.Deliveries...)
		all.NextPageToken = page.NextPageToken
		if page.NextPageToken == nil || len(page.Deliveries) == 0 || len(all.Deliveries) >= limit {
			break
		}
	}
	if asJSON {
		return writeJSON(stdout, all)
	}
	ds := make([]deliveryAnswer, len(all.Deliveries))
	for i, raw := range all.Deliveries {
		if err := json.Unmarshal(raw, &ds[i]); err != nil {
			return fmt.Errorf("GET /v1/deliveries: a delivery is not what the CLI expects: %w", err)
		}
	}
	if len(ds) == 0 {
		fmt.Fprintln(stdout, "No deliveries match.")
	} else {
		tw := newTable(stdout)
		row(tw, "STARTED", "EVENT", "EVENT TYPE", "USER", "SUBSCRIPTION", "ENDPOINT", "STATUS", "ATTEMPTS", "FINISHED")
		for _, d := range ds {
			row(tw, fmtTime(d.StartedAt), d.EventID, d.EventType, d.UserID, d.SubscriptionID, d.Endpoint, d.Status, strconv.Itoa(d.Attempts), fmtTime(d.ClosedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if all.NextPageToken != nil {
		fmt.Fprintf(stdout, "More: add --page-token %s\n", oneLine(*all.NextPageToken, 10000))
	}
	return nil
}

// printDelivery prints a delivery and its attempt log.
func printDelivery(w io.Writer, d deliveryDetailAnswer, now time.Time) error {
	next := fmtTime(d.NextAttemptAt)
	if d.NextAttemptAt != nil {
		if wait := d.NextAttemptAt.Sub(now).Round(time.Second); wait > 0 {
			next += " (in " + wait.String() + ")"
		} else {
			next += " (due now)"
		}
	}
	if d.WaitingForPermitSince != nil {
		// The gate grants the permit when an attempt in flight ends: there
		// is no time to show.
		next = "waiting for a permit since " + fmtTime(d.WaitingForPermitSince) + " (the subscription's max in flight is reached)"
	}
	redelivery := ""
	if d.RedeliveryOf != nil {
		redelivery = "run " + *d.RedeliveryOf
	}
	if err := fields(w,
		"Event", d.EventID,
		"Event type", d.EventType,
		"User", d.UserID,
		"Subscription", d.SubscriptionID,
		"Endpoint", d.Endpoint,
		"Status", fmt.Sprintf("%s after %d %s", d.Status, d.Attempts, plural(d.Attempts, "attempt", "attempts")),
		"Started", fmtTime(d.StartedAt),
		"Finished", fmtTime(d.ClosedAt),
		"Next attempt", next,
		"Workflow", d.WorkflowID,
		"Run", d.RunID,
		"Redelivery of", redelivery,
	); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(d.AttemptLog) == 0 {
		fmt.Fprintln(w, "No attempts yet.")
		return nil
	}
	tw := newTable(w)
	row(tw, "ATTEMPT", "TIME", "STATUS", "CLASS", "DURATION", "ERROR / RESPONSE")
	for _, a := range d.AttemptLog {
		code, class := "", "ok"
		if a.StatusCode != nil {
			code = strconv.Itoa(*a.StatusCode)
		}
		switch {
		case a.Skipped:
			class = "skipped"
		case a.ErrorClass != nil:
			class = *a.ErrorClass
		case !a.Succeeded:
			class = ""
		}
		var detail []string
		if a.Error != nil {
			detail = append(detail, *a.Error)
		}
		if a.ResponseExcerpt != nil {
			detail = append(detail, strconv.Quote(oneLine(*a.ResponseExcerpt, 60)))
		}
		if a.RetryAfter != nil {
			detail = append(detail, "Retry-After "+*a.RetryAfter)
		}
		dur := (time.Duration(a.DurationMs) * time.Millisecond).String()
		if a.DurationMs == 0 {
			dur = "<1ms"
		}
		rowWide(tw, strconv.Itoa(a.Attempt), fmtTime(a.StartedAt), code, class, dur, strings.Join(detail, "; "))
	}
	return tw.Flush()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// idPattern is the rule for event and user IDs (package event).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

func validID(id string) bool { return len(id) <= event.MaxIDLength && idPattern.MatchString(id) }

// checkUUID checks a subscription or run ID: a UUID in canonical form, the
// only form the API knows them by.
func checkUUID(flagName, v string) error {
	if u, err := uuid.Parse(v); err != nil || u.String() != v {
		return usageError{fmt.Sprintf("--%s must be an ID such as 0193b1a2-5c3d-7e4f-8a9b-0c1d2e3f4a5b (a UUID, lower case)", flagName)}
	}
	return nil
}

func appendErr(problems []string, err error) []string {
	if err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// dayDuration matches "7d", which time.ParseDuration does not know.
var dayDuration = regexp.MustCompile(`^([0-9]{1,4})d$`)

// parseWhen reads a --since or --until value: an RFC 3339 time, a date
// (midnight UTC), or a duration back from now. Empty gives the zero time.
func parseWhen(flagName, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if m := dayDuration.FindStringSubmatch(v); m != nil {
		n, _ := strconv.Atoi(m[1])
		return now.AddDate(0, 0, -n).UTC(), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--%s must be an RFC 3339 time (2026-11-23T09:00:00Z), a date (2026-11-23) or a duration back from now (90m, 36h, 7d); got %q", flagName, oneLine(v, 60))
}
