// Package auditor holds what detvm's history checkers share: the three-valued
// verdict every checker returns.
//
// The checkers themselves live in sub-packages, one per consistency model:
// [github.com/detvm/detvm/auditor/linear] (linearizable registers, through
// porcupine) and [github.com/detvm/detvm/auditor/listappend] (Elle-style
// serializability of list-append transactions). Both read histories recorded
// by [github.com/detvm/detvm/workload/history] and both take a time budget:
// a check that runs out of it says [Unknown], never a guess, because a run
// that is reported as passed must have been proved so.
//
// [github.com/detvm/detvm/auditor/properties] judges the SDK's assertions
// (always, sometimes, reachable, ...) rather than a history: docs/sdk.md.
package auditor
