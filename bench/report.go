package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Phase names.
const (
	PhaseUserhooks = "userhooks"
	PhaseCeiling   = "ceiling"
	PhaseDirect    = "direct"
)

// Report is the outcome of one benchmark run. It marshals to JSON as is.
type Report struct {
	Started  time.Time `json:"started"`
	Machine  Machine   `json:"machine"`
	Temporal string    `json:"temporal"`
	Workload Workload  `json:"workload"`
	// Phases in the order they ran: userhooks, then the references.
	Phases []PhaseResult `json:"phases"`
	// History of a sample of userhooks' events, and of the ceiling's
	// workflows.
	History        *HistoryStats   `json:"history,omitempty"`
	CeilingHistory *WorkflowSample `json:"ceiling_history,omitempty"`
	Ratios         *Ratios         `json:"ratios,omitempty"`
	Waiting        *WaitingResult  `json:"waiting,omitempty"`
	Targets        []TargetCheck   `json:"targets"`
	Notes          []string        `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`
}

// Workload is what was published.
type Workload struct {
	Events        int `json:"events"`
	Subscriptions int `json:"subscriptions"`
	Deliveries    int `json:"deliveries"`
	// Rate is events per second in open-loop mode; 0 means full speed with
	// Concurrency publishers.
	Rate        float64 `json:"rate_per_second,omitempty"`
	DurationSec float64 `json:"duration_seconds,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	Workers     int     `json:"workers"`
	// MaxInFlight is the subscriptions' per-endpoint limit (0: none, the
	// plain path without gates).
	MaxInFlight int  `json:"max_in_flight,omitempty"`
	Hosts       int  `json:"receiver_hosts"`
	Encrypted   bool `json:"encrypted_payloads"`
	StickyCache int  `json:"sticky_cache,omitempty"`
	// SeparatePublisher is true when events were published through a
	// connection without a worker, so none started eagerly.
	SeparatePublisher bool `json:"separate_publisher,omitempty"`
}

// Mode says how events were published.
func (w Workload) Mode() string {
	if w.Rate > 0 {
		return fmt.Sprintf("open loop at %g events/s for %gs", w.Rate, w.DurationSec)
	}
	return fmt.Sprintf("full speed, %d concurrent publishers", w.Concurrency)
}

// PhaseResult is the outcome of publishing the workload through one
// delivery path.
type PhaseResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Expected    int    `json:"expected_deliveries"`
	Received    int    `json:"received_deliveries"`
	Duplicates  int    `json:"duplicates"`
	Rejected    int    `json:"rejected_signatures"`
	PublishErrs int    `json:"publish_errors"`
	// ElapsedSec runs from the first publish to the last receipt;
	// DeliveriesPerSec is Received / ElapsedSec.
	ElapsedSec       float64 `json:"elapsed_seconds"`
	DeliveriesPerSec float64 `json:"deliveries_per_second"`
	// CompletedSec runs from the first publish until every workflow of the
	// phase had closed (0 for the direct floor).
	CompletedSec float64 `json:"completed_seconds,omitempty"`
	// Publish is the latency of one publish call (for the ceiling: of
	// starting an event's workflows; for the direct floor: of sending all
	// of an event's deliveries). Receipt is publish start → first receipt,
	// per delivery.
	Publish LatencySummary `json:"publish"`
	Receipt LatencySummary `json:"publish_to_receipt"`
	// CPU seconds used during the phase by this process (workers,
	// publisher, receiver) and by the Temporal server process (when known).
	BenchCPUSec    float64     `json:"bench_cpu_seconds"`
	ServerCPUSec   float64     `json:"server_cpu_seconds,omitempty"`
	CPUMsPerDeliv  float64     `json:"cpu_ms_per_delivery"`
	LoadBefore     LoadAverage `json:"load_before"`
	LoadAfter      LoadAverage `json:"load_after"`
	Error          string      `json:"error,omitempty"`
	ServerCPUKnown bool        `json:"server_cpu_known"`
}

// Ratios set userhooks against the references of the same run. Each is
// userhooks' figure divided by the reference's; 0 when not measured.
type Ratios struct {
	ThroughputVsCeiling float64 `json:"throughput_vs_ceiling"`
	ThroughputVsDirect  float64 `json:"throughput_vs_direct"`
	P50VsCeiling        float64 `json:"p50_vs_ceiling"`
	P99VsCeiling        float64 `json:"p99_vs_ceiling"`
	P50VsDirect         float64 `json:"p50_vs_direct"`
	P99VsDirect         float64 `json:"p99_vs_direct"`
	CPUVsCeiling        float64 `json:"cpu_per_delivery_vs_ceiling"`
	CPUVsDirect         float64 `json:"cpu_per_delivery_vs_direct"`
}

// WaitingResult is the worker's memory with many deliveries waiting
// between retries.
type WaitingResult struct {
	Deliveries int `json:"deliveries"`
	// Waiting is how many the server's visibility counted as retrying when
	// memory was measured.
	Waiting   int     `json:"waiting"`
	SettleSec float64 `json:"settle_seconds"`
	// BaselineRSS is this process's RSS before the phase, after a
	// garbage collection that returned free memory to the OS; RSS is
	// measured with the deliveries waiting, as is, and RSSAfterGC after
	// the same collection.
	BaselineRSS int64       `json:"baseline_rss_bytes"`
	RSS         int64       `json:"rss_bytes"`
	RSSAfterGC  int64       `json:"rss_after_gc_bytes"`
	PeakRSS     int64       `json:"peak_rss_bytes"`
	HeapInuse   int64       `json:"heap_inuse_bytes"`
	Goroutines  int         `json:"goroutines"`
	StickyCache int         `json:"sticky_cache"`
	Load        LoadAverage `json:"load"`
	Error       string      `json:"error,omitempty"`
}

// TargetCheck is one of the targets and how the run did.
type TargetCheck struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Status is "met", "missed" or "not measured".
	Status string `json:"status"`
}

// Target statuses.
const (
	StatusMet         = "met"
	StatusMissed      = "missed"
	StatusNotMeasured = "not measured"
)

// Phase returns the result of the named phase, or nil.
func (r *Report) Phase(name string) *PhaseResult {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

// Evaluate computes Ratios and Targets from the phases, history and
// waiting results. It may be called again after they change.
func (r *Report) Evaluate() {
	ours, ceil, direct := r.Phase(PhaseUserhooks), r.Phase(PhaseCeiling), r.Phase(PhaseDirect)
	r.Ratios = nil
	if ours != nil && (ceil != nil || direct != nil) {
		var q Ratios
		if ceil != nil {
			q.ThroughputVsCeiling = ratio(ours.DeliveriesPerSec, ceil.DeliveriesPerSec)
			q.P50VsCeiling = ratio(ours.Receipt.P50Ms, ceil.Receipt.P50Ms)
			q.P99VsCeiling = ratio(ours.Receipt.P99Ms, ceil.Receipt.P99Ms)
			q.CPUVsCeiling = ratio(ours.CPUMsPerDeliv, ceil.CPUMsPerDeliv)
		}
		if direct != nil {
			q.ThroughputVsDirect = ratio(ours.DeliveriesPerSec, direct.DeliveriesPerSec)
			q.P50VsDirect = ratio(ours.Receipt.P50Ms, direct.Receipt.P50Ms)
			q.P99VsDirect = ratio(ours.Receipt.P99Ms, direct.Receipt.P99Ms)
			q.CPUVsDirect = ratio(ours.CPUMsPerDeliv, direct.CPUMsPerDeliv)
		}
		r.Ratios = &q
	}

	r.Targets = r.Targets[:0]
	steady := r.Workload.Rate > 0
	atTargetLoad := r.Workload.Rate >= 20 && r.Workload.Subscriptions >= 10
	at := fmt.Sprintf("at %g events/s × fan-out %d", r.Workload.Rate, r.Workload.Subscriptions)
	latency := func(name, target string, limit float64, got func(LatencySummary) float64) {
		t := TargetCheck{Name: name, Target: target, Status: StatusNotMeasured}
		if ours != nil && steady && ours.Receipt.Count > 0 && ours.Error == "" {
			v := got(ours.Receipt)
			t.Measured = fmt.Sprintf("%.1f ms %s", v, at)
			t.Status = status(v <= limit)
			if t.Status == StatusMet && !atTargetLoad {
				// Met under a lighter load says nothing of the target's.
				t.Status = StatusNotMeasured
				t.Measured += " (lighter than the target's load)"
			}
		} else {
			t.Measured = "needs an open-loop run (-rate)"
		}
		r.Targets = append(r.Targets, t)
	}
	latency("publish→receipt p50", "≤ 50 ms at 20 events/s × fan-out 10", 50, func(s LatencySummary) float64 { return s.P50Ms })
	latency("publish→receipt p99", "≤ 250 ms at 20 events/s × fan-out 10", 250, func(s LatencySummary) float64 { return s.P99Ms })

	tp := TargetCheck{Name: "throughput vs single-workflow ceiling", Target: "≥ 0.8 × ceiling, fan-out 10", Status: StatusNotMeasured}
	switch {
	case steady:
		tp.Measured = "needs a full-speed run (no -rate)"
	case ours == nil || ceil == nil || ours.Error != "" || ceil.Error != "":
		tp.Measured = "needs both phases, complete"
	default:
		tp.Measured = fmt.Sprintf("%.2f × (%.0f vs %.0f deliveries/s, fan-out %d)", r.Ratios.ThroughputVsCeiling,
			ours.DeliveriesPerSec, ceil.DeliveriesPerSec, r.Workload.Subscriptions)
		tp.Status = status(r.Ratios.ThroughputVsCeiling >= 0.8)
	}
	r.Targets = append(r.Targets, tp)

	he := TargetCheck{Name: "history events per first-attempt delivery workflow", Target: "≤ 8", Status: StatusNotMeasured}
	hp := TargetCheck{Name: "parent history events per subscription", Target: "≤ 4", Status: StatusNotMeasured}
	if h := r.History; h != nil && h.SampledDeliveries > 0 {
		he.Measured = fmt.Sprintf("%d (max of %d sampled; %d delivered on attempt 1)", h.DeliveryEventsMax, h.SampledDeliveries, h.FirstAttemptDeliveries)
		he.Status = status(h.DeliveryEventsMax <= 8 && h.FirstAttemptDeliveries == h.SampledDeliveries)
		hp.Measured = fmt.Sprintf("%.2f (fan-out %d)", h.ParentEventsPerSubscription, r.Workload.Subscriptions)
		hp.Status = status(h.ParentEventsPerSubscription <= 4)
	}
	r.Targets = append(r.Targets, he, hp)

	rss := TargetCheck{Name: "worker RSS with 10,000 deliveries waiting", Target: "< 150 MiB", Status: StatusNotMeasured, Measured: "needs -waiting 10000"}
	if w := r.Waiting; w != nil && w.Error == "" {
		rss.Measured = fmt.Sprintf("%s with %d waiting (%s after GC)", mib(w.RSS), w.Waiting, mib(w.RSSAfterGC))
		if w.Waiting >= 10000 {
			rss.Status = status(w.RSS < 150<<20)
		}
	}
	r.Targets = append(r.Targets, rss)
}

func status(ok bool) string {
	if ok {
		return StatusMet
	}
	return StatusMissed
}

func ratio(a, b float64) float64 {
	if b == 0 || a == 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteText writes the report for people to read.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	wl := r.Workload
	p("userhooks benchmark, %s\n", r.Started.UTC().Format(time.RFC3339))
	p("machine:  %d CPUs, %s/%s, %s\n", r.Machine.CPUs, r.Machine.OS, r.Machine.Arch, r.Machine.GoVersion)
	p("temporal: %s\n", r.Temporal)
	enc := "encrypted payloads"
	if !wl.Encrypted {
		enc = "plaintext payloads"
	}
	limit := "no per-endpoint limit"
	if wl.MaxInFlight > 0 {
		limit = fmt.Sprintf("max_in_flight %d per subscription (gated)", wl.MaxInFlight)
	}
	pub := "published through the first worker's connection (eager start)"
	if wl.SeparatePublisher {
		pub = "published through a connection of its own (no eager start)"
	}
	p("workload: %d events × %d subscriptions = %d deliveries; %s; %d worker(s); receiver on %d host(s); %s; %s; %s\n",
		wl.Events, wl.Subscriptions, wl.Deliveries, wl.Mode(), wl.Workers, wl.Hosts, enc, limit, pub)

	if len(r.Phases) > 0 {
		p("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "phase\tdelivered\tdeliv/s\tdone (s)\tpublish p50/p95/p99 ms\treceipt p50/p95/p99/max ms\tCPU ms/deliv (bench+server)\tload before → after")
		for _, ph := range r.Phases {
			done := "-"
			if ph.CompletedSec > 0 {
				done = fmt.Sprintf("%.1f", ph.CompletedSec)
			}
			cpu := fmt.Sprintf("%.2f (%.1f+%.1f s)", ph.CPUMsPerDeliv, ph.BenchCPUSec, ph.ServerCPUSec)
			if !ph.ServerCPUKnown {
				cpu = fmt.Sprintf("%.2f (bench only: %.1f s)", ph.CPUMsPerDeliv, ph.BenchCPUSec)
			}
			fmt.Fprintf(tw, "%s\t%d/%d\t%.1f\t%s\t%.1f/%.1f/%.1f\t%.1f/%.1f/%.1f/%.1f\t%s\t%s → %s\n",
				ph.Name, ph.Received, ph.Expected, ph.DeliveriesPerSec, done,
				ph.Publish.P50Ms, ph.Publish.P95Ms, ph.Publish.P99Ms,
				ph.Receipt.P50Ms, ph.Receipt.P95Ms, ph.Receipt.P99Ms, ph.Receipt.MaxMs,
				cpu, ph.LoadBefore, ph.LoadAfter)
		}
		tw.Flush()
		for _, ph := range r.Phases {
			p("  %-9s %s\n", ph.Name+":", ph.Description)
			if ph.Duplicates+ph.Rejected+ph.PublishErrs > 0 {
				p("            %d duplicates, %d rejected signatures, %d publish errors\n", ph.Duplicates, ph.Rejected, ph.PublishErrs)
			}
			if ph.Error != "" {
				p("            INCOMPLETE: %s\n", ph.Error)
			}
		}
	}

	if q := r.Ratios; q != nil {
		p("\nuserhooks as a ratio of the references (same run):\n")
		p("  throughput   %.3f × ceiling   %.3f × direct\n", q.ThroughputVsCeiling, q.ThroughputVsDirect)
		p("  receipt p50  %.3f × ceiling   %.3f × direct\n", q.P50VsCeiling, q.P50VsDirect)
		p("  receipt p99  %.3f × ceiling   %.3f × direct\n", q.P99VsCeiling, q.P99VsDirect)
		p("  CPU/deliv    %.3f × ceiling   %.3f × direct\n", q.CPUVsCeiling, q.CPUVsDirect)
	}

	if h := r.History; h != nil {
		p("\nhistory (%d events, %d deliveries sampled):\n", h.SampledEvents, h.SampledDeliveries)
		p("  parent (UserEventWorkflow):  %.1f events, %.1f workflow tasks; %.2f events per subscription\n", h.ParentEventsMean, h.ParentTasksMean, h.ParentEventsPerSubscription)
		p("  DeliveryWorkflow:            %.1f events (max %d), %.1f workflow tasks; %d of %d delivered on attempt 1\n", h.DeliveryEventsMean, h.DeliveryEventsMax, h.DeliveryTasksMean, h.FirstAttemptDeliveries, h.SampledDeliveries)
		p("  per delivery, all included:  %.2f events, %.2f workflow tasks\n", h.EventsPerDelivery, h.TasksPerDelivery)
		p("  per published event:         %.1f events, %.1f workflow tasks\n", h.EventsPerEvent, h.TasksPerEvent)
		p("  parent events by type:       %s\n", formatCounts(h.ParentExample))
		p("  delivery events by type:     %s\n", formatCounts(h.DeliveryExample))
	}
	if c := r.CeilingHistory; c != nil && c.Sampled > 0 {
		p("  ceiling workflow:            %.1f events, %.1f workflow tasks (%s)\n", c.EventsMean, c.TasksMean, formatCounts(c.Example))
	}

	if wt := r.Waiting; wt != nil {
		p("\nwaiting between retries: %d deliveries, %d counted waiting after %.1f s (load %s)\n", wt.Deliveries, wt.Waiting, wt.SettleSec, wt.Load)
		if wt.Error != "" {
			p("  INCOMPLETE: %s\n", wt.Error)
		}
		p("  process RSS %s (baseline %s, after GC %s, peak %s); Go heap in use %s; %d goroutines; sticky cache %d\n",
			mib(wt.RSS), mib(wt.BaselineRSS), mib(wt.RSSAfterGC), mib(wt.PeakRSS), mib(wt.HeapInuse), wt.Goroutines, wt.StickyCache)
	}

	if len(r.Targets) > 0 {
		p("\ntargets (dev server, this machine):\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, t := range r.Targets {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Name, t.Target, strings.ToUpper(t.Status), t.Measured)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		p("note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatCounts prints event counts by type in a stable order: most
// frequent first, then by name.
func formatCounts(m map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return cmp.Compare(a.k, b.k)
	})
	parts := make([]string, len(all))
	for i, e := range all {
		parts[i] = fmt.Sprintf("%s %d", e.k, e.v)
	}
	return strings.Join(parts, ", ")
}
