package main

import "fmt"

// envStickyCache is the environment variable of -sticky-cache.
const envStickyCache = "USERHOOKS_STICKY_CACHE"

// defaultStickyCache is how many workflow executions a worker keeps in
// memory between their workflow tasks. The SDK's default, 10,000, costs
// about 730 MiB of RSS when as many deliveries wait between retries;
// 1,000 keeps it near 120 MiB (BENCHMARKS.md). A delivery evicted from the
// cache is replayed from its history on its next task: a little CPU, only
// for deliveries that wake up after long waits.
const defaultStickyCache = 1000

// checkStickyCache validates -sticky-cache.
func checkStickyCache(n int) error {
	if n < 1 || n > 1_000_000 {
		return fmt.Errorf("-sticky-cache %d: want 1 to 1000000 cached workflow executions", n)
	}
	return nil
}
