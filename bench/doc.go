// Package bench measures userhooks end to end on a real Temporal server:
// throughput and latency of deliveries from publish to receipt, the
// history each delivery costs, CPU per delivery and worker memory with
// many deliveries waiting between retries.
//
// Every figure is set against two references measured in the same run on
// the same machine: the single-workflow ceiling (one workflow per
// delivery, running the same Deliver code as a local activity, started
// eagerly — the cheapest durable delivery Temporal allows) and the direct
// floor (a plain loop signing and POSTing the same bodies, without
// durability). Figures from shared machines are noisy; only ratios within
// one run compare well.
//
// Run drives one benchmark; command cmd/bench wraps it with flags and a
// Temporal dev server. The report, its percentiles and the receiver that
// timestamps deliveries are usable on their own.
package bench
