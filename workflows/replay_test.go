package workflows_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/workflows"
)

// TestReplay_RecordedHistories replays every recorded history against the
// current workflow code. A failure means a change is not backward
// compatible with workflows that may be running: guard it with
// workflow.GetVersion instead. Fixtures are recorded per release with
// `go test ./integration -record-histories <label>`.
func TestReplay_RecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories")
	}
	for _, f := range files {
		t.Run(filepath.Join(filepath.Base(filepath.Dir(f)), filepath.Base(f)), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(workflows.UserEventWorkflow)
			r.RegisterWorkflow(workflows.DeliveryBatchWorkflow)
			r.RegisterWorkflow(workflows.DeliveryWorkflow)
			r.RegisterWorkflowWithOptions(workflows.EndpointGateWorkflow, workflow.RegisterOptions{Name: activities.GateWorkflowType})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Errorf("replay %s: %v", f, err)
			}
		})
	}
}
