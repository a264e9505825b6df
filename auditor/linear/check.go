package linear

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/workload/history"
)

// Result is the verdict on a register history.
type Result struct {
	Status auditor.Status `json:"status"`
	// Reason says why the status is Unknown.
	Reason string `json:"reason,omitempty"`
	// Bad is every key's Bad, in history order: the operations that no
	// linearization could take next.
	Bad []history.Op `json:"bad,omitempty"`
	// Keys explains each key that is not linearizable, in key order.
	Keys []KeyFailure `json:"keys,omitempty"`
	// Ops is the number of operations checked, after dropping failed ops
	// and info reads.
	Ops     int           `json:"ops"`
	Elapsed time.Duration `json:"elapsed"`

	info    porcupine.LinearizationInfo
	hasInfo bool
}

// KeyFailure is porcupine's evidence against one key: the longest prefix of
// the key's operations that it could linearize, and the operations that
// could have come next in real time but contradict the register's value
// after that prefix.
type KeyFailure struct {
	Key string `json:"key"`
	// Longest is that prefix, as completions, in linearization order.
	Longest []history.Op `json:"longest"`
	// State is the register after Longest: an int, or "null".
	State string `json:"state"`
	// Bad are the completions that cannot be next, in history order.
	Bad []history.Op `json:"bad"`
	// Total is how many operations the key has.
	Total int `json:"total"`
}

// Check decides whether a history of register operations (read, write,
// cas; see Operations for how outcomes are read) is linearizable, giving
// porcupine at most timeout (0: no limit). It returns an error only for a
// malformed history.
func Check(ops []history.Op, timeout time.Duration) (Result, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return CheckContext(ctx, ops)
}

// CheckContext is Check with the budget given as a context: its deadline
// becomes porcupine's timeout, and cancelling it stops the search. Either
// way the result is Unknown, never a verdict from a search cut short.
func CheckContext(ctx context.Context, ops []history.Op) (Result, error) {
	start := time.Now()
	pops, err := Operations(ops)
	if err != nil {
		return Result{}, err
	}
	res := Result{Ops: len(pops)}
	if err := ctx.Err(); err != nil {
		res.Status, res.Reason = auditor.Unknown, "time budget exhausted before the check started: "+err.Error()
		res.Elapsed = time.Since(start)
		return res, nil
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			timeout = time.Nanosecond
		}
	}
	// Porcupine stops only on its own timeout; a model that refuses every
	// step once ctx is done makes it stop on cancellation too. A refusal
	// can make porcupine report Illegal, so a search that was cut this way
	// is Unknown whatever porcupine says.
	var cut atomic.Bool
	m := Model
	m.StepContext = func(_ context.Context, state, in, out any) (bool, any) {
		if ctx.Err() != nil {
			cut.Store(true)
			return false, state
		}
		return step(state, in, out)
	}
	verdict, info := porcupine.CheckOperationsVerbose(m, pops, timeout)
	res.Elapsed = time.Since(start)
	res.info, res.hasInfo = info, true
	switch {
	case cut.Load():
		res.Status, res.Reason = auditor.Unknown, fmt.Sprintf("time budget exhausted after %v: %v", res.Elapsed.Round(time.Millisecond), ctx.Err())
	case verdict == porcupine.Unknown:
		res.Status, res.Reason = auditor.Unknown, fmt.Sprintf("porcupine timed out after %v", res.Elapsed.Round(time.Millisecond))
	case verdict == porcupine.Ok:
		res.Status = auditor.Passed
	default:
		res.Status = auditor.Failed
		res.Keys = explain(pops, info)
		for _, k := range res.Keys {
			res.Bad = append(res.Bad, k.Bad...)
		}
		sort.Slice(res.Bad, func(i, j int) bool { return res.Bad[i].Index < res.Bad[j].Index })
	}
	return res, nil
}

// explain turns porcupine's partial linearizations into a KeyFailure for
// each key that has no complete one.
func explain(pops []porcupine.Operation, info porcupine.LinearizationInfo) []KeyFailure {
	parts := partition(pops)
	partials := info.PartialLinearizations()
	var out []KeyFailure
	for i, part := range parts {
		if i >= len(partials) {
			break
		}
		// Porcupine collects the partials through a map: order them
		// (longest first, then by ids) so the evidence is deterministic.
		ps := slices.Clone(partials[i])
		sort.Slice(ps, func(a, b int) bool {
			if len(ps[a]) != len(ps[b]) {
				return len(ps[a]) > len(ps[b])
			}
			return slices.Compare(ps[a], ps[b]) < 0
		})
		if len(ps) > 0 && len(ps[0]) == len(part) {
			continue // this key is linearizable
		}
		var longest []int
		if len(ps) > 0 {
			longest = ps[0]
		}
		kf := KeyFailure{Key: part[0].Input.(input).Key, Total: len(part)}
		state := any(register{})
		in := make([]bool, len(part))
		for _, id := range longest {
			_, state = step(state, part[id].Input, part[id].Output)
			in[id] = true
			kf.Longest = append(kf.Longest, part[id].Metadata.(history.Pair).Completion)
		}
		kf.State = state.(register).String()
		// What could be linearized next: everything not yet linearized
		// whose call is no later than the earliest remaining return
		// (intervals are closed). Each of them must contradict the state,
		// or the prefix would have been longer.
		minRet := int64(1<<63 - 1)
		for id, op := range part {
			if !in[id] && op.Return < minRet {
				minRet = op.Return
			}
		}
		for id, op := range part {
			if in[id] || op.Call > minRet {
				continue
			}
			if ok, _ := step(state, op.Input, op.Output); !ok {
				kf.Bad = append(kf.Bad, op.Metadata.(history.Pair).Completion)
			}
		}
		sort.Slice(kf.Bad, func(a, b int) bool { return kf.Bad[a].Index < kf.Bad[b].Index })
		out = append(out, kf)
	}
	return out
}

// Visualize writes porcupine's interactive HTML view of the checked history
// and its (partial) linearizations to w: one panel per key, with the
// operations that could not be linearized marked.
func (r Result) Visualize(w io.Writer) error {
	if !r.hasInfo {
		return errNoInfo
	}
	return porcupine.Visualize(Model, r.info, w)
}

// WriteHTML writes the same view to a file, for the run directory.
func (r Result) WriteHTML(path string) error {
	if !r.hasInfo {
		return errNoInfo
	}
	if err := porcupine.VisualizePath(Model, r.info, path); err != nil {
		return fmt.Errorf("linear: write %s: %w", path, err)
	}
	return nil
}

var errNoInfo = errors.New("linear: no linearization to show: the check did not run")
