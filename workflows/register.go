package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/userhooks/userhooks/activities"
)

// Register registers every workflow and activity of userhooks with a worker.
// The worker main, the dev command and the integration tests all use it, so
// they run the same code.
func Register(r worker.Registry, a *activities.Activities) {
	r.RegisterWorkflow(UserEventWorkflow)
	r.RegisterWorkflow(DeliveryBatchWorkflow)
	r.RegisterWorkflow(DeliveryWorkflow)
	r.RegisterWorkflowWithOptions(EndpointGateWorkflow, workflow.RegisterOptions{Name: activities.GateWorkflowType})
	r.RegisterActivity(a)
}
