// Package listappend checks a history of list-append transactions for
// serializability, the way Elle does: it never searches for a serial
// order, it infers the dependencies between transactions from what they
// read and looks for cycles.
//
// Every key holds a list; a transaction appends elements (unique per key)
// and reads whole lists. Because lists only grow, a read reveals not just
// the last write but the whole order of writes before it, so:
//
//  1. Each read is checked on its own: elements appended by failed
//     transactions (G1a), a list that ends mid-way through another
//     transaction's appends (G1b), elements nobody appended, duplicates,
//     and disagreement with the transaction's own earlier micro-ops.
//  2. Each key's version order is its longest read; every other read must
//     be a prefix of it ("incompatible-order" otherwise, and the key is
//     left out of the graph rather than guessed at).
//  3. Committed transactions become nodes, with ww edges (consecutive
//     elements of a version order), wr edges (a read's last element to its
//     reader) and rw anti-dependency edges (a reader to the writer of the
//     next element it did not see). Committed appends that no read saw
//     follow every read of their key, which adds sound ww and rw edges.
//  4. Tarjan's algorithm finds the strongly connected components; in each,
//     breadth-first search finds a short concrete cycle of the weakest
//     class present, in Adya's order: G0 (ww only), G1c (ww and wr),
//     G-single (exactly one rw), G2-item (more).
//
// Outcomes are read as in Jepsen: ok committed, fail did not, and info may
// have: an info transaction's appends count as committed exactly when some
// read saw one of them, and its reads are unknown. Only the data orders
// transactions, not real time, so this is serializability, not strict
// serializability.
//
// The analysis is a pure function of the history (sorted iteration
// everywhere, so output is identical run to run) apart from the budget: it
// polls a context, and a check that runs out says [auditor.Unknown] with
// the phase it was in.
package listappend
