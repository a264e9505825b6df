package linear

import (
	"fmt"
	"math"
	"sort"

	"github.com/anishathalye/porcupine"
	"github.com/detvm/detvm/workload/history"
)

// input is what an operation asked for.
type input struct {
	F    string // history.FRead, FWrite or FCAS
	Key  string
	V    int64 // write: the value; cas: the new value
	From int64 // cas: the expected value
}

// output is what it returned. Unknown marks an info op: porcupine must place
// it somewhere after its call, and any result is acceptable.
type output struct {
	V       int64
	Null    bool // read returned null
	Unknown bool
}

// register is the state of one key: null until written. A plain struct so
// that porcupine's default == comparison is exact.
type register struct {
	V   int64
	Set bool
}

func (r register) String() string {
	if !r.Set {
		return "null"
	}
	return fmt.Sprint(r.V)
}

// step is the sequential specification of one register.
func step(state, in, out any) (bool, any) {
	st, i, o := state.(register), in.(input), out.(output)
	switch i.F {
	case history.FRead:
		if o.Unknown {
			return true, st
		}
		ok := (o.Null && !st.Set) || (!o.Null && st.Set && st.V == o.V)
		return ok, st
	case history.FWrite:
		return true, register{V: i.V, Set: true}
	default: // cas
		if st.Set && st.V == i.From {
			return true, register{V: i.V, Set: true}
		}
		// A cas that definitely failed was dropped before checking (it did
		// not happen), so a known outcome here is always a success. An
		// unknown one that finds the wrong value simply did nothing.
		return o.Unknown, st
	}
}

// Model is the KV store's sequential specification for porcupine: each key
// is an independent register, null until written, with read, write and
// compare-and-set. Partitioning by key is what makes checking 10 000-op
// histories cheap: porcupine searches each key's operations alone
// (P-compositionality), and linearizability is local, so the whole history
// is linearizable exactly when every key's sub-history is.
var Model = porcupine.Model{
	Partition: partition,
	Init:      func() any { return register{} },
	Step:      step,
	Hash: func(state any) uint64 {
		r := state.(register)
		if !r.Set {
			return math.MaxUint64
		}
		return uint64(r.V) * 0x9e3779b97f4a7c15
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		var s string
		switch i.F {
		case history.FRead:
			res := fmt.Sprint(o.V)
			if o.Null {
				res = "null"
			}
			return fmt.Sprintf("read(%s) -> %s", i.Key, res)
		case history.FWrite:
			s = fmt.Sprintf("write(%s, %d)", i.Key, i.V)
		default:
			s = fmt.Sprintf("cas(%s, %d, %d)", i.Key, i.From, i.V)
		}
		if o.Unknown {
			s += " -> ?"
		}
		return s
	},
	DescribeState: func(state any) string { return state.(register).String() },
	DescribeOperationMetadata: func(m any) string {
		p, ok := m.(history.Pair)
		if !ok {
			return ""
		}
		return fmt.Sprintf("op %d, process %d, %s", p.ID(), p.Invoke.Process, p.Completion.Type)
	},
}

// partition groups operations by key, keys in sorted order and operations
// in history order, so that partition numbers are stable from run to run.
func partition(ops []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range ops {
		k := op.Input.(input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

// Operations turns a history of register ops into porcupine operations,
// following Jepsen's reading of each outcome:
//
//   - ok: happened between invocation and completion.
//   - fail: definitely did not happen, so it is dropped.
//   - info (or no completion at all): may have happened at any time after
//     the invocation, or never. Porcupine's convention for such a pending
//     operation is a return time after everything else (math.MaxInt64 here)
//     and an output the model accepts whatever the state; linearizing it
//     last is the same as it never happening. An info read has no effect
//     and returned nothing, so it is dropped too.
//
// Each operation's Metadata is its history.Pair. ClientId is the process's
// rank among the history's processes, which the visualization needs dense.
func Operations(ops []history.Op) ([]porcupine.Operation, error) {
	pairs, err := history.Pairs(ops)
	if err != nil {
		return nil, err
	}
	procs := map[int]int{}
	for _, p := range pairs {
		procs[p.Invoke.Process] = 0
	}
	ranked := make([]int, 0, len(procs))
	for p := range procs {
		ranked = append(ranked, p)
	}
	sort.Ints(ranked)
	for i, p := range ranked {
		procs[p] = i
	}
	var out []porcupine.Operation
	for _, p := range pairs {
		inv, done := p.Invoke, p.Completion
		if done.Type == history.Fail {
			continue
		}
		in := input{F: inv.F, Key: inv.Key}
		var o output
		switch inv.F {
		case history.FRead:
			if done.Type != history.OK {
				continue
			}
			v, set, err := history.ParseRegister(done.Value)
			if err != nil {
				return nil, fmt.Errorf("linear: op %d: %w", done.Index, err)
			}
			o = output{V: v, Null: !set}
		case history.FWrite:
			v, set, err := history.ParseRegister(inv.Value)
			if err != nil || !set {
				return nil, fmt.Errorf("linear: op %d: write value %s: want an int", inv.Index, inv.Value)
			}
			in.V = v
		case history.FCAS:
			from, to, err := history.ParseCAS(inv.Value)
			if err != nil {
				return nil, fmt.Errorf("linear: op %d: %w", inv.Index, err)
			}
			in.From, in.V = from, to
		default:
			return nil, fmt.Errorf("linear: op %d: f %q is not a register op (want read, write or cas)", inv.Index, inv.F)
		}
		ret := done.Time
		if done.Type != history.OK {
			o.Unknown = true
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{
			ClientId: procs[inv.Process],
			Input:    in,
			Call:     inv.Time,
			Output:   o,
			Return:   ret,
			Metadata: p,
		})
	}
	return out, nil
}
