package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Type says whether an Op starts an operation or how it ended.
type Type string

const (
	// Invoke starts an operation: the process is about to ask the system.
	Invoke Type = "invoke"
	// OK completes an operation that definitely happened.
	OK Type = "ok"
	// Fail completes an operation that definitely did not happen (an
	// aborted transaction, a CAS whose comparison failed).
	Fail Type = "fail"
	// Info completes an operation whose outcome is unknown (a timeout, a
	// lost connection): it may have happened, at any point after its
	// invocation, or never. The process that saw it is crashed for good.
	Info Type = "info"
)

func (t Type) valid() bool {
	switch t {
	case Invoke, OK, Fail, Info:
		return true
	}
	return false
}

// Names of operations (Op.F) that the checkers understand. A workload may
// record others; a checker ignores or rejects them as its doc says.
const (
	FRead  = "read"  // register read: invoke value null, ok value the int read or null
	FWrite = "write" // register write: value the int written
	FCAS   = "cas"   // compare-and-set: value [from, to]
	FTxn   = "txn"   // list-append transaction: value a Txn
)

// Op is one line of a history: an invocation or a completion. The JSON form
// is Jepsen's, with virtual time:
//
//	{"index":3,"type":"ok","process":1,"f":"read","key":"x","value":5,"time":1200}
type Op struct {
	// Index is the op's position in the history, assigned by the Recorder:
	// strictly increasing in file order, dense from 0 when recorded here.
	Index int64 `json:"index"`
	Type  Type  `json:"type"`
	// Process is the logical client that issued the op. A process has at
	// most one op outstanding, and none at all after an Info.
	Process int    `json:"process"`
	F       string `json:"f"`
	// Key names the register an op touches; empty for transactions, whose
	// keys are inside the value.
	Key string `json:"key,omitempty"`
	// Value is kept as raw JSON so that a history can carry any workload's
	// values; the helpers in value.go decode the ones the checkers know.
	Value json.RawMessage `json:"value"`
	// Time is virtual nanoseconds from the sidecar's clock, so that a
	// replayed run records the same history byte for byte.
	Time int64 `json:"time"`
	// Error says why a Fail or Info happened; empty otherwise.
	Error string `json:"error,omitempty"`
}

// maxLine bounds one history line. List-append reads grow with the run, so
// the bound is generous; it exists so a corrupt file fails with a line
// number instead of exhausting memory.
const maxLine = 256 << 20

// Read parses a history written by a Recorder: one JSON op per line, blank
// lines skipped. Errors name the line. Unknown fields are errors, because a
// misspelt "tpye" would otherwise read as an invocation of nothing.
func Read(r io.Reader) ([]Op, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var ops []Op
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return ops, fmt.Errorf("history: line %d: %w", line, err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			op, perr := parseOp(b)
			if perr != nil {
				return ops, fmt.Errorf("history: line %d: %w", line, perr)
			}
			if n := len(ops); n > 0 && op.Index <= ops[n-1].Index {
				return ops, fmt.Errorf("history: line %d: index %d does not follow index %d", line, op.Index, ops[n-1].Index)
			}
			ops = append(ops, op)
		}
		if errors.Is(err, io.EOF) {
			return ops, nil
		}
	}
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return out, err
	}
}

// wireOp has pointers for the fields a line must have, so that a missing
// one is an error rather than a zero.
type wireOp struct {
	Index   *int64          `json:"index"`
	Type    *Type           `json:"type"`
	Process *int            `json:"process"`
	F       *string         `json:"f"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
	Time    *int64          `json:"time"`
	Error   string          `json:"error"`
}

func parseOp(b []byte) (Op, error) {
	if op, ok := fastOp(b); ok {
		return op, nil
	}
	return slowOp(b)
}

func slowOp(b []byte) (Op, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireOp
	if err := dec.Decode(&w); err != nil {
		return Op{}, err
	}
	if dec.More() {
		return Op{}, errors.New("more than one JSON value on the line")
	}
	switch {
	case w.Index == nil:
		return Op{}, errors.New(`missing "index"`)
	case w.Type == nil:
		return Op{}, errors.New(`missing "type"`)
	case !w.Type.valid():
		return Op{}, fmt.Errorf("unknown type %q (want invoke, ok, fail or info)", *w.Type)
	case w.Process == nil:
		return Op{}, errors.New(`missing "process"`)
	case w.F == nil || *w.F == "":
		return Op{}, errors.New(`missing "f"`)
	case w.Time == nil:
		return Op{}, errors.New(`missing "time"`)
	}
	return Op{
		Index:   *w.Index,
		Type:    *w.Type,
		Process: *w.Process,
		F:       *w.F,
		Key:     w.Key,
		Value:   w.Value,
		Time:    *w.Time,
		Error:   w.Error,
	}, nil
}

// String renders an op in one line for messages and test output, e.g.
// "#3 p1 ok read x 5".
func (o Op) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#%d p%d %s %s", o.Index, o.Process, o.Type, o.F)
	if o.Key != "" {
		fmt.Fprintf(&b, " %s", o.Key)
	}
	if len(o.Value) > 0 {
		b.WriteByte(' ')
		if err := json.Compact(&b, o.Value); err != nil {
			b.Write(o.Value)
		}
	} else {
		b.WriteString(" null")
	}
	if o.Error != "" {
		fmt.Fprintf(&b, " (%s)", o.Error)
	}
	return b.String()
}
