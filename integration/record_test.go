package integration

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/userhooks/userhooks/workflows"
)

// recordHistories records replay fixtures for the workflows package into
// workflows/testdata/histories/<label>:
//
//	go test ./integration -record-histories v2
//
// When a workflow changes, record under a new label and keep the old
// folders: they prove that histories of running workflows still replay.
var recordHistories = flag.String("record-histories", "", "record histories of finished workflows into workflows/testdata/histories/`label`")

// record saves the workflow's history as a replay fixture named name, when
// -record-histories is set.
func (e *env) record(name, workflowID string) {
	e.t.Helper()
	if *recordHistories == "" {
		return
	}
	h, err := e.tryHistory(workflowID)
	if err != nil {
		e.t.Fatalf("record %s: %v", workflowID, err)
	}
	b, err := marshalHistory(h)
	if err != nil {
		e.t.Fatal(err)
	}
	dir := filepath.Join("..", "workflows", "testdata", "histories", filepath.Base(*recordHistories))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// TestFanOut_SmallBatches exercises the batch path with a batch size of 2,
// which the publisher never sets, by starting the event workflow directly.
func TestFanOut_SmallBatches(t *testing.T) {
	e := newEnv(t)
	account := "acct-" + t.Name()
	rc := newReceiver(t)
	for i := 0; i < 5; i++ {
		e.subscribe(account, rc.srv.URL+"/?n="+itoa(i), nil, fast)
	}
	ev := userCreated(account, "u_1")
	ev.ID = "evt-batches-" + itoa(int(time.Now().UnixNano()%1e9))
	ev.Timestamp = time.Now().UTC().Truncate(time.Millisecond)
	ctx := context.Background()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    workflows.EventWorkflowID(ev.ID),
		TaskQueue:             e.taskQueue,
		TypedSearchAttributes: workflows.EventSearchAttributes(ev),
	}, workflows.UserEventWorkflow, workflows.UserEventInput{Event: ev, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var sum workflows.Summary
	if err := run.Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	if want := (workflows.Summary{Subscriptions: 5, Delivered: 5, Batches: 3}); sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
	if n := len(rc.requests()); n != 5 {
		t.Errorf("receiver got %d requests, want 5", n)
	}
	e.record("userevent-batched", run.GetID())
	e.record("batch", workflows.BatchWorkflowID(ev.ID, 1))
}
