package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/event"
)

// CeilingWorkflowName is the workflow type of the single-workflow
// ceiling. Only the benchmark registers it.
const CeilingWorkflowName = "BenchCeilingWorkflow"

// ceiling is the cheapest durable delivery Temporal allows: one workflow
// per delivery whose single workflow task runs userhooks' own Deliver as a
// local activity, started eagerly by a client that has a worker for its
// task queue, so that the first workflow task comes back with the start
// and runs at once.
type ceiling struct {
	acts *activities.Activities
}

// Workflow delivers one event to one subscription with one attempt.
func (c *ceiling) Workflow(ctx workflow.Context, in activities.DeliverInput) (delivery.Attempt, error) {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: activities.DefaultRequestTimeout + 15*time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var rec delivery.Attempt
	err := workflow.ExecuteLocalActivity(ctx, c.acts.Deliver, in).Get(ctx, &rec)
	return rec, err
}

// runCeiling runs the ceiling phase on workers of their own task queue,
// one per userhooks worker client, and samples its histories.
func (r *runner) runCeiling(ctx context.Context) (PhaseResult, *WorkflowSample, error) {
	tq := r.taskQueue + "-ceiling"
	cw := &ceiling{acts: r.acts}
	var ws []worker.Worker
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()
	for _, c := range r.wclients {
		w := worker.New(c, tq, r.cfg.WorkerOptions)
		w.RegisterWorkflowWithOptions(cw.Workflow, workflow.RegisterOptions{Name: CeilingWorkflowName})
		if err := w.Start(); err != nil {
			return PhaseResult{}, nil, fmt.Errorf("bench: start ceiling worker: %w", err)
		}
		ws = append(ws, w)
	}
	var rr atomic.Uint64
	// At most Concurrency starts at a time, as userhooks' phase has at
	// most Concurrency publishes at a time: each event's workflows start
	// concurrently, but full speed does not mean Concurrency × fan-out
	// starts in flight.
	slots := make(chan struct{}, r.cfg.Concurrency)
	start := func(ctx context.Context, e event.Event, s benchSub) (client.WorkflowRun, error) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-slots }()
		// Eager start needs the client whose worker polls the task queue;
		// spread the starts over the workers' clients.
		c := r.wclients[int(rr.Add(1))%len(r.wclients)]
		return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:               "bench-ceiling/" + e.ID + "/" + s.ID,
			TaskQueue:        tq,
			EnableEagerStart: true,
		}, CeilingWorkflowName, activities.DeliverInput{Event: e, SubscriptionID: s.ID, Attempt: 1})
	}
	publish := func(ctx context.Context, e event.Event) (func(context.Context) error, error) {
		runs := make([]client.WorkflowRun, len(r.subs))
		errs := make([]error, len(r.subs))
		var wg sync.WaitGroup
		for j, s := range r.subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs[j], errs[j] = start(ctx, e, s)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context) error {
			for _, run := range runs {
				var rec delivery.Attempt
				if err := run.Get(ctx, &rec); err != nil {
					return fmt.Errorf("ceiling workflow %s: %w", run.GetID(), err)
				}
				if !rec.Succeeded() {
					return fmt.Errorf("ceiling workflow %s: %s", run.GetID(), rec.Error)
				}
			}
			return nil
		}, nil
	}

	if r.cfg.Warmup > 0 {
		r.runPhase(ctx, "warmup", "", r.makeEvents(r.cfg.Warmup), publish, nil)
	}
	events := r.makeEvents(r.cfg.events())
	fmt.Fprintf(r.progress, "single-workflow ceiling…\n")
	res := r.runPhase(ctx, PhaseCeiling,
		"one workflow per delivery, started eagerly, running the same Deliver as a local activity (no parent, no search attributes)",
		events, publish, nil)

	var sample *WorkflowSample
	if n := min(r.cfg.HistorySample*len(r.subs), len(events)*len(r.subs), 50); n > 0 && ctx.Err() == nil {
		counts := make([]HistoryCount, n)
		read := make([]bool, n)
		// A workflow whose start failed has no history: sample the others.
		_ = forEach(ctx, n, 8, func(ctx context.Context, k int) error {
			e, s := events[k/len(r.subs)], r.subs[k%len(r.subs)]
			h, err := FetchHistory(ctx, r.pub, "bench-ceiling/"+e.ID+"/"+s.ID, "")
			if err != nil {
				return err
			}
			counts[k], read[k] = CountHistory(h), true
			return nil
		})
		var ok []HistoryCount
		for k, c := range counts {
			if read[k] {
				ok = append(ok, c)
			}
		}
		if len(ok) > 0 {
			s := SummarizeWorkflows(ok)
			sample = &s
		}
	}
	return res, sample, nil
}
