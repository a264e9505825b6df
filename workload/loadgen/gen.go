package loadgen

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/detvm/detvm/workload/history"
)

// Op is one operation for a Client to perform: what is recorded as the
// invocation. Its Value must be something the history can hold
// (json.Marshal-able); for the register checkers a write's value is an
// int64, a cas's a [from, to] pair and a read's nil.
type Op struct {
	F     string
	Key   string
	Value any
}

// CAS returns the value of a cas that sets a register from from to to.
func CAS(from, to int64) []int64 { return []int64{from, to} }

// Generator chooses the operations. Next is called by every client's
// goroutine, so it must be safe for concurrent use; rng is the calling
// client's own, seeded from the run, which keeps each client's choices
// independent of how the others happen to interleave.
type Generator interface {
	Next(process int, rng *rand.Rand) Op
}

// Observer is implemented by a Generator that wants to learn what happened
// to its operations, e.g. to aim a cas at a value the register holds.
// Observe gets every completion: ok with the value the op returned (a
// read's value, nil for a write or cas), or not ok.
type Observer interface {
	Observe(op Op, ok bool, value any)
}

// Registers generates register operations on Keys: reads, writes of
// values unique across the run (1, 2, 3, …, which keeps a linearizability
// check cheap and its evidence readable) and compare-and-sets from the
// value last seen on the key to a fresh one. The mix is given by weights;
// all zero means 2:2:1 read:write:cas.
type Registers struct {
	Keys                     []string
	Read, Write, CompareSwap int

	mu   sync.Mutex
	next int64
	last map[string]int64 // key → last value read or written, if any
}

// Next returns a read, write or cas on a key drawn from rng.
func (g *Registers) Next(_ int, rng *rand.Rand) Op {
	r, w, c := g.Read, g.Write, g.CompareSwap
	if r+w+c <= 0 {
		r, w, c = 2, 2, 1
	}
	if len(g.Keys) == 0 {
		panic("loadgen: Registers has no Keys")
	}
	key := g.Keys[rng.IntN(len(g.Keys))]
	pick := rng.IntN(r + w + c)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case pick < r:
		return Op{F: history.FRead, Key: key}
	case pick < r+w:
		g.next++
		return Op{F: history.FWrite, Key: key, Value: g.next}
	default:
		from, ok := g.last[key]
		if !ok {
			// Nothing known of the key yet: a cas that most likely
			// fails, which is an operation too.
			from = rng.Int64N(g.next + 1)
		}
		g.next++
		return Op{F: history.FCAS, Key: key, Value: CAS(from, g.next)}
	}
}

// Observe remembers the value a successful op left or saw on its key.
func (g *Registers) Observe(op Op, ok bool, value any) {
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = map[string]int64{}
	}
	switch op.F {
	case history.FRead:
		if v, isInt := value.(int64); isInt {
			g.last[op.Key] = v
		}
	case history.FWrite:
		g.last[op.Key] = op.Value.(int64)
	case history.FCAS:
		g.last[op.Key] = op.Value.([]int64)[1]
	}
}

// RegisterValue reads a register op's value for a Client: the int written
// (write) or the from and to of a cas. It errors for anything else, which
// is a Generator's bug.
func RegisterValue(op Op) (v, from int64, err error) {
	switch op.F {
	case history.FWrite:
		if x, ok := op.Value.(int64); ok {
			return x, 0, nil
		}
	case history.FCAS:
		if x, ok := op.Value.([]int64); ok && len(x) == 2 {
			return x[1], x[0], nil
		}
	}
	return 0, 0, fmt.Errorf("loadgen: %s %s has value %v, not a register value", op.F, op.Key, op.Value)
}
