package history

import (
	"fmt"
	"sort"
)

// Pair is one operation: its invocation and how it ended.
type Pair struct {
	Invoke Op
	// Completion is the OK, Fail or Info that answered Invoke. If the
	// history ended first it is a synthesized Info with Index -1, because an
	// operation nobody heard back from is exactly an Info: it may or may not
	// have happened.
	Completion Op
}

// Pending reports whether the history ended before the op completed.
func (p Pair) Pending() bool { return p.Completion.Index < 0 }

// ID names the operation in checker output: the index of its completion,
// as in Jepsen and Elle, or of its invocation if the history ended first.
func (p Pair) ID() int64 {
	if p.Pending() {
		return p.Invoke.Index
	}
	return p.Completion.Index
}

// Pairs matches every invocation with its completion, per process, and
// returns the operations in invocation order. It checks the process
// discipline that the Recorder enforces, so a history written by hand or by
// another tool is held to the same rules: one op outstanding per process,
// completions that answer it (same f and key), and nothing from a process
// after its Info.
func Pairs(ops []Op) ([]Pair, error) {
	var pairs []Pair
	open := map[int]int{}      // process -> position in pairs of its outstanding op
	crashed := map[int]int64{} // process -> index of its Info
	for _, op := range ops {
		if at, ok := crashed[op.Process]; ok {
			return nil, fmt.Errorf("history: op %d: process %d crashed at op %d (info) and cannot act again", op.Index, op.Process, at)
		}
		i, busy := open[op.Process]
		if op.Type == Invoke {
			if busy {
				return nil, fmt.Errorf("history: op %d: process %d invoked %s while op %d is outstanding", op.Index, op.Process, op.F, pairs[i].Invoke.Index)
			}
			open[op.Process] = len(pairs)
			pairs = append(pairs, Pair{Invoke: op})
			continue
		}
		if !busy {
			return nil, fmt.Errorf("history: op %d: %s from process %d, which has no outstanding invocation", op.Index, op.Type, op.Process)
		}
		inv := pairs[i].Invoke
		if op.F != inv.F || op.Key != inv.Key {
			return nil, fmt.Errorf("history: op %d: %s %s %q answers op %d, which invoked %s %q", op.Index, op.Type, op.F, op.Key, inv.Index, inv.F, inv.Key)
		}
		pairs[i].Completion = op
		delete(open, op.Process)
		if op.Type == Info {
			crashed[op.Process] = op.Index
		}
	}
	// Whatever is still open never got an answer: synthesize the Info, in
	// process order so the result does not depend on map iteration.
	procs := make([]int, 0, len(open))
	for p := range open {
		procs = append(procs, p)
	}
	sort.Ints(procs)
	for _, p := range procs {
		inv := pairs[open[p]].Invoke
		pairs[open[p]].Completion = Op{
			Index: -1, Type: Info, Process: p, F: inv.F, Key: inv.Key,
			Value: inv.Value, Time: -1, Error: "history ended before completion",
		}
	}
	return pairs, nil
}
