// Package starter publishes user lifecycle events from an application: it
// validates an event, gives it an ID, and starts its UserEventWorkflow.
//
//	c, _ := client.Dial(client.Options{HostPort: "localhost:7233"})
//	p := starter.New(c, starter.Options{})
//	receipt, err := p.Publish(ctx, event.Event{
//		Type:      event.TypeUserCreated,
//		AccountID: "acme",
//		Data:      event.Data{User: event.User{ID: "u_42", Email: "ada@example.com"}},
//	})
package starter

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/workflows"
)

// Options configure a Publisher.
type Options struct {
	// TaskQueue the workers poll; workflows.TaskQueue when empty.
	TaskQueue string
	// Now is the clock for events published without a timestamp; nil means
	// time.Now.
	Now func() time.Time
}

// Publisher publishes events. It is safe for concurrent use.
type Publisher struct {
	client client.Client
	opts   Options
}

// New returns a Publisher that starts workflows through c.
func New(c client.Client, opts Options) *Publisher {
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.TaskQueue
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Publisher{client: c, opts: opts}
}

// Receipt says what Publish did.
type Receipt struct {
	// Event is the event as it will be delivered (ID and timestamp filled
	// in). For a duplicate it is the event as published this time.
	Event      event.Event
	WorkflowID string
	RunID      string
	// Duplicate is true when an event with this ID had already been
	// published: nothing new was started, RunID is the original run's.
	Duplicate bool
}

// Publish validates e, fills in its ID and timestamp if missing, and starts
// its delivery. It is idempotent by event ID: publishing an ID again, while
// the first run is going or after it ended (within the namespace's
// retention), starts nothing and returns the original run with Duplicate set.
//
// Invalid events return an error matching event.ErrInvalid and start
// nothing.
func (p *Publisher) Publish(ctx context.Context, e event.Event) (Receipt, error) {
	e, err := event.Prepare(e, p.opts.Now())
	if err != nil {
		return Receipt{}, err
	}
	id := workflows.EventWorkflowID(e.ID)
	run, err := p.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                p.opts.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    workflows.EventSearchAttributes(e),
		StaticSummary:                            fmt.Sprintf("%s %s (account %s)", e.Type, e.Data.User.ID, e.AccountID),
		// Where the publishing process also runs a worker on the task queue
		// (`worker dev`, an application embedding one), the server hands
		// the event's first workflow task back in the start response: one
		// trip through the task queue less before the deliveries start.
		// Without a local worker with a free slot this asks nothing.
		EnableEagerStart: true,
	}, workflows.UserEventWorkflow, workflows.UserEventInput{Event: e})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return Receipt{Event: e, WorkflowID: id, RunID: started.RunId, Duplicate: true}, nil
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("start workflow %s: %w", id, err)
	}
	return Receipt{Event: e, WorkflowID: id, RunID: run.GetRunID()}, nil
}
