package loadgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"

	"github.com/detvm/detvm/workload/history"
)

// ListAppend generates list-append transactions (history.FTxn, value a
// history.Txn) for the list-append checker, as Jepsen's append workload
// does: each transaction is 1 to MaxTxnLen micro-ops, each an append or a
// read of one of Keys active keys. Elements are 1, 2, 3, … per key, so
// they are unique per key as the checker needs. A key that has been given
// MaxAppends appends is retired and a fresh one takes its place: reads
// stay short and the dependency graph sparse, which keeps a 10 000-op
// check within seconds however long the load runs.
//
// Keys are named by number ("0", "1", …); a Client maps them to its own
// key space. The Client performs the whole transaction atomically or not
// at all and returns it with every read filled in (history.ReadResult),
// in program order: a read after an append to the same key in the same
// transaction sees that append.
type ListAppend struct {
	// Keys is the number of active keys (default 8), MaxTxnLen the most
	// micro-ops in a transaction (default 4) and MaxAppends the appends a
	// key gets before it is retired (default 32).
	Keys, MaxTxnLen, MaxAppends int

	mu      sync.Mutex
	active  []int         // the active keys' numbers
	fresh   int           // the number the next new key gets
	appends map[int]int64 // key → appends generated, the last element
}

// Next returns a transaction drawn from rng.
func (g *ListAppend) Next(_ int, rng *rand.Rand) Op {
	keys, maxLen, maxAppends := orDefault(g.Keys, 8), orDefault(g.MaxTxnLen, 4), int64(orDefault(g.MaxAppends, 32))
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active == nil {
		g.appends = map[int]int64{}
		for g.fresh < keys {
			g.active = append(g.active, g.fresh)
			g.fresh++
		}
	}
	n := 1 + rng.IntN(maxLen)
	txn := make(history.Txn, 0, n)
	for range n {
		slot := rng.IntN(len(g.active))
		k := g.active[slot]
		name := strconv.Itoa(k)
		if rng.IntN(2) == 0 {
			txn = append(txn, history.ReadKey(name))
			continue
		}
		g.appends[k]++
		txn = append(txn, history.Append(name, g.appends[k]))
		if g.appends[k] >= maxAppends {
			delete(g.appends, k)
			g.active[slot] = g.fresh
			g.fresh++
		}
	}
	return Op{F: history.FTxn, Value: txn}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// TxnValue reads a list-append op's transaction for a Client. It errors
// for anything else, which is a Generator's bug.
func TxnValue(op Op) (history.Txn, error) {
	if t, ok := op.Value.(history.Txn); ok && op.F == history.FTxn {
		return t, nil
	}
	return nil, fmt.Errorf("loadgen: %s has value %v, not a transaction", op.F, op.Value)
}

// Apply performs txn's micro-ops in order on lists, the state of the keys
// it touches (read them first; a key absent is an empty list), and
// returns the transaction with its reads filled in and the keys it
// appended to. lists is updated in place. A Client uses it to work out,
// from a snapshot of the keys, what to write and what the transaction
// read.
func Apply(txn history.Txn, lists map[string][]int64) (done history.Txn, written []string) {
	done = make(history.Txn, len(txn))
	for i, m := range txn {
		if m.F == history.MicroAppend {
			if !slices.Contains(written, m.Key) {
				written = append(written, m.Key)
			}
			lists[m.Key] = append(lists[m.Key], m.Value)
			done[i] = m
			continue
		}
		done[i] = history.ReadResult(m.Key, lists[m.Key])
	}
	return done, written
}

// Keys returns the distinct keys of txn in the order they first appear.
func Keys(txn history.Txn) []string {
	var ks []string
	for _, m := range txn {
		if !slices.Contains(ks, m.Key) {
			ks = append(ks, m.Key)
		}
	}
	return ks
}
