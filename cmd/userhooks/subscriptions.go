package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

const subscriptionsUsage = `usage: userhooks subscriptions <command> [flags]

commands (the API key's account is the subscriptions' account):
  create         --url URL [--types T1,T2] [--description TEXT] [--schedule JSON]
                 [--max-in-flight N]
                 prints the new signing secret, once
  list           [--limit N]
  get            --id ID
  update         --id ID [--url URL] [--types T1,T2] [--description TEXT] [--schedule JSON|null]
                 [--max-in-flight N]
                 changes only the fields given; --max-in-flight 0 removes the limit
  enable         --id ID
                 resumes it and resets its failure clock
  disable        --id ID
  rotate-secret  --id ID [--overlap 24h]
                 prints the new secret, once; the old ones keep signing for --overlap
  delete         --id ID

Every command takes --api-url, --api-key-file and --json.
Run "userhooks subscriptions <command> -h" for the flags of a command.
`

// listPageSize is the page size the CLI asks for: the API's largest.
const listPageSize = 100

// subscriptionAnswer is a subscription as the API shows it. Secret is set
// in the answers of create and rotate-secret only.
type subscriptionAnswer struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id"`
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
	Enabled     bool     `json:"enabled"`
	Schedule    *struct {
		Delays        []delivery.Duration `json:"delays"`
		Jitter        float64             `json:"jitter"`
		MaxRetryAfter *delivery.Duration  `json:"max_retry_after"`
	} `json:"schedule"`
	// MaxInFlight is nil from an API that does not report it; 0 means no
	// limit of its own.
	MaxInFlight *int `json:"max_in_flight"`
	Secrets     []struct {
		Active    bool       `json:"active"`
		ExpiresAt *time.Time `json:"expires_at"`
	} `json:"secrets"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	// Health is nil from an API that does not report it yet.
	Health *healthAnswer `json:"health"`
	Secret string        `json:"secret"`
}

// healthAnswer is what the API knows of a subscription's endpoint.
type healthAnswer struct {
	LastSuccessAt  *time.Time `json:"last_success_at"`
	FailingSince   *time.Time `json:"failing_since"`
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
}

func subscriptions(ctx context.Context, args []string, stdout io.Writer) error {
	verb, err := subcommand("subscriptions", args, subscriptionsUsage, stdout,
		"create", "list", "get", "update", "enable", "disable", "rotate-secret", "delete")
	if err != nil {
		return err
	}
	c := newCommand("subscriptions " + verb)
	var (
		conn                                   connFlags
		id, subURL, types, desc, schedule, ovl string
		limit, maxInFlight                     int
		asJSON                                 bool
	)
	fs := c.fs
	switch verb {
	case "create":
		c.requiredString(&subURL, "url", "receiver URL")
		fs.StringVar(&types, "types", "", "comma-separated event types; all when empty")
		fs.StringVar(&desc, "description", "", "free text")
		fs.StringVar(&schedule, "schedule", "", `retry schedule override as JSON, e.g. '{"delays":["10s","1m"],"jitter":0.1,"max_retry_after":"1h"}'`)
		fs.IntVar(&maxInFlight, "max-in-flight", 0, maxInFlightUsage)
	case "list":
		fs.IntVar(&limit, "limit", 0, "list at most this many; all when 0")
	case "update":
		c.requiredString(&id, "id", "subscription ID")
		fs.StringVar(&subURL, "url", "", "new receiver URL")
		fs.StringVar(&types, "types", "", "new comma-separated event types; empty means all")
		fs.StringVar(&desc, "description", "", "new description; empty clears it")
		fs.StringVar(&schedule, "schedule", "", `retry schedule fields to change, as JSON merged into the current schedule (e.g. '{"jitter":0}'), or null for the default schedule`)
		fs.IntVar(&maxInFlight, "max-in-flight", 0, maxInFlightUsage+"; left as it is when not given")
	case "rotate-secret":
		c.requiredString(&id, "id", "subscription ID")
		fs.StringVar(&ovl, "overlap", "", fmt.Sprintf("how long the old secrets keep signing beside the new one, up to %s (e.g. 48h, 0s); the API's default (%s) when empty",
			api.MaxRotationOverlap, api.DefaultRotationOverlap))
	default: // get, enable, disable, delete
		c.requiredString(&id, "id", "subscription ID")
	}
	fs.BoolVar(&asJSON, "json", false, "print JSON (the API's answer)")
	conn.register(fs)
	if err := c.parse(args[1:], stdout); err != nil {
		return err
	}

	// Check everything before calling the API, so that bad input fails at
	// once; the API checks again and is the authority.
	if id != "" {
		if err := checkUUID("id", id); err != nil {
			return err
		}
	}
	var (
		method, path = http.MethodGet, "/v1/subscriptions/" + pathEscape(id)
		body         *jsonBody
	)
	if c.given("max-in-flight") {
		if err := checkMaxInFlight(maxInFlight); err != nil {
			return err
		}
	}
	switch verb {
	case "create":
		req, err := newCreateRequest(subURL, types, desc, schedule)
		if err != nil {
			return err
		}
		if c.given("max-in-flight") {
			req["max_in_flight"] = maxInFlight
		}
		if body, err = newJSONBody(req); err != nil {
			return err
		}
		method, path = http.MethodPost, "/v1/subscriptions"
	case "list":
		if limit < 0 {
			return usageError{"--limit must not be negative"}
		}
	case "update":
		patch, err := newPatch(c, subURL, types, desc, schedule, maxInFlight)
		if err != nil {
			return err
		}
		method, body = http.MethodPatch, patch
	case "rotate-secret":
		req := map[string]string{}
		if ovl != "" {
			d, err := time.ParseDuration(ovl)
			if err != nil || d < 0 || d > api.MaxRotationOverlap {
				return usageError{fmt.Sprintf("--overlap must be a duration from 0s to %s, such as 24h; got %q", api.MaxRotationOverlap, ovl)}
			}
			req["overlap"] = d.String()
		}
		var err error
		if body, err = newJSONBody(req); err != nil {
			return err
		}
		method, path = http.MethodPost, path+"/rotate-secret"
	case "enable", "disable":
		method, path = http.MethodPost, path+"/"+verb
	case "delete":
		method = http.MethodDelete
	}

	client, err := conn.client()
	if err != nil {
		return err
	}
	client.problemsAsJSON = asJSON
	if verb == "list" {
		return listSubscriptions(ctx, client, limit, asJSON, stdout)
	}
	var s subscriptionAnswer
	out := any(&s)
	if verb == "delete" {
		out = nil
	}
	raw, err := client.call(ctx, method, path, nil, body, out)
	if err != nil {
		return err
	}
	switch {
	case verb == "delete" && asJSON:
		return writeJSON(stdout, map[string]any{"id": id, "deleted": true})
	case verb == "delete":
		fmt.Fprintf(stdout, "Subscription %s deleted\n", id)
		return nil
	case asJSON:
		return writeRaw(stdout, raw)
	}
	switch verb {
	case "create":
		fmt.Fprintf(stdout, "Created subscription %s\n  secret  %s\n(the secret is shown only now: give it to the receiver)\n",
			oneLine(s.ID, 100), oneLine(s.Secret, 200))
		return nil
	case "rotate-secret":
		fmt.Fprintf(stdout, "Rotated the secret of subscription %s\n  secret  %s\n(the secret is shown only now: give it to the receiver)\n",
			oneLine(s.ID, 100), oneLine(s.Secret, 200))
		for _, sec := range s.Secrets[min(1, len(s.Secrets)):] {
			if sec.Active && sec.ExpiresAt != nil {
				fmt.Fprintf(stdout, "An old secret keeps signing until %s.\n", fmtTime(sec.ExpiresAt))
			}
		}
		return nil
	case "enable":
		fmt.Fprintf(stdout, "Subscription %s enabled%s\n", oneLine(s.ID, 100), describeEnabled(s))
		return nil
	case "disable":
		fmt.Fprintf(stdout, "Subscription %s disabled\n", oneLine(s.ID, 100))
		return nil
	case "update":
		fmt.Fprintf(stdout, "Updated subscription %s\n", oneLine(s.ID, 100))
	}
	return showSubscription(stdout, s, raw)
}

// maxInFlightUsage describes --max-in-flight.
var maxInFlightUsage = fmt.Sprintf("most requests in flight to the endpoint at once, across all workers: 1 to %d, or 0 for no limit of its own (the workers' -endpoint-max-in-flight applies)",
	subscription.MaxInFlightLimit)

// checkMaxInFlight checks a --max-in-flight value as the API will.
func checkMaxInFlight(n int) error {
	if n < 0 || n > subscription.MaxInFlightLimit {
		return usageError{fmt.Sprintf("--max-in-flight must be from 0 (no limit of its own) to %d; got %d", subscription.MaxInFlightLimit, n)}
	}
	return nil
}

// describeEnabled completes "Subscription X enabled" from the API's answer.
// Resuming a disabled subscription resets its failure clock (the store
// clears failing_since); one that was enabled already keeps its clock, so an
// answer still failing since some time is one that was not reset.
func describeEnabled(s subscriptionAnswer) string {
	switch {
	case s.Health == nil:
		return "" // an API that does not report health
	case s.Health.FailingSince != nil:
		return fmt.Sprintf("; its failure clock runs on: the endpoint has been failing since %s (a subscription that was enabled already keeps its clock)",
			fmtTime(s.Health.FailingSince))
	}
	return "; its failure clock was reset: automatic disabling counts from the endpoint's next failed attempt"
}

// newCreateRequest builds and checks the body of POST /v1/subscriptions.
func newCreateRequest(rawURL, types, desc, scheduleJSON string) (map[string]any, error) {
	s := subscription.Subscription{URL: rawURL, EventTypes: splitList(types), Description: desc}
	if scheduleJSON != "" {
		sch, err := parseSchedule(scheduleJSON)
		if err != nil {
			return nil, err
		}
		s.Schedule = sch
	}
	if err := validatePartly(s); err != nil {
		return nil, err
	}
	req := map[string]any{"url": rawURL, "event_types": s.EventTypes, "description": desc}
	if s.EventTypes == nil {
		req["event_types"] = []string{}
	}
	if scheduleJSON != "" {
		req["schedule"] = json.RawMessage(scheduleJSON)
	}
	return req, nil
}

// validatePartly checks the fields of s that the caller gives, with the
// account and the secret (which the API provides) filled in with stand-ins.
func validatePartly(s subscription.Subscription) error {
	secret, err := signature.GenerateSecret()
	if err != nil {
		return err
	}
	s.AccountID = "the-api-keys-account"
	s.Secrets = []subscription.Secret{{Key: secret}}
	return s.Validate()
}

// newPatch builds the JSON merge patch of subscriptions update from the
// flags given: a flag not given leaves its field as it is.
func newPatch(c *command, rawURL, types, desc, scheduleJSON string, maxInFlight int) (*jsonBody, error) {
	patch := map[string]json.RawMessage{}
	// Checked on a stand-in holding only the fields given.
	check := subscription.Subscription{URL: "https://stand-in.example/"}
	if c.given("url") {
		check.URL = rawURL
		patch["url"], _ = json.Marshal(rawURL)
	}
	if c.given("types") {
		check.EventTypes = splitList(types)
		patch["event_types"] = json.RawMessage("null") // every type
		if len(check.EventTypes) > 0 {
			patch["event_types"], _ = json.Marshal(check.EventTypes)
		}
	}
	if c.given("description") {
		check.Description = desc
		patch["description"] = json.RawMessage("null")
		if desc != "" {
			patch["description"], _ = json.Marshal(desc)
		}
	}
	if c.given("schedule") {
		switch strings.TrimSpace(scheduleJSON) {
		case "null":
			patch["schedule"] = json.RawMessage("null")
		default:
			// The object is merged into the current schedule by the API,
			// which checks the result; here, only its form.
			if _, err := parseSchedule(scheduleJSON); err != nil {
				return nil, err
			}
			patch["schedule"] = json.RawMessage(scheduleJSON)
		}
	}
	if c.given("max-in-flight") {
		// null, like 0, removes the limit: JSON merge patch's way of
		// returning a field to its default, as the other flags do.
		patch["max_in_flight"] = json.RawMessage("null")
		if maxInFlight > 0 {
			patch["max_in_flight"], _ = json.Marshal(maxInFlight)
		}
	}
	if len(patch) == 0 {
		return nil, usageError{fmt.Sprintf("%s: nothing to change: give at least one of --url, --types, --description, --schedule, --max-in-flight\n\n%s",
			c.fs.Name(), flagsUsage(c.fs))}
	}
	if err := validatePartly(check); err != nil {
		return nil, err
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("encode the change: %w", err)
	}
	return &jsonBody{contentType: "application/merge-patch+json", data: b}, nil
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

// subscriptionPage is one page of GET /v1/subscriptions.
type subscriptionPage struct {
	Subscriptions []json.RawMessage `json:"subscriptions"`
	NextAfter     *string           `json:"next_after"`
}

// listSubscriptions reads every page (or up to limit subscriptions) and
// prints them. With --json it prints them in the shape of one page of the
// API, next_after saying where a limited list stopped.
func listSubscriptions(ctx context.Context, client *apiClient, limit int, asJSON bool, stdout io.Writer) error {
	all := subscriptionPage{Subscriptions: []json.RawMessage{}}
	for {
		size := listPageSize
		if limit > 0 {
			size = min(size, limit-len(all.Subscriptions))
		}
		q := url.Values{"limit": {strconv.Itoa(size)}}
		if all.NextAfter != nil {
			q.Set("after", *all.NextAfter)
		}
		var page subscriptionPage
		if _, err := client.call(ctx, http.MethodGet, "/v1/subscriptions", q, nil, &page); err != nil {
			return err
		}
		all.Subscriptions = append(all.Subscriptions, page.Subscriptions...)
		all.NextAfter = page.NextAfter
		// A next_after that does not move on would loop for ever.
		if page.NextAfter == nil || len(page.Subscriptions) == 0 || (limit > 0 && len(all.Subscriptions) >= limit) {
			break
		}
	}
	if asJSON {
		return writeJSON(stdout, all)
	}
	tw := newTable(stdout)
	row(tw, "ID", "STATUS", "TYPES", "URL", "MAX IN FLIGHT", "DESCRIPTION")
	for _, raw := range all.Subscriptions {
		var s subscriptionAnswer
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("GET /v1/subscriptions: a subscription is not what the CLI expects: %w", err)
		}
		limit := ""
		if s.MaxInFlight != nil && *s.MaxInFlight > 0 {
			limit = strconv.Itoa(*s.MaxInFlight)
		}
		row(tw, s.ID, subscriptionStatus(s), orAll(s.EventTypes), s.URL, limit, s.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if all.NextAfter != nil {
		fmt.Fprintf(stdout, "(more: raise --limit to list them)\n")
	}
	return nil
}

// subscriptionFields are the fields of a subscription that showSubscription
// labels itself; it prints any other as it came (see extraFields).
var subscriptionFields = []string{"id", "account_id", "url", "event_types", "description", "enabled",
	"schedule", "max_in_flight", "secrets", "created_at", "updated_at", "health", "secret"}

// showSubscription prints one subscription, label by label: the fields this
// CLI knows, then any field the API added since (raw is the API's answer),
// so that a newer API's fields show without a newer CLI.
func showSubscription(w io.Writer, s subscriptionAnswer, raw []byte) error {
	pairs := []string{
		"ID", s.ID,
		"Account", s.AccountID,
		"URL", s.URL,
		"Event types", orAll(s.EventTypes),
		"Description", s.Description,
		"Enabled", strconv.FormatBool(s.Enabled),
		"Schedule", describeSchedule(s),
	}
	if s.MaxInFlight != nil {
		limit := "no limit of its own"
		if *s.MaxInFlight > 0 {
			limit = fmt.Sprintf("%d request(s) at once", *s.MaxInFlight)
		}
		pairs = append(pairs, "Max in flight", limit)
	}
	pairs = append(pairs,
		"Secrets", describeSecrets(s),
		"Created", fmtTime(s.CreatedAt),
		"Updated", fmtTime(s.UpdatedAt),
	)
	if h := s.Health; h != nil {
		lastSuccess := fmtTime(h.LastSuccessAt)
		if lastSuccess == "" {
			lastSuccess = "never"
		}
		failing := "no"
		if h.FailingSince != nil {
			failing = "since " + fmtTime(h.FailingSince)
		}
		pairs = append(pairs, "Last success", lastSuccess, "Failing", failing)
		if !s.Enabled || h.DisabledAt != nil || h.DisabledReason != nil {
			pairs = append(pairs, "Disabled", describeDisabled(s))
		}
	}
	return fields(w, append(pairs, extraFields(raw, subscriptionFields)...)...)
}

// describeDisabled says when and why a subscription was disabled: by
// userhooks with a reason, or paused by its owner.
func describeDisabled(s subscriptionAnswer) string {
	var parts []string
	if s.Health != nil && s.Health.DisabledAt != nil {
		parts = append(parts, "since "+fmtTime(s.Health.DisabledAt))
	}
	switch {
	case s.Health != nil && s.Health.DisabledReason != nil:
		parts = append(parts, "by userhooks: "+*s.Health.DisabledReason)
	case !s.Enabled:
		parts = append(parts, "paused by its owner")
	}
	return strings.Join(parts, ", ")
}

// subscriptionStatus is the STATUS cell of the subscriptions table.
func subscriptionStatus(s subscriptionAnswer) string {
	switch {
	case !s.Enabled && s.Health != nil && s.Health.DisabledReason != nil:
		return "disabled: " + *s.Health.DisabledReason
	case !s.Enabled:
		return "disabled"
	case s.Health != nil && s.Health.FailingSince != nil:
		return "failing since " + fmtTime(s.Health.FailingSince)
	}
	return "enabled"
}

func describeSchedule(s subscriptionAnswer) string {
	sch := s.Schedule
	if sch == nil {
		return "default (about 3 days)"
	}
	var b bytes.Buffer
	for i, d := range sch.Delays {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(shortDuration(time.Duration(d)))
	}
	if len(sch.Delays) == 0 {
		b.WriteString("no retries")
	}
	fmt.Fprintf(&b, "; jitter %g", sch.Jitter)
	if sch.MaxRetryAfter != nil {
		fmt.Fprintf(&b, "; Retry-After up to %s", shortDuration(time.Duration(*sch.MaxRetryAfter)))
	}
	return b.String()
}

func describeSecrets(s subscriptionAnswer) string {
	var parts []string
	for _, sec := range s.Secrets {
		switch {
		case !sec.Active:
			parts = append(parts, "expired")
		case sec.ExpiresAt == nil:
			parts = append(parts, "active")
		default:
			parts = append(parts, "active until "+fmtTime(sec.ExpiresAt))
		}
	}
	return fmt.Sprintf("%d (%s)", len(s.Secrets), strings.Join(parts, ", "))
}
