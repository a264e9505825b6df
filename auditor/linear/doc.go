// Package linear checks that a history of register operations is
// linearizable: that every read, write and compare-and-set on a key can be
// placed at one instant between its invocation and completion so that the
// reads see a single register's values.
//
// The search is porcupine's (github.com/anishathalye/porcupine), with a
// key-value [Model] partitioned by key. This package decides what the
// history means ([Operations]: failed ops are dropped, indeterminate ones
// may take effect at any later time or never), bounds the search in time
// (a search cut short is [auditor.Unknown], never a pass), and turns
// porcupine's partial linearizations into evidence a person can read: for
// each bad key, the longest prefix that linearizes, the register's value
// after it, and the operations that contradict it. [Result.WriteHTML]
// writes porcupine's interactive view of the same for the run directory.
package linear
