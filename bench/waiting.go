package bench

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	batchpb "go.temporal.io/api/batch/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/delivery"
)

// waitingSchedule makes a delivery's first failed attempt wait an hour:
// long enough to stay parked for the whole measurement.
var waitingSchedule = &delivery.Schedule{Delays: []delivery.Duration{delivery.Duration(time.Hour)}}

// runWaiting parks deliveries between retries and measures this
// process's memory once the server counts them all as waiting.
func (r *runner) runWaiting(ctx context.Context) WaitingResult {
	cfg := r.cfg
	fan := min(cfg.WaitingFanOut, cfg.Waiting)
	nEvents := (cfg.Waiting + fan - 1) / fan
	res := WaitingResult{Deliveries: nEvents * fan, StickyCache: cfg.StickyCache}
	if res.StickyCache == 0 {
		res.StickyCache = 10000 // the SDK's default
	}
	account := "bench-wait-" + r.id
	fmt.Fprintf(r.progress, "waiting: %d events × %d subscriptions answering 503, first retry in 1h…\n", nEvents, fan)

	// Subscriptions are created before the baseline, so the baseline
	// holds everything but the waiting workflows.
	for i := range fan {
		if _, err := r.subscribe(ctx, account, fmt.Sprintf("w%d", i), i, true, waitingSchedule, 0); err != nil {
			res.Error = err.Error()
			return res
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	if m, err := ReadMemory(0); err == nil {
		res.BaselineRSS = m.RSSBytes
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.PhaseTimeout)
	defer cancel()
	start := time.Now()
	rec := r.receiver.Record()
	events := makeEvents(account, nEvents)
	var failed atomic.Int64
	_ = forEach(ctx, len(events), cfg.Concurrency, func(ctx context.Context, i int) error {
		if _, err := r.publisher.Publish(ctx, events[i]); err != nil {
			failed.Add(1)
		}
		return nil
	})
	if n := failed.Load(); n > 0 {
		res.Error = fmt.Sprintf("%d of %d publishes failed", n, nEvents)
		return res
	}
	rec.Expect(0, res.Deliveries)
	if err := rec.Wait(ctx); err != nil {
		_, got := rec.Counts()
		res.Error = fmt.Sprintf("%d of %d first attempts arrived within %s", got, res.Deliveries, cfg.PhaseTimeout)
		return res
	}

	// The receiver has answered every first attempt; each delivery waits
	// once its workflow has recorded the failure and started its timer,
	// which the status search attribute (set in the same workflow task)
	// shows.
	query := fmt.Sprintf("WorkflowType = 'DeliveryWorkflow' AND UserhooksAccountID = '%s' AND UserhooksDeliveryStatus = '%s' AND ExecutionStatus = 'Running'",
		account, delivery.StatusRetrying)
	waiting, err := r.countUntil(ctx, query, res.Deliveries)
	res.Waiting = waiting
	if err != nil {
		res.Error = fmt.Sprintf("%d of %d deliveries counted waiting within %s: %v", waiting, res.Deliveries, cfg.PhaseTimeout, err)
	}
	res.SettleSec = round2(time.Since(start).Seconds())
	res.Load, _ = ReadLoadAverage()
	if m, err := ReadMemory(0); err == nil {
		res.RSS, res.PeakRSS = m.RSSBytes, m.PeakBytes
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapInuse = int64(ms.HeapInuse)
	res.Goroutines = runtime.NumGoroutine()
	runtime.GC()
	debug.FreeOSMemory()
	if m, err := ReadMemory(0); err == nil {
		res.RSSAfterGC = m.RSSBytes
	}
	fmt.Fprintf(r.progress, "  waiting: %d counted waiting after %.1f s; RSS %s (baseline %s, after GC %s)\n",
		res.Waiting, res.SettleSec, mib(res.RSS), mib(res.BaselineRSS), mib(res.RSSAfterGC))

	if cfg.TerminateWaiting {
		_, err := r.pub.WorkflowService().StartBatchOperation(context.WithoutCancel(ctx), &workflowservice.StartBatchOperationRequest{
			Namespace:       r.env.Namespace,
			VisibilityQuery: fmt.Sprintf("UserhooksAccountID = '%s' AND ExecutionStatus = 'Running'", account),
			JobId:           uuid.NewString(),
			Reason:          "userhooks benchmark finished",
			Operation: &workflowservice.StartBatchOperationRequest_TerminationOperation{
				TerminationOperation: &batchpb.BatchOperationTermination{},
			},
		})
		if err != nil {
			res.Error = joinErr(res.Error, "terminate the waiting deliveries: "+err.Error())
		}
	}
	return res
}

// countUntil polls the server's visibility until query counts at least
// want workflows, or ctx ends; it returns the last count.
func (r *runner) countUntil(ctx context.Context, query string, want int) (int, error) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var (
		got     int
		lastErr error
	)
	for {
		resp, err := r.pub.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: r.env.Namespace, Query: query})
		if err == nil {
			got = int(resp.GetCount())
			if got >= want {
				return got, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if lastErr != nil {
				return got, fmt.Errorf("%w (last count error: %v)", ctx.Err(), lastErr)
			}
			return got, ctx.Err()
		}
	}
}
