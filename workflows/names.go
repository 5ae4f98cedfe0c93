package workflows

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// TaskQueue is the default task queue of userhooks workers and workflows.
const TaskQueue = "userhooks"

// SignalRetryNow makes a delivery that is waiting for its next attempt try
// at once (`temporal workflow signal --name retry-now`).
const SignalRetryNow = "retry-now"

// Workflow ID schemes. IDs are deterministic so that publishing an event
// twice finds the first run, and so that an operator can name a delivery
// without looking it up.
func EventWorkflowID(eventID string) string { return "event/" + eventID }

// DeliveryWorkflowID is the ID of the delivery of an event to a subscription.
func DeliveryWorkflowID(eventID, subscriptionID string) string {
	return "delivery/" + eventID + "/" + subscriptionID
}

// BatchWorkflowID is the ID of the n-th batch (from 1) of a large fan-out.
func BatchWorkflowID(eventID string, n int) string {
	return fmt.Sprintf("event/%s/batch/%d", eventID, n)
}

// Custom search attributes. Together with Temporal's own (WorkflowType,
// ExecutionStatus, StartTime, CloseTime) they make "all failed deliveries of
// subscription X since T" one visibility query.
var (
	AttrEventID        = temporal.NewSearchAttributeKeyKeyword("UserhooksEventID")
	AttrEventType      = temporal.NewSearchAttributeKeyKeyword("UserhooksEventType")
	AttrUserID         = temporal.NewSearchAttributeKeyKeyword("UserhooksUserID")
	AttrAccountID      = temporal.NewSearchAttributeKeyKeyword("UserhooksAccountID")
	AttrSubscriptionID = temporal.NewSearchAttributeKeyKeyword("UserhooksSubscriptionID")
	AttrDeliveryStatus = temporal.NewSearchAttributeKeyKeyword("UserhooksDeliveryStatus")
	AttrAttempts       = temporal.NewSearchAttributeKeyInt64("UserhooksAttempts")
)

// SearchAttributes lists every custom search attribute with its type, as the
// Temporal operator API wants them.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		AttrEventID.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrEventType.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrUserID.GetName():         enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrAccountID.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrSubscriptionID.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrDeliveryStatus.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrAttempts.GetName():       enumspb.INDEXED_VALUE_TYPE_INT,
	}
}

// RegisterSearchAttributes adds the custom search attributes that the
// namespace lacks. It is idempotent; it fails if one exists with another
// type.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range SearchAttributes() {
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return fmt.Errorf("search attribute %s exists with type %s, want %s", name, got, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		return fmt.Errorf("add search attributes to namespace %s: %w", namespace, err)
	}
	return nil
}
