package api

import "github.com/userhooks/userhooks/deliveries"

// The delivery log's types, as package deliveries defines them; the names
// here are the ones this package's handlers use.
type (
	// DeliveryKey names one delivery: an event to one subscription.
	DeliveryKey = deliveries.Key
	// DeliveryFilter selects deliveries; AccountID is always set.
	DeliveryFilter = deliveries.Filter
	// Delivery is one delivery run.
	Delivery = deliveries.Delivery
	// DeliveryDetail is a delivery with its attempt log.
	DeliveryDetail = deliveries.Detail
	// DeliveryPage is one page of a delivery search.
	DeliveryPage = deliveries.Page
	// RecoverResult says what a recovery started.
	RecoverResult = deliveries.RecoverResult
)

// Errors of Deliveries, matched with errors.Is.
var (
	// ErrDeliveryNotFound: no such delivery in the account.
	ErrDeliveryNotFound = deliveries.ErrNotFound
	// ErrNotRunning: cancel or retry of a delivery that has finished.
	ErrNotRunning = deliveries.ErrNotRunning
	// ErrStillRunning: redelivery of a delivery that has not finished.
	ErrStillRunning = deliveries.ErrStillRunning
	// ErrInvalidFilter, wrapped with a message, refuses a search.
	ErrInvalidFilter = deliveries.ErrInvalidFilter
)
