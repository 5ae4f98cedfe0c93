package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/userhooks/userhooks/subscription"
)

// envEndpointMaxInFlight is the environment variable of
// -endpoint-max-in-flight.
const envEndpointMaxInFlight = "USERHOOKS_ENDPOINT_MAX_IN_FLIGHT"

// endpointMaxInFlightEnv returns the default of -endpoint-max-in-flight:
// the environment's value, or 0 (no limit). The error names the variable.
func endpointMaxInFlightEnv() (int, error) {
	v := os.Getenv(envEndpointMaxInFlight)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a whole number", envEndpointMaxInFlight, v)
	}
	return n, nil
}

// checkEndpointMaxInFlight validates -endpoint-max-in-flight as a
// subscription's own limit is validated.
func checkEndpointMaxInFlight(n int) error {
	if n < 0 || n > subscription.MaxInFlightLimit {
		return fmt.Errorf("-endpoint-max-in-flight %d: want 0 (no limit) to %d", n, subscription.MaxInFlightLimit)
	}
	return nil
}
