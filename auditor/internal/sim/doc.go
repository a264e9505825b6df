// Package sim generates histories the way a workload would record them,
// against a simulated store that is correct by construction, so that
// checkers can be tested and timed on realistic sizes: several clients with
// overlapping operations, aborted and indeterminate ones, and keys that
// rotate like Jepsen's. The store applies each operation atomically at one
// instant between its invocation and completion, which makes register
// histories linearizable and list-append histories strictly serializable.
//
// Everything is a pure function of Config: a seeded PCG, a virtual clock,
// no goroutines.
package sim
