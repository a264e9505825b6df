package history

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Recorder appends ops to a history as the workload runs. It is safe for
// concurrent use: workload goroutines share one Recorder, which serialises
// them so that index order, line order and (given a monotonic clock) time
// order agree.
//
// The Recorder enforces Jepsen's process discipline instead of trusting the
// workload: a process has at most one op outstanding, a completion must
// answer that op, and a process whose op ended in Info is crashed and can
// never invoke again. The last rule is what makes Info sound for the
// checkers: an Info op may take effect at any time after its invocation,
// even after later ops of other processes, which is only a well-formed
// history if the same process never issues anything that would have to be
// ordered after it. A workload that wants to keep a client going after an
// Info gives it a new process number (Jepsen uses p + concurrency).
type Recorder struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() int64
	next    int64
	pending map[int]Op    // process -> its outstanding invocation
	crashed map[int]int64 // process -> index of the Info that crashed it
	err     error         // first write error; sticky
	buf     []byte        // the line being written, reused
}

// NewRecorder returns a Recorder that writes JSON lines to w and stamps
// each op with now(). The clock is injected because the sidecar records
// virtual time, which is what makes a replayed run's history identical.
func NewRecorder(w io.Writer, now func() int64) *Recorder {
	return &Recorder{w: w, now: now, pending: map[int]Op{}, crashed: map[int]int64{}}
}

// Invoke records that process is about to perform f on key with value:
// anything json.Marshal accepts (a json.RawMessage is compacted onto one
// line, a Txn is written without reflection). Key is empty for
// transactions. The returned Op is the handle to complete it with.
//
// It fails without recording anything if the process has an op
// outstanding, has crashed, or if the history can no longer be written; the
// caller must then not perform the operation.
func (r *Recorder) Invoke(process int, f, key string, value any) (Op, error) {
	raw, err := marshalValue(value)
	if err != nil {
		return Op{}, fmt.Errorf("history: invoke %s by process %d: %w", f, process, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pending[process]; ok {
		return Op{}, fmt.Errorf("history: process %d invoked %s while op %d (%s) is outstanding", process, f, p.Index, p.F)
	}
	if at, ok := r.crashed[process]; ok {
		return Op{}, fmt.Errorf("history: process %d crashed at op %d (info) and cannot invoke again; use a new process number", process, at)
	}
	op := Op{Type: Invoke, Process: process, F: f, Key: key, Value: raw}
	if err := r.write(&op); err != nil {
		return Op{}, err
	}
	r.pending[process] = op
	return op, nil
}

// Ok records that the invoked op happened. Value is what it returned (the
// register read, the transaction with its reads filled in); nil means the
// invocation's value, which is what a write or CAS returns.
func (r *Recorder) Ok(op Op, value any) (Op, error) {
	var raw json.RawMessage
	if value != nil {
		var err error
		if raw, err = marshalValue(value); err != nil {
			return Op{}, fmt.Errorf("history: ok for op %d: %w", op.Index, err)
		}
	}
	return r.complete(op, OK, raw, "")
}

// Fail records that the invoked op definitely did not happen; err says why.
func (r *Recorder) Fail(op Op, err error) (Op, error) {
	return r.complete(op, Fail, nil, errString(err))
}

// Info records that the invoked op's outcome is unknown; err says why. The
// op's process is crashed from then on (see Recorder).
func (r *Recorder) Info(op Op, err error) (Op, error) {
	return r.complete(op, Info, nil, errString(err))
}

// complete records the completion of inv; a nil value repeats the
// invocation's, as recorded (not as the caller's copy of the handle says).
func (r *Recorder) complete(inv Op, t Type, value json.RawMessage, errText string) (Op, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pending[inv.Process]
	if !ok || p.Index != inv.Index || inv.Type != Invoke {
		return Op{}, fmt.Errorf("history: %s for op %d, which is not process %d's outstanding invocation", t, inv.Index, inv.Process)
	}
	if value == nil {
		value = p.Value
	}
	op := Op{Type: t, Process: p.Process, F: p.F, Key: p.Key, Value: value, Error: errText}
	if err := r.write(&op); err != nil {
		return Op{}, err
	}
	delete(r.pending, p.Process)
	if t == Info {
		r.crashed[p.Process] = op.Index
	}
	return op, nil
}

// write stamps op with the next index and the time and writes its line.
// Called with r.mu held. An index is used up only by a line that was
// written, so the file stays dense even after an error.
func (r *Recorder) write(op *Op) error {
	if r.err != nil {
		return r.err
	}
	op.Index = r.next
	op.Time = r.now()
	r.buf = append(op.appendJSON(r.buf[:0]), '\n')
	if _, err := r.w.Write(r.buf); err != nil {
		r.err = fmt.Errorf("history: write op %d: %w", op.Index, err)
		return r.err
	}
	r.next++
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
