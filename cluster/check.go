package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/auditor/linear"
	"github.com/detvm/detvm/auditor/listappend"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/workload/history"
	"github.com/detvm/detvm/workload/sdk"
)

// Files of a run directory that the history check reads and writes.
const (
	// HistoryFile is the history the workload recorded through
	// sdk.HistoryWriter, one op per line.
	HistoryFile = "history.jsonl"
	// LinearizabilityHTML is porcupine's view of a linearizable-register
	// check: every key's operations and (partial) linearizations.
	LinearizabilityHTML = "linearizability.html"
)

// maxBadOps bounds the offending ops a verdict's message lists.
const maxBadOps = 5

// HistoryCheck is the outcome of checking a run's history.
type HistoryCheck struct {
	Verdict Verdict
	// First is the first offending operation (lowest index) of a failed
	// check, its completion as recorded; nil otherwise.
	First *history.Op
}

// CheckHistory checks runDir's history.jsonl as s.Check asks
// (s.Check.Enabled() must be true) and returns the verdict, property
// "history:<model>", kind "history". A check that runs out of
// s.Check.Timeout, or a run that recorded no history, is unknown; a
// history that does not hold together (unreadable, or a process that
// breaks Jepsen's discipline) fails, as the workload that wrote it is
// broken. A linearizable-register check also writes porcupine's view to
// runDir/linearizability.html.
//
// A failed verdict's FirstFailure is the first offending op: the epoch at
// which the controller collected it, the guest and the process that
// recorded it (found in the guests' events.jsonl; left out if the op was
// collected before the snapshot a continued run started from).
func CheckHistory(runDir string, s *scenario.Scenario) HistoryCheck {
	return CheckHistoryFile(runDir, filepath.Join(runDir, HistoryFile), s.Check, uint64(s.Epoch))
}

// CheckHistoryFile is CheckHistory for any history file: detvm check runs
// it on a recorded run, with the model and budget of its choosing.
// runDir is where porcupine's view goes and where the guests' events are
// looked up; epochNS turns an epoch into virtual time (0: leave it out).
func CheckHistoryFile(runDir, path string, c scenario.Check, epochNS uint64) HistoryCheck {
	out := HistoryCheck{Verdict: Verdict{Property: "history:" + c.History, Kind: "history", Status: string(auditor.Unknown)}}
	v := &out.Verdict
	name := filepath.Base(path)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		v.Message = "no history: the workload recorded no operations (write them with workload/history into sdk.HistoryWriter())"
		return out
	} else if err != nil {
		v.Message = err.Error()
		return out
	}
	ops, err := history.Read(f)
	f.Close()
	if err != nil {
		v.Status, v.Message = string(auditor.Failed), fmt.Sprintf("malformed history %s: %v", name, err)
		return out
	}
	if len(ops) == 0 {
		v.Message = "no history: " + name + " is empty"
		return out
	}
	switch c.History {
	case scenario.HistoryLinearizableRegister:
		checkLinear(runDir, ops, c, &out)
	case scenario.HistoryListAppend:
		checkListAppend(ops, c, &out)
	default:
		v.Message = fmt.Sprintf("unknown history model %q", c.History)
	}
	if out.First != nil && v.Status == string(auditor.Failed) {
		v.FirstFailure = locateOp(runDir, *out.First, epochNS)
	}
	return out
}

// locateOp finds where the controller collected op: the SDK history
// message in some guest's events.jsonl that carries it. nil if none does.
func locateOp(runDir string, op history.Op, epochNS uint64) *FirstFailure {
	paths, _ := filepath.Glob(filepath.Join(runDir, "*", "events.jsonl"))
	sort.Strings(paths)
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		found := scanEvents(f, op)
		f.Close()
		if found != nil {
			found.Node = filepath.Base(filepath.Dir(path))
			found.VirtualNS = found.Epoch * epochNS
			found.Message = fmt.Sprintf("%v (guest clock %.6fs)", op, float64(op.Time)/1e9)
			return found
		}
	}
	return nil
}

// scanEvents looks for op's history message in one guest's events.
func scanEvents(r io.Reader, op history.Op) *FirstFailure {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	needle := []byte(fmt.Sprintf(`\"index\":%d,`, op.Index))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, needle) || !bytes.Contains(line, []byte(`"kind":"sdk"`)) {
			continue
		}
		var e eventJSON
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		m, err := sdk.Parse([]byte(e.Data))
		if err != nil || m.Type != sdk.TypeHistory {
			continue
		}
		ops, err := history.Read(bytes.NewReader(m.Op))
		if err != nil || len(ops) != 1 {
			continue
		}
		if got := ops[0]; got.Index == op.Index && got.Type == op.Type && got.Process == op.Process && got.Time == op.Time {
			return &FirstFailure{Epoch: e.Epoch, Proc: e.Proc}
		}
	}
	return nil
}

func checkLinear(runDir string, ops []history.Op, c scenario.Check, out *HistoryCheck) {
	v := &out.Verdict
	res, err := linear.Check(ops, c.Timeout)
	if err != nil {
		v.Status, v.Message = string(auditor.Failed), "malformed history: "+err.Error()
		return
	}
	v.Status = string(res.Status)
	switch res.Status {
	case auditor.Passed:
		v.Message = fmt.Sprintf("%d operations are linearizable", res.Ops)
	case auditor.Unknown:
		v.Message = fmt.Sprintf("%d operations not decided: %s (raise check.timeout)", res.Ops, res.Reason)
	default:
		var b strings.Builder
		fmt.Fprintf(&b, "not linearizable: %d of %d operations cannot be ordered", len(res.Bad), res.Ops)
		for _, k := range res.Keys {
			fmt.Fprintf(&b, "; key %s: after %d of its %d operations the register is %s, and none that could come next agrees", k.Key, len(k.Longest), k.Total, k.State)
		}
		fmt.Fprintf(&b, "; offending: %s", listOps(res.Bad))
		v.Message = b.String()
		if len(res.Bad) > 0 {
			first := res.Bad[0]
			out.First = &first
		}
	}
	if res.Status != auditor.Unknown {
		if err := res.WriteHTML(filepath.Join(runDir, LinearizabilityHTML)); err != nil {
			v.Message += "; " + err.Error()
		} else {
			v.Message += " (" + LinearizabilityHTML + " shows them)"
		}
	}
}

func checkListAppend(ops []history.Op, c scenario.Check, out *HistoryCheck) {
	v := &out.Verdict
	res, err := listappend.Check(ops, c.Timeout)
	if err != nil {
		v.Status, v.Message = string(auditor.Failed), "malformed history: "+err.Error()
		return
	}
	v.Status = string(res.Status)
	switch res.Status {
	case auditor.Passed:
		v.Message = fmt.Sprintf("%d transactions on %d keys are serializable", res.Txns, res.Keys)
		return
	case auditor.Unknown:
		v.Message = fmt.Sprintf("%d transactions not decided: %s (raise check.timeout)", res.Txns, res.Reason)
		return
	}
	byIndex := make(map[int64]history.Op, len(ops))
	for _, op := range ops {
		byIndex[op.Index] = op
	}
	var b strings.Builder
	if n := len(res.Anomalies); n == 1 {
		b.WriteString("not serializable: 1 anomaly")
	} else {
		fmt.Fprintf(&b, "not serializable: %d anomalies", n)
	}
	var bad []history.Op
	for i, a := range res.Anomalies {
		ids := slices.Clone(a.Txns)
		for _, s := range a.Cycle {
			ids = append(ids, s.Txn)
		}
		for _, id := range ids {
			if op, ok := byIndex[id]; ok && (out.First == nil || op.Index < out.First.Index) {
				out.First = &op
			}
			if op, ok := byIndex[id]; ok && len(bad) < maxBadOps {
				bad = append(bad, op)
			}
		}
		if i < 3 {
			first, _, _ := strings.Cut(a.Explanation, "\n")
			fmt.Fprintf(&b, "; %s: %s", a.Type, first)
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(&b, "; offending: %s", listOps(bad))
	}
	v.Message = b.String()
}

// listOps renders ops for a message, the first few of them, each with its
// time on the recording guest's clock (the clock of its output.log).
func listOps(ops []history.Op) string {
	var parts []string
	for i, op := range ops {
		if i == maxBadOps {
			parts = append(parts, fmt.Sprintf("and %d more", len(ops)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%v at %.6fs", op, float64(op.Time)/1e9))
	}
	return strings.Join(parts, ", ")
}

// checkHistory appends the verdict of the scenario's history check, if it
// asks for one (check:), to the run's result.
func (r *runner) checkHistory() {
	if !r.s.Check.Enabled() {
		return
	}
	hc := CheckHistory(r.opt.RunDir, r.s)
	r.logf("%s: %s", hc.Verdict.Property, hc.Verdict.Status)
	r.res.Verdicts = append(r.res.Verdicts, hc.Verdict)
}
