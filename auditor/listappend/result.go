package listappend

import (
	"time"

	"github.com/detvm/detvm/auditor"
)

// Anomaly types, named as in Adya's thesis and Elle.
const (
	// G0 (write cycle): a cycle of ww edges only. Transactions' appends
	// interleave, so no order of whole transactions explains the lists.
	G0 = "G0"
	// G1a (aborted read): a committed read saw an element appended by a
	// transaction that failed.
	G1a = "G1a"
	// G1b (intermediate read): a committed read ended at an element that its
	// writer later followed with another append to the same key, so the
	// reader saw the writer's transaction half done.
	G1b = "G1b"
	// G1c (circular information flow): a cycle of ww and wr edges, at least
	// one wr.
	G1c = "G1c"
	// GSingle (read skew): a cycle with exactly one rw edge.
	GSingle = "G-single"
	// G2Item (write skew and the like): a cycle with two or more rw edges
	// and none with fewer.
	G2Item = "G2-item"
	// IncompatibleOrder: two reads of a key where neither is a prefix of the
	// other, so the key's list was not a single append-only list.
	IncompatibleOrder = "incompatible-order"
	// DuplicateElements: a read in which an element appears twice.
	DuplicateElements = "duplicate-elements"
	// GarbageRead: a read of an element that no transaction appended.
	GarbageRead = "garbage-read"
	// Internal: a read that disagrees with its own transaction's earlier
	// reads and appends of the key.
	Internal = "internal"
)

// typeRank orders anomalies in a Result: cycles by strength of the
// isolation level they rule out, then the per-read anomalies.
var typeRank = map[string]int{
	G0: 0, G1a: 1, G1b: 2, G1c: 3, GSingle: 4, G2Item: 5,
	IncompatibleOrder: 6, DuplicateElements: 7, GarbageRead: 8, Internal: 9,
}

// Edge types of the dependency graph between committed transactions.
const (
	// WW: the later transaction appended the next element after the
	// earlier's, in the key's version order.
	WW = "ww"
	// WR: the later transaction read the earlier's append as the last
	// element of a list.
	WR = "wr"
	// RW (anti-dependency): the earlier transaction read a version of the
	// key that the later transaction's append follows.
	RW = "rw"
)

// Step is one transaction in a cycle and the edge from it to the next
// step's transaction (the last step's edge leads back to the first).
type Step struct {
	// Txn is the transaction's op id: the index of its completion in the
	// history (of its invocation if the history ended first).
	Txn  int64  `json:"txn"`
	Edge string `json:"edge"`
	Key  string `json:"key"`
	// Value is the element that makes the edge: for ww and rw the next
	// transaction's append, for wr the element the next transaction read.
	Value int64 `json:"value"`
}

// Anomaly is one piece of evidence against the history.
type Anomaly struct {
	Type string `json:"type"`
	// Cycle is set for G0, G1c, G-single and G2-item, starting at the
	// transaction with the lowest id.
	Cycle []Step `json:"cycle,omitempty"`
	// Txns are the transactions involved in the other anomalies: the
	// reader first, then the writer or the other reader.
	Txns []int64 `json:"txns,omitempty"`
	Key  string  `json:"key,omitempty"`
	// Explanation says, in sentences, why this is an anomaly.
	Explanation string `json:"explanation"`
}

// Result is the verdict on a list-append history.
type Result struct {
	Status auditor.Status `json:"status"`
	// Reason says why the status is Unknown.
	Reason string `json:"reason,omitempty"`
	// Anomalies, ordered by type (as the constants are listed), then by
	// the first transaction involved. After an exhausted budget they are
	// whatever was found before it ran out.
	Anomalies []Anomaly `json:"anomalies,omitempty"`
	// Txns is the number of transactions read (ok, fail and info), Keys
	// the number of keys, Edges the number of pairs of transactions with a
	// dependency between them.
	Txns  int `json:"txns"`
	Keys  int `json:"keys"`
	Edges int `json:"edges"`
	// Elapsed is the wall time Check took; CheckContext, which reads no
	// clock, leaves it zero.
	Elapsed time.Duration `json:"elapsed"`
}
