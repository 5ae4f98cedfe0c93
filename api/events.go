package api

import (
	"errors"
	"net/http"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/event"
)

// publishResponse is the answer to POST /v1/events.
type publishResponse struct {
	EventID    string `json:"event_id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Duplicate is true when the event ID had been published before:
	// nothing new started, RunID is the original run's.
	Duplicate bool        `json:"duplicate"`
	Event     event.Event `json:"event"`
}

// publishEvent handles POST /v1/events: the body is an event envelope whose
// id, timestamp and account_id may be left out.
func (s *server) publishEvent(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := parseQuery(r).err(); err != nil {
		return err
	}
	body, err := readBody(w, r, event.MaxBodyBytes, false, mediaJSON)
	if err != nil {
		return err
	}
	// event.DecodeStrict would refuse a missing id or timestamp, which a
	// publisher may leave to us; decode as strictly (unknown fields, data
	// after the object), then let Prepare fill them in and validate.
	var e event.Event
	if err := decodeStrict(body, &e); err != nil {
		return err
	}
	switch e.AccountID {
	case "":
		e.AccountID = key.AccountID
	case key.AccountID:
	default:
		// Compared with the key's account only: whether the named account
		// exists is never looked up, so the answer tells the caller nothing
		// about other accounts.
		return unprocessable("the event is invalid", "account_id does not match the API key's account")
	}
	e, err = event.Prepare(e, s.now())
	if err != nil {
		return invalidEvent(err)
	}
	receipt, err := s.cfg.Publisher.Publish(r.Context(), e)
	if err != nil {
		if errors.Is(err, event.ErrInvalid) {
			return invalidEvent(err)
		}
		infoOf(r).err = err
		return &problem{Status: http.StatusServiceUnavailable,
			Detail: "the event could not be handed to the delivery engine; retry with the same id (publishing is idempotent by id)"}
	}
	status := http.StatusAccepted
	if receipt.Duplicate {
		status = http.StatusOK
	}
	return writeJSON(w, status, publishResponse{
		EventID:    receipt.Event.ID,
		WorkflowID: receipt.WorkflowID,
		RunID:      receipt.RunID,
		Duplicate:  receipt.Duplicate,
		Event:      receipt.Event,
	})
}

// invalidEvent turns an event validation error into a 422 listing every
// problem.
func invalidEvent(err error) error {
	var verr *event.ValidationError
	if errors.As(err, &verr) {
		return unprocessable("the event is invalid", verr.Problems...)
	}
	return err
}
