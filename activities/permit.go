package activities

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
)

// Per-endpoint concurrency limits. A subscription with a limit has a gate,
// the workflow workflows.EndpointGateWorkflow with ID GateWorkflowID, that
// counts the requests in flight to its endpoint across all workers. Before
// each attempt, a DeliveryWorkflow asks it for a permit with RequestPermit;
// the gate answers with a signal, and the delivery gives the permit back
// with a signal after the attempt. The request's types live here because
// RequestPermit starts the gate, and this package imports no workflow code.

// GateWorkflowType is the registered name of workflows.EndpointGateWorkflow.
const GateWorkflowType = "EndpointGateWorkflow"

// SignalPermitRequest is the signal that asks a gate for a permit; its
// payload is a PermitRequest.
const SignalPermitRequest = "permit-request"

// GateWorkflowID is the workflow ID of the gate of a subscription:
// "endpoint/<subscriptionID>". There is at most one running gate per
// subscription; every worker reaches the same one.
func GateWorkflowID(subscriptionID string) string { return "endpoint/" + subscriptionID }

// PermitRequest asks a gate for one permit: one request in flight to its
// endpoint. The gate answers by signalling the requesting run.
type PermitRequest struct {
	// RequestID identifies the request: a gate grants a request ID at most
	// once, however often it is sent.
	RequestID string
	// WorkflowID and RunID are the run that gets the grant.
	WorkflowID string
	RunID      string
	// Limit is the subscription's limit as the requester knows it; the
	// gate applies the latest one it receives.
	Limit int
}

// GateStart is how RequestPermit starts a gate that is not running. Its
// fields are the first fields of the gate's input (workflows.GateInput
// embeds it).
type GateStart struct {
	SubscriptionID string
	// Endpoint is the display form of the endpoint (scheme and host), for
	// the gate's summary.
	Endpoint string `json:",omitempty"`
}

// RequestPermitInput is the input of RequestPermit.
type RequestPermitInput struct {
	Gate    GateStart
	Request PermitRequest
}

// RequestPermit sends a permit request to the gate of a subscription,
// starting the gate if none runs (SignalWithStartWorkflow), on the task
// queue of the calling workflow. It returns once the gate has the request;
// the grant comes later, as a signal to the requesting run. It is
// idempotent: a gate ignores a request ID it has seen. Workflows run it as
// a local activity, so a request costs the delivery one history event.
func (a *Activities) RequestPermit(ctx context.Context, in RequestPermitInput) error {
	info := activity.GetInfo(ctx)
	summary := "Concurrency gate of subscription " + in.Gate.SubscriptionID
	if in.Gate.Endpoint != "" {
		summary += " (" + in.Gate.Endpoint + ")"
	}
	id := GateWorkflowID(in.Gate.SubscriptionID)
	_, err := activity.GetClient(ctx).SignalWithStartWorkflow(ctx, id, SignalPermitRequest, in.Request,
		client.StartWorkflowOptions{
			TaskQueue: info.TaskQueue,
			// A gate that completed (idle) is started again.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         summary,
		},
		GateWorkflowType, in.Gate)
	if err != nil {
		return fmt.Errorf("request a permit from %s for %s: %w", id, in.Request.WorkflowID, err)
	}
	return nil
}
