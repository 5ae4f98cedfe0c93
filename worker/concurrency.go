package main

import (
	"fmt"

	"github.com/userhooks/userhooks/subscription"
)

// envEndpointMaxInFlight is the environment variable of
// -endpoint-max-in-flight.
const envEndpointMaxInFlight = "USERHOOKS_ENDPOINT_MAX_IN_FLIGHT"

// checkEndpointMaxInFlight validates -endpoint-max-in-flight as a
// subscription's own limit is validated.
func checkEndpointMaxInFlight(n int) error {
	if n < 0 || n > subscription.MaxInFlightLimit {
		return fmt.Errorf("-endpoint-max-in-flight %d: want 0 (no limit) to %d", n, subscription.MaxInFlightLimit)
	}
	return nil
}
