// Package history records and reads Jepsen-style operation histories: what
// the workload asked the system under test, and what it heard back.
//
// A history is a file of JSON lines, one [Op] each: an invocation, then
// later its completion by the same process, which is ok (it happened), fail
// (it definitely did not) or info (unknown: it may have happened at any time
// after the invocation, or never). Times are the sidecar's virtual
// nanoseconds, so the same run records the same bytes.
//
// The workload records through a [Recorder], which its goroutines share; it
// assigns indices, stamps times from an injected clock and refuses what
// would make the history ill-formed (two ops outstanding on one process, a
// process acting after an info). The auditor reads the file back with
// [Read], matches invocations to completions with [Pairs], and decodes the
// values it understands with [ParseRegister], [ParseCAS] and [ParseTxn]
// (Elle's list-append micro-ops).
//
// Nothing here interprets the history: checkers live in
// github.com/detvm/detvm/auditor.
package history
