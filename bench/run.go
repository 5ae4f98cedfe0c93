package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/workflows"
)

// Config says what a benchmark run publishes and measures. Start from
// DefaultConfig.
type Config struct {
	// Events to publish at full speed, Concurrency publishers at a time.
	// Ignored when Rate is set.
	Events      int
	Concurrency int
	// Rate, when positive, publishes open loop: Rate events per second for
	// Duration, each publish on schedule whether or not the previous ones
	// have returned.
	Rate     float64
	Duration time.Duration
	// Subscriptions is the fan-out: every event goes to this many
	// subscriptions of one account.
	Subscriptions int
	// MaxInFlight, when positive, is every subscription's per-endpoint
	// concurrency limit, so deliveries go through the endpoint gates
	// (EndpointGateWorkflow); 0 takes the plain path.
	MaxInFlight int
	// Workers is the number of in-process userhooks workers, each with its
	// own client connection.
	Workers int
	// WorkerOptions are the options of every worker (zero: the SDK's
	// defaults, as the worker command uses).
	WorkerOptions worker.Options
	// SeparatePublisher publishes through a connection of its own, as an
	// API process without a worker does. By default the publisher shares
	// the first worker's connection, as `worker dev` and an application
	// embedding a worker do, and the server starts each event's workflow
	// eagerly on that worker.
	SeparatePublisher bool
	// StickyCache, when positive, sets the SDK's process-wide sticky
	// workflow cache size (default 10,000).
	StickyCache int
	// References runs the single-workflow ceiling and the direct floor
	// after userhooks' phase.
	References bool
	// Warmup events go through userhooks (and the ceiling) before
	// measuring, unmeasured.
	Warmup int
	// HistorySample is how many events' histories (the parent and its
	// deliveries) are read.
	HistorySample int
	// Waiting, when positive, parks this many deliveries (rounded up to a
	// whole number of events of WaitingFanOut subscriptions) on endpoints
	// that answer 503, with a first retry an hour away, and measures this
	// process's memory once they all wait.
	Waiting       int
	WaitingFanOut int
	// TerminateWaiting terminates the waiting deliveries at the end (for
	// a server that outlives the run).
	TerminateWaiting bool
	// Hosts is the number of loopback addresses the receiver listens on;
	// subscription i uses host i mod Hosts.
	Hosts int
	// Verify makes the receiver check every signature.
	Verify bool
	// PlaintextHistory turns payload encryption off; by default payloads
	// are encrypted with a key made for the run, as in production.
	PlaintextHistory bool
	// PhaseTimeout bounds each phase, from its first publish.
	PhaseTimeout time.Duration
	// TaskQueue for the run's workers; a unique suffix is added.
	TaskQueue string
	// DataDir holds the subscription store; empty means a temporary
	// directory, removed at the end.
	DataDir string
	// CPUProfile, when set, receives a CPU profile of this process during
	// userhooks' phase.
	CPUProfile io.Writer
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

// DefaultConfig is 300 events × 10 subscriptions at full speed from 64
// publishers, one worker, both references, encrypted payloads: about four
// minutes on a quiet 2-core machine with a dev server.
func DefaultConfig() Config {
	return Config{
		Events:        300,
		Concurrency:   64,
		Subscriptions: 10,
		Workers:       1,
		References:    true,
		Warmup:        20,
		HistorySample: 5,
		WaitingFanOut: 100,
		Hosts:         0,
		Verify:        true,
		PhaseTimeout:  10 * time.Minute,
		TaskQueue:     "userhooks-bench",
	}
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	if c.Rate > 0 {
		check(c.Duration > 0, "duration %s: must be positive with a rate", c.Duration)
		check(c.Rate*c.Duration.Seconds() >= 1, "rate %g/s for %s publishes no event", c.Rate, c.Duration)
	} else {
		check(c.Events >= 0, "events %d: must not be negative", c.Events)
		check(c.Concurrency >= 1, "concurrency %d: must be at least 1", c.Concurrency)
	}
	check(c.Subscriptions >= 1 && c.Subscriptions <= workflows.MaxBatchSize, "subscriptions %d: want 1 to %d", c.Subscriptions, workflows.MaxBatchSize)
	check(c.MaxInFlight >= 0 && c.MaxInFlight <= subscription.MaxInFlightLimit, "max in flight %d: want 0 (no limit) to %d", c.MaxInFlight, subscription.MaxInFlightLimit)
	check(c.Workers >= 1, "workers %d: must be at least 1", c.Workers)
	check(c.Warmup >= 0, "warmup %d: must not be negative", c.Warmup)
	check(c.HistorySample >= 0, "history sample %d: must not be negative", c.HistorySample)
	check(c.Waiting >= 0, "waiting %d: must not be negative", c.Waiting)
	check(c.Waiting == 0 || (c.WaitingFanOut >= 1 && c.WaitingFanOut <= workflows.MaxBatchSize), "waiting fan-out %d: want 1 to %d", c.WaitingFanOut, workflows.MaxBatchSize)
	check(c.Hosts >= 0 && c.Hosts <= 254, "hosts %d: want 0 (automatic) to 254", c.Hosts)
	check(c.PhaseTimeout > 0, "phase timeout %s: must be positive", c.PhaseTimeout)
	check(c.TaskQueue != "", "task queue: must not be empty")
	check(c.StickyCache >= 0, "sticky cache %d: must not be negative", c.StickyCache)
	return errors.Join(errs...)
}

func (c Config) events() int {
	if c.Rate > 0 {
		return int(c.Rate * c.Duration.Seconds())
	}
	return c.Events
}

func (c Config) hosts() int {
	if c.Hosts > 0 {
		return c.Hosts
	}
	return min(c.Subscriptions, 16)
}

// Env is the Temporal server a run uses.
type Env struct {
	// Dial connects a new client to the server with the given data
	// converter. Run calls it for the publisher and for each worker.
	Dial func(dc converter.DataConverter) (client.Client, error)
	// Namespace the clients use.
	Namespace string
	// Description of the server, for the report.
	Description string
	// ServerPID is the server's process ID, for its CPU time; 0 if unknown.
	ServerPID int
}

// loopback lets deliveries reach the local receiver, which the production
// egress policy refuses.
var loopback = egress.Policy{AllowHTTP: true, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

// benchSub is one subscription of the run, with what the direct floor
// needs to deliver to it.
type benchSub struct {
	ID       string
	Endpoint string
	URL      string
	Secrets  []signature.Secret
}

// runner holds one run's installation.
type runner struct {
	cfg      Config
	env      Env
	id       string
	progress io.Writer

	dataDir  string
	store    *subscription.SQLiteStore
	acts     *activities.Activities
	receiver *Receiver
	account  string
	subs     []benchSub

	pub       client.Client
	wclients  []client.Client
	workers   []worker.Worker
	publisher *starter.Publisher
	taskQueue string
	dc        converter.DataConverter
	direct    *directSender
}

// Run runs a benchmark against env's server and returns its report. The
// report is returned, as far as it got, with an error when a step other
// than a phase failed; a phase that times out is reported incomplete
// instead.
func Run(ctx context.Context, env Env, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	if env.Dial == nil {
		return nil, errors.New("bench env: no Dial function")
	}
	r := &runner{cfg: cfg, env: env, progress: cfg.Progress}
	if r.progress == nil {
		r.progress = io.Discard
	}
	idb := make([]byte, 4)
	if _, err := rand.Read(idb); err != nil {
		return nil, fmt.Errorf("bench: run ID: %w", err)
	}
	r.id = hex.EncodeToString(idb)
	r.account = "bench-" + r.id
	r.taskQueue = cfg.TaskQueue + "-" + r.id

	rep := &Report{
		Started:  time.Now().UTC(),
		Machine:  Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()},
		Temporal: env.Description,
		Workload: Workload{
			Events: cfg.events(), Subscriptions: cfg.Subscriptions, Deliveries: cfg.events() * cfg.Subscriptions,
			Rate: cfg.Rate, DurationSec: cfg.Duration.Seconds(), Workers: cfg.Workers, Hosts: cfg.hosts(), MaxInFlight: cfg.MaxInFlight,
			Encrypted: !cfg.PlaintextHistory, StickyCache: cfg.StickyCache, SeparatePublisher: cfg.SeparatePublisher,
		},
	}
	if cfg.Rate == 0 {
		rep.Workload.Concurrency = cfg.Concurrency
		rep.Workload.DurationSec = 0
	}
	defer r.close()
	if err := r.setUp(ctx); err != nil {
		return rep, err
	}
	rep.Notes = append(rep.Notes,
		"workers, publisher and receiver share this process; its CPU time includes all three",
		"publish→receipt runs from the start of the publish call to the receiver having read the body")
	if env.ServerPID == 0 {
		rep.Notes = append(rep.Notes, "the Temporal server's CPU time is unknown (not a child process; pass its PID)")
	}

	if cfg.Warmup > 0 {
		fmt.Fprintf(r.progress, "warming up with %d events…\n", cfg.Warmup)
		r.runPhase(ctx, "warmup", "", r.makeEvents(cfg.Warmup), r.publishUserhooks, nil)
	}

	events := r.makeEvents(cfg.events())
	fmt.Fprintf(r.progress, "userhooks: %d events × %d subscriptions (%s)…\n", len(events), cfg.Subscriptions, rep.Workload.Mode())
	ours := r.runPhase(ctx, PhaseUserhooks, "starter.Publish → UserEventWorkflow → DeliveryWorkflow children → Deliver local activity (the production path)",
		events, r.publishUserhooks, cfg.CPUProfile)
	rep.Phases = append(rep.Phases, ours)
	if cfg.HistorySample > 0 && ctx.Err() == nil {
		fmt.Fprintf(r.progress, "reading the histories of %d events…\n", min(cfg.HistorySample, len(events)))
		h, err := r.sampleHistories(ctx, events[:min(cfg.HistorySample, len(events))])
		if err != nil {
			rep.Notes = append(rep.Notes, "history sample: "+err.Error())
		} else {
			rep.History = &h
		}
	}

	// An incomplete phase leaves workflows running, which would take the
	// machine from every later phase: stop here.
	if ours.Error != "" {
		rep.Notes = append(rep.Notes, "userhooks' phase was incomplete: references and waiting not run, as its workflows still run")
		rep.Evaluate()
		return rep, ctx.Err()
	}
	if cfg.References && ctx.Err() == nil {
		ceil, sample, err := r.runCeiling(ctx)
		if err != nil {
			rep.Evaluate()
			return rep, err
		}
		rep.Phases = append(rep.Phases, ceil)
		rep.CeilingHistory = sample
		if ctx.Err() == nil {
			fmt.Fprintf(r.progress, "direct floor…\n")
			r.direct = newDirectSender(r.subs)
			rep.Phases = append(rep.Phases, r.runPhase(ctx, PhaseDirect,
				"a plain loop signing and POSTing the same bodies through the same HTTP client; no store, no durability",
				r.makeEvents(cfg.events()), r.publishDirect, nil))
		}
	}

	if cfg.Waiting > 0 && ctx.Err() == nil {
		w := r.runWaiting(ctx)
		rep.Waiting = &w
	}
	rep.Evaluate()
	return rep, ctx.Err()
}

func (r *runner) setUp(ctx context.Context) error {
	cfg := r.cfg
	if cfg.DataDir != "" {
		r.dataDir = cfg.DataDir
	} else {
		d, err := os.MkdirTemp("", "userhooks-bench-")
		if err != nil {
			return fmt.Errorf("bench: data directory: %w", err)
		}
		r.dataDir = d
	}
	store, err := subscription.OpenSQLite(filepath.Join(r.dataDir, "bench-"+r.id+".db"))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.store = store
	r.acts = &activities.Activities{Store: store, Sender: activities.NewSender(loopback, activities.DefaultRequestTimeout)}

	rcv, err := NewReceiver(cfg.hosts(), cfg.Verify)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.receiver = rcv
	for i := range cfg.Subscriptions {
		s, err := r.subscribe(ctx, r.account, fmt.Sprintf("s%d", i), i, false, nil, cfg.MaxInFlight)
		if err != nil {
			return err
		}
		r.subs = append(r.subs, s)
	}

	r.dc = converter.GetDefaultDataConverter()
	if !cfg.PlaintextHistory {
		key, err := payloadcodec.GenerateKey()
		if err != nil {
			return fmt.Errorf("bench: payload key: %w", err)
		}
		keys, err := payloadcodec.NewKeyring("bench", map[string][]byte{"bench": key})
		if err != nil {
			return fmt.Errorf("bench: payload key: %w", err)
		}
		r.dc = payloadcodec.NewDataConverter(keys)
	}
	if r.pub, err = r.env.Dial(r.dc); err != nil {
		return fmt.Errorf("bench: connect publisher: %w", err)
	}
	if err := workflows.RegisterSearchAttributes(ctx, r.pub, r.env.Namespace); err != nil {
		return fmt.Errorf("bench: %w", err)
	}

	if cfg.StickyCache > 0 {
		worker.SetStickyWorkflowCacheSize(cfg.StickyCache)
	}
	for range cfg.Workers {
		c, err := r.env.Dial(r.dc)
		if err != nil {
			return fmt.Errorf("bench: connect worker: %w", err)
		}
		r.wclients = append(r.wclients, c)
		w := worker.New(c, r.taskQueue, cfg.WorkerOptions)
		workflows.Register(w, r.acts)
		if err := w.Start(); err != nil {
			return fmt.Errorf("bench: start worker: %w", err)
		}
		r.workers = append(r.workers, w)
	}
	pub := r.pub
	if !cfg.SeparatePublisher && len(r.wclients) > 0 {
		pub = r.wclients[0]
	}
	r.publisher = starter.New(pub, starter.Options{TaskQueue: r.taskQueue})
	fmt.Fprintf(r.progress, "run %s: %d worker(s) on task queue %s, receiver on %d loopback host(s), store in %s\n",
		r.id, cfg.Workers, r.taskQueue, cfg.hosts(), r.dataDir)
	return nil
}

// subscribe creates a subscription of account to a new receiver endpoint.
func (r *runner) subscribe(ctx context.Context, account, endpoint string, n int, fail bool, sched *delivery.Schedule, maxInFlight int) (benchSub, error) {
	secret, err := signature.GenerateSecret()
	if err != nil {
		return benchSub{}, err
	}
	secrets := []signature.Secret{secret}
	url, err := r.receiver.AddEndpoint(endpoint, n, secrets, fail)
	if err != nil {
		return benchSub{}, fmt.Errorf("bench: %w", err)
	}
	s := subscription.Subscription{AccountID: account, URL: url, Enabled: true,
		Secrets: []subscription.Secret{{Key: secret}}, Schedule: sched, MaxInFlight: maxInFlight}
	if err := r.store.Create(ctx, &s); err != nil {
		return benchSub{}, fmt.Errorf("bench: create subscription: %w", err)
	}
	return benchSub{ID: s.ID, Endpoint: endpoint, URL: url, Secrets: secrets}, nil
}

func (r *runner) close() {
	for _, w := range r.workers {
		w.Stop()
	}
	for _, c := range r.wclients {
		c.Close()
	}
	if r.pub != nil {
		r.pub.Close()
	}
	if r.receiver != nil {
		r.receiver.Close()
	}
	if r.store != nil {
		r.store.Close()
	}
	if r.cfg.DataDir == "" && r.dataDir != "" {
		os.RemoveAll(r.dataDir)
	}
}

// makeEvents returns n new events of the run's account, rotating through
// the three types.
func (r *runner) makeEvents(n int) []event.Event {
	return makeEvents(r.account, n)
}

func makeEvents(account string, n int) []event.Event {
	now := time.Now().UTC().Truncate(time.Millisecond)
	events := make([]event.Event, n)
	for i := range events {
		id := uuid.Must(uuid.NewV7()).String()
		user := event.User{
			ID: fmt.Sprintf("u_%d", i), Email: fmt.Sprintf("user%d@example.com", i), Name: "Ada Lovelace",
			Roles: []string{"member"}, Attributes: map[string]json.RawMessage{"plan": json.RawMessage(`"pro"`)},
		}
		e := event.Event{ID: id, Timestamp: now, AccountID: account, Data: event.Data{User: user}}
		switch i % 3 {
		case 0:
			e.Type = event.TypeUserCreated
		case 1:
			e.Type = event.TypeUserUpdated
			e.Data.PreviousAttributes = map[string]json.RawMessage{"email": json.RawMessage(`"old@example.com"`)}
		default:
			e.Type = event.TypeUserDeleted
		}
		events[i] = e
	}
	return events
}

// publishFunc publishes one event through a delivery path. It returns a
// function that waits until the path's workflows for the event have
// closed (nil when there are none).
type publishFunc func(ctx context.Context, e event.Event) (wait func(context.Context) error, err error)

// runPhase publishes events through publish and measures until every
// delivery has reached the receiver and every workflow has closed, or the
// phase timeout. With profile set, it profiles this process meanwhile.
func (r *runner) runPhase(ctx context.Context, name, desc string, events []event.Event, publish publishFunc, profile io.Writer) PhaseResult {
	cfg := r.cfg
	res := PhaseResult{Name: name, Description: desc, Expected: len(events) * len(r.subs), ServerCPUKnown: r.env.ServerPID != 0}
	ctx, cancel := context.WithTimeout(ctx, cfg.PhaseTimeout)
	defer cancel()

	rec := r.receiver.Record()
	index := make(map[string]int, len(events))
	for i, e := range events {
		index[e.ID] = i
	}
	starts := make([]time.Time, len(events))
	pubLat := make([]time.Duration, len(events))
	waits := make([]func(context.Context) error, len(events))
	var failed atomic.Int64
	var firstErr atomic.Value

	res.LoadBefore, _ = ReadLoadAverage()
	benchCPU0, _ := ProcessCPU(0)
	var serverCPU0 time.Duration
	if r.env.ServerPID != 0 {
		serverCPU0, _ = ProcessCPU(r.env.ServerPID)
	}
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			fmt.Fprintf(r.progress, "cpu profile: %v\n", err)
			profile = nil
		}
	}

	one := func(i int) {
		t := time.Now()
		starts[i] = t
		wait, err := publish(ctx, events[i])
		pubLat[i] = time.Since(t)
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		waits[i] = wait
	}
	start := time.Now()
	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		timer := time.NewTimer(0)
		<-timer.C
	schedule:
		for i := range events {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					break schedule
				}
			}
			wg.Add(1)
			go func() { defer wg.Done(); one(i) }()
		}
	} else {
		// Failed publishes are counted by one; the error says nothing more.
		_ = forEach(ctx, len(events), cfg.Concurrency, func(_ context.Context, i int) error { one(i); return nil })
	}
	wg.Wait()
	res.PublishErrs = int(failed.Load())
	published := len(events) - res.PublishErrs
	rec.Expect(published*len(r.subs), 0)
	if err := rec.Wait(ctx); err != nil {
		ok, _ := rec.Counts()
		res.Error = fmt.Sprintf("%d of %d deliveries arrived within %s", ok, published*len(r.subs), cfg.PhaseTimeout)
	}
	if e, _ := firstErr.Load().(string); e != "" {
		res.Error = joinErr(res.Error, fmt.Sprintf("%d publishes failed, first: %s", res.PublishErrs, e))
	}

	// Every workflow must close before the next phase starts, or the next
	// phase would pay for this one's tail.
	var closeErrs atomic.Int64
	var closeFirst atomic.Value
	sem := make(chan struct{}, 32)
	var cwg sync.WaitGroup
	hasWaits := false
	for _, w := range waits {
		if w == nil {
			continue
		}
		hasWaits = true
		cwg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; cwg.Done() }()
			if err := w(ctx); err != nil {
				closeErrs.Add(1)
				closeFirst.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	cwg.Wait()
	if hasWaits {
		res.CompletedSec = round2(time.Since(start).Seconds())
	}
	if n := closeErrs.Load(); n > 0 {
		res.Error = joinErr(res.Error, fmt.Sprintf("%d workflows did not complete as expected, first: %v", n, closeFirst.Load()))
	}

	if profile != nil {
		pprof.StopCPUProfile()
	}
	benchCPU1, _ := ProcessCPU(0)
	res.BenchCPUSec = round2((benchCPU1 - benchCPU0).Seconds())
	if r.env.ServerPID != 0 {
		serverCPU1, _ := ProcessCPU(r.env.ServerPID)
		res.ServerCPUSec = round2((serverCPU1 - serverCPU0).Seconds())
	}
	res.LoadAfter, _ = ReadLoadAverage()

	st := rec.Stats()
	res.Duplicates, res.Rejected = st.Duplicates, st.Rejected
	var last time.Time
	lat := make([]time.Duration, 0, len(st.Receipts))
	for k, at := range st.Receipts {
		i, ok := index[k.MessageID]
		if !ok {
			continue // a straggler of an earlier phase
		}
		lat = append(lat, at.Sub(starts[i]))
		if at.After(last) {
			last = at
		}
	}
	res.Received = len(lat)
	res.Receipt = Summarize(lat)
	var pl []time.Duration
	for i, d := range pubLat {
		if !starts[i].IsZero() {
			pl = append(pl, d)
		}
	}
	res.Publish = Summarize(pl)
	if !last.IsZero() {
		res.ElapsedSec = round2(last.Sub(start).Seconds())
		if el := last.Sub(start).Seconds(); el > 0 {
			res.DeliveriesPerSec = round2(float64(len(lat)) / el)
		}
	}
	if res.Received > 0 {
		res.CPUMsPerDeliv = round2((res.BenchCPUSec + res.ServerCPUSec) * 1000 / float64(res.Received))
	}
	if name != "warmup" {
		fmt.Fprintf(r.progress, "  %s: %d/%d delivered, %.1f deliveries/s, receipt p50 %.1f ms p99 %.1f ms, load %s\n",
			name, res.Received, res.Expected, res.DeliveriesPerSec, res.Receipt.P50Ms, res.Receipt.P99Ms, res.LoadAfter)
		if res.Error != "" {
			fmt.Fprintf(r.progress, "  %s incomplete: %s\n", name, res.Error)
		}
	}
	return res
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// publishUserhooks publishes through the production path.
func (r *runner) publishUserhooks(ctx context.Context, e event.Event) (func(context.Context) error, error) {
	rc, err := r.publisher.Publish(ctx, e)
	if err != nil {
		return nil, err
	}
	want := len(r.subs)
	return func(ctx context.Context) error {
		var sum workflows.Summary
		if err := r.pub.GetWorkflow(ctx, rc.WorkflowID, rc.RunID).Get(ctx, &sum); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
		if sum.Delivered != want {
			return fmt.Errorf("event %s: %d of %d delivered", e.ID, sum.Delivered, want)
		}
		return nil
	}, nil
}

// sampleHistories reads the histories of events' workflow trees.
func (r *runner) sampleHistories(ctx context.Context, events []event.Event) (HistoryStats, error) {
	trees := make([]EventTree, len(events))
	type job struct {
		tree, delivery int
		workflowID     string
	}
	var jobs []job
	for i, e := range events {
		trees[i].Deliveries = make([]HistoryCount, len(r.subs))
		jobs = append(jobs, job{i, -1, workflows.EventWorkflowID(e.ID)})
		for j, s := range r.subs {
			jobs = append(jobs, job{i, j, workflows.DeliveryWorkflowID(e.ID, s.ID)})
		}
	}
	err := forEach(ctx, len(jobs), 8, func(ctx context.Context, k int) error {
		j := jobs[k]
		h, err := FetchHistory(ctx, r.pub, j.workflowID, "")
		if err != nil {
			return err
		}
		if j.delivery < 0 {
			trees[j.tree].Parent = CountHistory(h)
		} else {
			trees[j.tree].Deliveries[j.delivery] = CountHistory(h)
		}
		return nil
	})
	if err != nil {
		return HistoryStats{}, err
	}
	return SummarizeTrees(trees), nil
}

// forEach runs fn(0) … fn(n-1), at most par at a time, and returns the
// first error. Once ctx is done it starts no more calls, and returns
// ctx's error if no call failed.
func forEach(ctx context.Context, n, par int, fn func(context.Context, int) error) error {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
