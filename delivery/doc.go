// Package delivery holds the rules of one webhook delivery that do not depend
// on Temporal, HTTP clients or storage: the retry schedule (data, overridable
// per subscription), the classification of a receiver's answer into an
// outcome, and the record of one attempt as it appears in workflow history.
//
// It is a leaf package: it imports nothing of this module, so both the
// workflows (deterministic code) and the activities (network code) share it.
package delivery
