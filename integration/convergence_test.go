package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/receiver/usersync"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/workflows"
)

// convergenceSeedFlag reproduces a TestConvergence run (see there).
var convergenceSeedFlag = flag.Int64("convergence.seed", 0,
	"seed of TestConvergence's events and faults (0: $USERHOOKS_TEST_CONVERGENCE_SEED, else random)")

// convergenceRuns makes event IDs unique when the test runs more than once
// in one process (-count=2): event IDs are unique per namespace.
var convergenceRuns atomic.Int64

// convergenceSchedule gives every delivery six attempts a second apart:
// room for the at most maxPlannedFailures injected failures plus two
// unplanned ones (a request timing out on a loaded machine).
var convergenceSchedule = &delivery.Schedule{
	Delays: []delivery.Duration{
		delivery.Duration(time.Second), delivery.Duration(time.Second), delivery.Duration(time.Second),
		delivery.Duration(time.Second), delivery.Duration(time.Second),
	},
	MaxRetryAfter: delivery.Duration(time.Minute),
}

// maxPlannedFailures bounds the failing answers injected into one event's
// deliveries, so that none exhausts convergenceSchedule.
const maxPlannedFailures = 3

// TestConvergence drives the whole system the way production does — the
// real publisher, a real Temporal server, the real worker, signed HTTP
// deliveries with their retry schedule — into the reference receiver
// (usersync.Mirror), through an endpoint that misbehaves on purpose
// (faultyEndpoint: failures with and without the event applied, hang-ups,
// delays, double application), and checks that every delivery ends
// delivered and that the mirror ends up holding exactly what the source
// system holds, in both delete modes.
//
// A seed decides everything that is random: the users' histories and the
// faults each event meets. It is logged; rerun a failure with
//
//	go test ./integration -run TestConvergence -v -args -convergence.seed=N
//
// or USERHOOKS_TEST_CONVERGENCE_SEED=N. The same seed gives the same events
// (content, source order, timestamps), the same publication order and the
// same fault plan per event; how concurrent deliveries interleave is up to
// the scheduler.
func TestConvergence(t *testing.T) {
	seed := convergenceSeed(t)
	t.Logf("seed %d: rerun with -args -convergence.seed=%d (or USERHOOKS_TEST_CONVERGENCE_SEED=%d)", seed, seed, seed)
	size := convergenceSize{users: 40, events: 300}
	modes := []usersync.DeleteMode{usersync.DeactivateOnDelete, usersync.EraseOnDelete}
	if testing.Short() {
		size = convergenceSize{users: 12, events: 80}
		modes = modes[:1]
	}
	run := convergenceRuns.Add(1)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			runConvergence(t, seed, run, mode, size)
		})
	}
}

type convergenceSize struct{ users, events int }

// convergenceSeed returns the -convergence.seed flag, else
// $USERHOOKS_TEST_CONVERGENCE_SEED, else a random seed.
func convergenceSeed(t *testing.T) uint64 {
	t.Helper()
	if n := *convergenceSeedFlag; n != 0 {
		if n < 0 {
			t.Fatalf("-convergence.seed=%d: want a positive integer", n)
		}
		return uint64(n)
	}
	if s := os.Getenv("USERHOOKS_TEST_CONVERGENCE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			t.Fatalf("USERHOOKS_TEST_CONVERGENCE_SEED=%q: want a positive integer", s)
		}
		return n
	}
	return rand.Uint64N(1<<53) + 1 // printable exactly, and never 0
}

func runConvergence(t *testing.T, seed uint64, run int64, mode usersync.DeleteMode, size convergenceSize) {
	start := time.Now()
	const account = "acme-convergence"
	// The same seed gives both modes the same events and faults.
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	src := generateSource(rng, account, fmt.Sprintf("cv%d-%s", run, mode), size)
	plans := planFaults(rng, src.events)
	t.Logf("%d events for %d users (%d deleted), %s mode", len(src.events), len(src.users), src.deletedCount(), mode)

	e := newEnv(t)
	obs := newArrivalObserver(src)
	ep := &faultyEndpoint{plans: plans, arrivals: map[string]int{}, counts: map[string]int{}}
	srv := httptest.NewUnstartedServer(ep)
	t.Cleanup(srv.Close)
	sub, secret := e.subscribe(account, "http://"+srv.Listener.Addr().String()+"/users", nil, convergenceSchedule)
	mirror, err := usersync.Open(filepath.Join(t.TempDir(), "users.db"), usersync.Options{
		Secrets:  []signature.Secret{secret},
		OnDelete: mode,
		OnResult: obs.observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	ep.next = mirror
	srv.Start()

	// Publish in a shuffled order from several goroutines: a user's delete
	// may well be published before its create.
	receipts := make([]starter.Receipt, len(src.events))
	order := rng.Perm(len(src.events))
	errs := parallel(8, order, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r, err := e.publisher.Publish(ctx, src.events[i])
		if err != nil {
			return fmt.Errorf("publish event %d (%s): %w", i, src.events[i].ID, err)
		}
		if r.Duplicate {
			return fmt.Errorf("publish event %d (%s): reported as a duplicate", i, src.events[i].ID)
		}
		receipts[i] = r
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("seed %d: %d publish errors, first: %v", seed, len(errs), errs[0])
	}
	published := time.Since(start)

	// Wait for every event workflow and check that each delivered its one
	// delivery; read the delivery's own result for its attempt count.
	attempts := make([]int, len(src.events))
	waitCtx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	errs = parallel(16, order, func(i int) error {
		r := receipts[i]
		var sum workflows.Summary
		if err := e.client.GetWorkflow(waitCtx, r.WorkflowID, r.RunID).Get(waitCtx, &sum); err != nil {
			return fmt.Errorf("event %d %s: workflow %s: %w", i, r.Event.Type, r.WorkflowID, err)
		}
		if want := (workflows.Summary{Subscriptions: 1, Delivered: 1}); sum != want {
			return fmt.Errorf("event %d %s: summary %+v, want %+v (plan %s)", i, r.Event.Type, sum, want, plans[r.Event.ID])
		}
		var res workflows.DeliveryResult
		id := workflows.DeliveryWorkflowID(r.Event.ID, sub.ID)
		if err := e.client.GetWorkflow(waitCtx, id, "").Get(waitCtx, &res); err != nil {
			return fmt.Errorf("event %d: delivery %s: %w", i, id, err)
		}
		if res.Status != delivery.StatusDelivered {
			return fmt.Errorf("event %d: delivery %s ended %s after %d attempts", i, id, res.Status, res.Attempts)
		}
		attempts[i] = res.Attempts
		return nil
	})
	for _, err := range errs {
		t.Errorf("seed %d: %v", seed, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	// A request the sender gave up on (timeout) may still be on its way
	// to the mirror; let it land before reading the mirror.
	waitFor(t, 30*time.Second, "requests in flight at the endpoint", func() bool { return ep.inflight.Load() == 0 })
	delivered := time.Since(start)

	got, err := mirror.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diffs := compareMirror(src, mode, got); len(diffs) > 0 {
		t.Errorf("seed %d, %s mode: the mirror differs from the source for %d of %d users:\n%s",
			seed, mode, len(diffs), len(src.users), strings.Join(diffs, "\n"))
		for _, id := range slices.Sorted(maps.Keys(diffUserIDs(diffs))) {
			t.Logf("history of %s:\n%s", id, obs.describe(src, id))
		}
	}

	// The faults must have happened, or the test proved nothing.
	counts := ep.snapshot()
	actions, late := obs.snapshot()
	t.Logf("%s mode: published in %s, all delivered in %s", mode, published.Round(time.Millisecond), delivered.Round(time.Millisecond))
	t.Logf("faults injected: %s", formatCounts(counts))
	t.Logf("mirror actions: %s; %d events applied after a newer event of the same user", formatCounts(actions), late)
	t.Logf("attempts per delivery: %s", formatCounts(histogram(attempts)))
	for _, k := range []string{fault500, fault503, faultApplyThen500, faultHangUpBefore, faultHangUpAfter, faultDelayed, faultDuplicated} {
		if counts[k] == 0 {
			t.Errorf("seed %d: no %q fault was injected: the test would pass without exercising it", seed, k)
		}
	}
	for _, k := range []string{faultUnknownID, faultHijackFailed} {
		if counts[k] > 0 {
			t.Errorf("seed %d: %d requests hit %q", seed, counts[k], k)
		}
	}
	if actions[string(usersync.ActionDuplicate)] == 0 {
		t.Errorf("seed %d: the mirror answered no duplicate: no applied event was retried", seed)
	}
	if late == 0 {
		t.Errorf("seed %d: no event reached the mirror after a newer one of its user: order was never tested", seed)
	}
	if n := actions[string(usersync.ActionRejected)]; n > 0 {
		t.Errorf("seed %d: the mirror rejected %d requests", seed, n)
	}
}

// parallel runs fn for each item on n goroutines and returns the errors.
func parallel(n int, items []int, fn func(int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	jobs := make(chan int)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, i := range items {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return errs
}

// The source system.

// source is the source system's history: its events in source order and
// the final state of every user they touched.
type source struct {
	account string
	events  []event.Event
	users   map[string]*sourceUser
	// seq maps an event ID to its index in events.
	seq map[string]int
}

// sourceUser is one user's final state in the source system.
type sourceUser struct {
	user    event.User
	deleted bool
	// events are the indexes of the user's events, in source order.
	events []int
}

func (s *source) deletedCount() int {
	n := 0
	for _, u := range s.users {
		if u.deleted {
			n++
		}
	}
	return n
}

// Vocabularies of generated values.
var (
	genNames     = []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson", "Frances Allen", "Donald Knuth"}
	genStatuses  = []string{"active", "suspended", "invited"}
	genRoles     = []string{"admin", "editor", "author", "viewer", "billing"}
	genTags      = []string{"beta", "vip", "newsletter", "trial", "eu", "us"}
	genAttrKeys  = []string{"plan", "seats", "locale", "theme", "score", "flags"}
	genAttrValue = []string{`"free"`, `"pro"`, `"team"`, `1`, `25`, `3.5`, `true`, `false`, `{"beta":true}`, `[1,2,3]`, `"Zürich"`, `""`}
)

// generateSource writes the history of size.users users over size.events
// events: each user is created, updated any number of times (random
// subsets of fields, attributes set and removed) and maybe deleted, and is
// never touched again after its delete. Timestamps follow source order,
// strictly increasing.
func generateSource(rng *rand.Rand, account, idPrefix string, size convergenceSize) *source {
	src := &source{account: account, users: map[string]*sourceUser{}, seq: map[string]int{}}
	type slot struct {
		id      string
		created bool
		user    *sourceUser
	}
	alive := make([]*slot, size.users)
	for i := range alive {
		alive[i] = &slot{id: fmt.Sprintf("u%02d", i)}
	}
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for len(src.events) < size.events && len(alive) > 0 {
		k := rng.IntN(len(alive))
		s := alive[k]
		clock = clock.Add(time.Duration(1+rng.IntN(25)) * time.Millisecond)
		ev := event.Event{
			ID:        fmt.Sprintf("%s-%04d", idPrefix, len(src.events)),
			Timestamp: clock,
			AccountID: account,
		}
		switch {
		case !s.created:
			s.created = true
			s.user = &sourceUser{user: randomUser(rng, s.id)}
			src.users[s.id] = s.user
			ev.Type = event.TypeUserCreated
			ev.Data.User = cloneUser(s.user.user)
		case rng.Float64() < 0.07:
			s.user.deleted = true
			alive = slices.Delete(alive, k, k+1)
			ev.Type = event.TypeUserDeleted
			ev.Data.User = event.User{ID: s.id}
			if rng.IntN(2) == 0 { // the last known state, or only the ID
				ev.Data.User = cloneUser(s.user.user)
			}
		default:
			ev.Type = event.TypeUserUpdated
			ev.Data.PreviousAttributes = randomUpdate(rng, &s.user.user)
			ev.Data.User = cloneUser(s.user.user)
		}
		s.user.events = append(s.user.events, len(src.events))
		src.seq[ev.ID] = len(src.events)
		src.events = append(src.events, ev)
	}
	return src
}

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

func chance(rng *rand.Rand, p float64) bool { return rng.Float64() < p }

func randomUser(rng *rand.Rand, id string) event.User {
	u := event.User{ID: id, Email: randomEmail(rng, id), Name: pick(rng, genNames)}
	if chance(rng, 0.5) {
		u.Username = randomUsername(rng, id)
	}
	if chance(rng, 0.6) {
		u.Status = pick(rng, genStatuses)
	}
	u.Roles = randomSubset(rng, genRoles)
	u.Tags = randomSubset(rng, genTags)
	u.Attributes = randomAttributes(rng)
	return u
}

func randomEmail(rng *rand.Rand, id string) string {
	return fmt.Sprintf("%s.%d@example.com", id, rng.IntN(10000))
}

func randomUsername(rng *rand.Rand, id string) string {
	return fmt.Sprintf("%s_%d", id, rng.IntN(10000))
}

// randomSubset returns up to three distinct entries of from in random
// order, nil for none.
func randomSubset(rng *rand.Rand, from []string) []string {
	var out []string
	for _, i := range rng.Perm(len(from))[:rng.IntN(4)] {
		out = append(out, from[i])
	}
	return out
}

func randomAttributes(rng *rand.Rand) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	for _, i := range rng.Perm(len(genAttrKeys))[:rng.IntN(4)] {
		if m == nil {
			m = map[string]json.RawMessage{}
		}
		m[genAttrKeys[i]] = json.RawMessage(pick(rng, genAttrValue))
	}
	return m
}

// randomUpdate changes a random, non-empty set of u's fields and returns
// previous_attributes for the change: each changed field with its value
// before, null where it was unset.
func randomUpdate(rng *rand.Rand, u *event.User) map[string]json.RawMessage {
	prev := map[string]json.RawMessage{}
	changeString := func(field string, p float64, cur *string, next func() string) {
		if !chance(rng, p) {
			return
		}
		v := next()
		for v == *cur {
			v = next()
		}
		prev[field] = previousString(*cur)
		*cur = v
	}
	changeList := func(field string, p float64, cur *[]string, from []string) {
		if !chance(rng, p) {
			return
		}
		v := randomSubset(rng, from)
		for slices.Equal(v, *cur) {
			v = randomSubset(rng, from)
		}
		prev[field] = previousJSON(*cur, len(*cur) == 0)
		*cur = v
	}
	orEmpty := func(p float64, v func() string) func() string {
		return func() string {
			if chance(rng, p) {
				return ""
			}
			return v()
		}
	}
	for len(prev) == 0 {
		changeString("email", 0.3, &u.Email, func() string { return randomEmail(rng, u.ID) })
		changeString("name", 0.3, &u.Name, orEmpty(0.15, func() string { return pick(rng, genNames) }))
		changeString("username", 0.2, &u.Username, orEmpty(0.25, func() string { return randomUsername(rng, u.ID) }))
		changeString("status", 0.2, &u.Status, orEmpty(0.2, func() string { return pick(rng, genStatuses) }))
		changeList("roles", 0.25, &u.Roles, genRoles)
		changeList("tags", 0.25, &u.Tags, genTags)
		switch r := rng.Float64(); {
		case r < 0.08: // the whole map
			v := randomAttributes(rng)
			for maps.EqualFunc(v, u.Attributes, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
				v = randomAttributes(rng)
			}
			prev["attributes"] = previousJSON(u.Attributes, len(u.Attributes) == 0)
			u.Attributes = v
		case r < 0.5: // one or two keys set or removed
			for range 1 + rng.IntN(2) {
				if len(u.Attributes) > 0 && chance(rng, 0.35) {
					k := pick(rng, slices.Sorted(maps.Keys(u.Attributes)))
					if _, done := prev["attributes."+k]; done {
						continue
					}
					prev["attributes."+k] = u.Attributes[k]
					delete(u.Attributes, k)
					if len(u.Attributes) == 0 {
						u.Attributes = nil
					}
					continue
				}
				k := pick(rng, genAttrKeys)
				if _, done := prev["attributes."+k]; done {
					continue
				}
				old, had := u.Attributes[k]
				v := json.RawMessage(pick(rng, genAttrValue))
				for had && bytes.Equal(v, old) {
					v = json.RawMessage(pick(rng, genAttrValue))
				}
				prev["attributes."+k] = previousJSON(old, !had)
				if u.Attributes == nil {
					u.Attributes = map[string]json.RawMessage{}
				}
				u.Attributes[k] = v
			}
		}
	}
	return prev
}

func previousString(s string) json.RawMessage {
	return previousJSON(s, s == "")
}

// previousJSON is v as JSON, or null when unset.
func previousJSON(v any, unset bool) json.RawMessage {
	if unset {
		return json.RawMessage("null")
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %v: %v", v, err)) // generated values always encode
	}
	return b
}

func cloneUser(u event.User) event.User {
	u.Roles = slices.Clone(u.Roles)
	u.Tags = slices.Clone(u.Tags)
	u.Attributes = maps.Clone(u.Attributes)
	return u
}

// The faulty endpoint.

// Fault kinds, as counted by faultyEndpoint.
const (
	fault500          = "500 without applying"
	fault503          = "503 without applying"
	faultApplyThen500 = "applied, then 500"
	faultHangUpBefore = "hung up before applying"
	faultHangUpAfter  = "applied, then hung up"
	faultDelayed      = "delayed"
	faultDuplicated   = "applied twice"
	faultUnknownID    = "unknown webhook-id"
	faultHijackFailed = "hijack failed"
)

// failingFaults are the faults that make an attempt fail.
var failingFaults = []string{fault500, fault503, faultApplyThen500, faultHangUpBefore, faultHangUpAfter}

// faultPlan is what the endpoint does to the successive requests (the
// attempts) carrying one webhook-id.
type faultPlan struct {
	// fail[n-1] is the failure of request n; requests after these pass.
	fail []string
	// delay[n] holds request n back before anything else happens to it.
	delay map[int]time.Duration
	// duplicate has the first passing request applied twice.
	duplicate bool
}

func (p *faultPlan) String() string {
	return fmt.Sprintf("fail %q, delays %v, duplicate %t", p.fail, p.delay, p.duplicate)
}

// planFaults decides, for each event, the faults its deliveries meet:
// about half fail one to maxPlannedFailures times, a fifth of the requests
// are held back, a tenth of the events are applied twice.
func planFaults(rng *rand.Rand, events []event.Event) map[string]*faultPlan {
	plans := map[string]*faultPlan{}
	for _, ev := range events {
		p := &faultPlan{delay: map[int]time.Duration{}}
		if chance(rng, 0.5) {
			for range 1 + rng.IntN(maxPlannedFailures) {
				p.fail = append(p.fail, pick(rng, failingFaults))
			}
		}
		for n := 1; n <= len(p.fail)+1; n++ {
			if chance(rng, 0.2) {
				p.delay[n] = time.Duration(50+rng.IntN(750)) * time.Millisecond
			}
		}
		p.duplicate = chance(rng, 0.1)
		plans[ev.ID] = p
	}
	return plans
}

// faultyEndpoint stands between the sender and the mirror and misbehaves
// as each webhook-id's plan says. It is safe for concurrent use.
type faultyEndpoint struct {
	next     http.Handler
	plans    map[string]*faultPlan
	inflight atomic.Int64

	mu       sync.Mutex
	arrivals map[string]int
	counts   map[string]int
}

func (f *faultyEndpoint) count(kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[kind]++
}

func (f *faultyEndpoint) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.counts)
}

func (f *faultyEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the sender hung up
	}
	id := r.Header.Get(signature.HeaderID)
	f.mu.Lock()
	plan, ok := f.plans[id]
	f.arrivals[id]++
	n := f.arrivals[id]
	f.mu.Unlock()
	if !ok {
		f.count(faultUnknownID)
		http.Error(w, "unknown webhook-id", http.StatusBadRequest)
		return
	}
	if d := plan.delay[n]; d > 0 {
		f.count(faultDelayed)
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	fault := ""
	if n <= len(plan.fail) {
		fault = plan.fail[n-1]
	}
	switch fault {
	case fault500:
		f.count(fault)
		http.Error(w, "injected fault", http.StatusInternalServerError)
		return
	case fault503:
		f.count(fault)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "injected fault", http.StatusServiceUnavailable)
		return
	case faultHangUpBefore:
		f.count(fault)
		f.hangUp(w)
		return
	}
	res := f.forward(r, body)
	switch fault {
	case faultApplyThen500:
		f.count(fault)
		http.Error(w, fmt.Sprintf("injected fault (the mirror answered %d)", res.Code), http.StatusInternalServerError)
		return
	case faultHangUpAfter:
		f.count(fault)
		f.hangUp(w)
		return
	}
	if plan.duplicate && n == len(plan.fail)+1 {
		f.count(faultDuplicated)
		res = f.forward(r, body) // the sender hears the second answer
	}
	maps.Copy(w.Header(), res.Header())
	w.WriteHeader(res.Code)
	w.Write(res.Body.Bytes())
}

// forward has the mirror handle a copy of r with body.
func (f *faultyEndpoint) forward(r *http.Request, body []byte) *httptest.ResponseRecorder {
	req := r.Clone(r.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	res := httptest.NewRecorder()
	f.next.ServeHTTP(res, req)
	return res
}

// hangUp closes the connection without answering.
func (f *faultyEndpoint) hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		f.count(faultHijackFailed)
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		f.count(faultHijackFailed)
		return
	}
	conn.Close()
}

// arrivalObserver records what the mirror did with each request, to count
// actions and late arrivals and to explain a mismatch.
type arrivalObserver struct {
	seq map[string]int // event ID → source index

	mu      sync.Mutex
	actions map[string]int
	late    int
	newest  map[string]int // user ID → newest source index that reached the mirror
	trail   map[string][]string
}

func newArrivalObserver(src *source) *arrivalObserver {
	return &arrivalObserver{seq: src.seq, actions: map[string]int{}, newest: map[string]int{}, trail: map[string][]string{}}
}

func (o *arrivalObserver) observe(r usersync.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.actions[string(r.Action)]++
	i, ok := o.seq[r.EventID]
	if !ok {
		return
	}
	o.trail[r.UserID] = append(o.trail[r.UserID], fmt.Sprintf("#%d %s %d", i, r.Action, r.Status))
	switch r.Action {
	case usersync.ActionCreated, usersync.ActionUpdated, usersync.ActionDeleted,
		usersync.ActionIgnoredStale, usersync.ActionIgnoredDeleted:
		newest, seen := o.newest[r.UserID]
		if seen && i < newest {
			o.late++
		}
		if !seen || i > newest {
			o.newest[r.UserID] = i
		}
	}
}

func (o *arrivalObserver) snapshot() (map[string]int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.actions), o.late
}

// describe tells a user's story: its events in source order, then what
// the mirror did with each request in arrival order.
func (o *arrivalObserver) describe(src *source, userID string) string {
	var b strings.Builder
	if u := src.users[userID]; u != nil {
		for _, i := range u.events {
			ev := src.events[i]
			fmt.Fprintf(&b, "  #%d %s %s %s", i, ev.ID, ev.Timestamp.Format("15:04:05.000"), ev.Type)
			if len(ev.Data.PreviousAttributes) > 0 {
				fmt.Fprintf(&b, " changed %v", slices.Sorted(maps.Keys(ev.Data.PreviousAttributes)))
			}
			b.WriteString("\n")
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(&b, "  mirror, in arrival order: %s", strings.Join(o.trail[userID], ", "))
	return b.String()
}

// Comparing the mirror with the source.

// expectedUser is what the mirror must hold for u once every event is in.
func expectedUser(src *source, id string, u *sourceUser, mode usersync.DeleteMode) usersync.User {
	last := src.events[u.events[len(u.events)-1]]
	want := usersync.User{AccountID: src.account, ID: id, Deleted: u.deleted, LastEventAt: last.Timestamp, LastEventID: last.ID}
	if u.deleted && mode == usersync.EraseOnDelete {
		return want
	}
	want.Email, want.Username, want.Name, want.Status = u.user.Email, u.user.Username, u.user.Name, u.user.Status
	want.Roles, want.Tags, want.Attributes = u.user.Roles, u.user.Tags, u.user.Attributes
	return want
}

// compareMirror returns one line per user whose mirrored state differs
// from the source's, or who is missing or extra.
func compareMirror(src *source, mode usersync.DeleteMode, got []usersync.User) []string {
	byID := map[string]usersync.User{}
	var diffs []string
	for _, u := range got {
		if u.AccountID != src.account || src.users[u.ID] == nil {
			diffs = append(diffs, fmt.Sprintf("%s: in the mirror (account %s) but never created in the source", u.ID, u.AccountID))
			continue
		}
		byID[u.ID] = u
	}
	for _, id := range slices.Sorted(maps.Keys(src.users)) {
		g, ok := byID[id]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing from the mirror", id))
			continue
		}
		if d := diffUser(expectedUser(src, id, src.users[id], mode), g); len(d) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s: %s", id, strings.Join(d, "; ")))
		}
	}
	return diffs
}

// diffUserIDs extracts the user IDs from compareMirror's lines.
func diffUserIDs(diffs []string) map[string]bool {
	ids := map[string]bool{}
	for _, d := range diffs {
		id, _, _ := strings.Cut(d, ":")
		ids[id] = true
	}
	return ids
}

// diffUser lists the fields where got differs from want, as
// "field = got, want want".
func diffUser(want, got usersync.User) []string {
	var d []string
	field := func(name string, g, w any) {
		d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
	}
	for _, f := range []struct {
		name      string
		got, want string
	}{
		{"email", got.Email, want.Email},
		{"username", got.Username, want.Username},
		{"name", got.Name, want.Name},
		{"status", got.Status, want.Status},
		{"last_event_id", got.LastEventID, want.LastEventID},
	} {
		if f.got != f.want {
			field(f.name, strconv.Quote(f.got), strconv.Quote(f.want))
		}
	}
	if !slices.Equal(got.Roles, want.Roles) {
		field("roles", got.Roles, want.Roles)
	}
	if !slices.Equal(got.Tags, want.Tags) {
		field("tags", got.Tags, want.Tags)
	}
	keys := map[string]bool{}
	for k := range got.Attributes {
		keys[k] = true
	}
	for k := range want.Attributes {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		g, gok := got.Attributes[k]
		w, wok := want.Attributes[k]
		if gok != wok || !bytes.Equal(g, w) {
			field("attributes."+k, rawOrAbsent(g, gok), rawOrAbsent(w, wok))
		}
	}
	if got.Deleted != want.Deleted {
		field("deleted", got.Deleted, want.Deleted)
	}
	if !got.LastEventAt.Equal(want.LastEventAt) {
		field("last_event_at", got.LastEventAt.Format(time.RFC3339Nano), want.LastEventAt.Format(time.RFC3339Nano))
	}
	return d
}

func rawOrAbsent(v json.RawMessage, ok bool) string {
	if !ok {
		return "absent"
	}
	return string(v)
}

// formatCounts prints counts sorted by key.
func formatCounts[K interface{ ~string | ~int }](m map[K]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%v: %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func histogram(xs []int) map[int]int {
	h := map[int]int{}
	for _, x := range xs {
		h[x]++
	}
	return h
}
