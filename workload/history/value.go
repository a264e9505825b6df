package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ParseRegister decodes a register value: an int, or null for a register
// that was never written. ok is false for null.
func ParseRegister(raw json.RawMessage) (v int64, ok bool, err error) {
	if isNull(raw) {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, fmt.Errorf("register value %s: want an int or null", raw)
	}
	return v, true, nil
}

// ParseCAS decodes a compare-and-set value, [from, to].
func ParseCAS(raw json.RawMessage) (from, to int64, err error) {
	var v []int64
	if err := json.Unmarshal(raw, &v); err != nil || len(v) != 2 {
		return 0, 0, fmt.Errorf("cas value %s: want [from, to]", raw)
	}
	return v[0], v[1], nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// Micro-op names in a list-append transaction, as in Elle.
const (
	MicroAppend = "append"
	MicroRead   = "r"
)

// MicroOp is one step of a list-append transaction. Its JSON form is
// Elle's triple:
//
//	["append", "x", 3]     append 3 to the list at x
//	["r", "x", null]       read x (in an invocation: not read yet)
//	["r", "x", [1, 2, 3]]  read x and saw [1 2 3]
//
// Keys are strings; a numeric key in the input (as Elle writes them) is
// read as its decimal text and written back as a string.
type MicroOp struct {
	F   string // MicroAppend or MicroRead
	Key string
	// Value is the element an append adds. Elements must be unique per key
	// across the history: that is what lets a checker tell whose append a
	// read saw.
	Value int64
	// Read is what a read returned: nil for null (not read, or unknown),
	// an empty non-nil slice for an empty list.
	Read []int64
}

// Append returns an append micro-op.
func Append(key string, v int64) MicroOp { return MicroOp{F: MicroAppend, Key: key, Value: v} }

// ReadKey returns a read micro-op that has not been performed (null).
func ReadKey(key string) MicroOp { return MicroOp{F: MicroRead, Key: key} }

// ReadResult returns a read micro-op that observed list; it is never null,
// even for an empty list.
func ReadResult(key string, list []int64) MicroOp {
	l := make([]int64, len(list))
	copy(l, list)
	return MicroOp{F: MicroRead, Key: key, Read: l}
}

// UnmarshalJSON reads the Elle triple.
func (m *MicroOp) UnmarshalJSON(b []byte) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil || len(parts) != 3 {
		return fmt.Errorf("micro-op %s: want [f, key, value]", b)
	}
	var f string
	if err := json.Unmarshal(parts[0], &f); err != nil {
		return fmt.Errorf("micro-op %s: f is not a string", b)
	}
	key, err := parseKey(parts[1])
	if err != nil {
		return fmt.Errorf("micro-op %s: %w", b, err)
	}
	out := MicroOp{F: f, Key: key}
	switch f {
	case MicroAppend:
		if err := json.Unmarshal(parts[2], &out.Value); err != nil {
			return fmt.Errorf("micro-op %s: append value is not an int", b)
		}
	case MicroRead:
		if !isNull(parts[2]) {
			out.Read = []int64{}
			if err := json.Unmarshal(parts[2], &out.Read); err != nil {
				return fmt.Errorf("micro-op %s: read value is not a list of ints or null", b)
			}
		}
	default:
		return fmt.Errorf("micro-op %s: f %q, want %q or %q", b, f, MicroAppend, MicroRead)
	}
	*m = out
	return nil
}

func parseKey(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err == nil {
		if _, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return string(n), nil
		}
	}
	return "", errors.New("key is neither a string nor an int")
}

// Txn is a list-append transaction: its micro-ops in program order.
type Txn []MicroOp

// ParseTxn decodes a transaction value.
func ParseTxn(raw json.RawMessage) (Txn, error) {
	if isNull(raw) {
		return nil, errors.New("txn value is null")
	}
	if t, ok := fastTxn(raw); ok {
		return t, nil
	}
	// The fast path gave up: let encoding/json decide, and word the error.
	var t Txn
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("txn value: %w", err)
	}
	return t, nil
}

// String renders a transaction compactly for messages, e.g.
// "[append x 1, r y [1 2]]".
func (t Txn) String() string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, m := range t {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.String())
	}
	b.WriteByte(']')
	return b.String()
}

// String renders a micro-op as "append x 1", "r x [1 2]" or "r x nil".
func (m MicroOp) String() string {
	if m.F == MicroAppend {
		return fmt.Sprintf("append %s %d", m.Key, m.Value)
	}
	if m.Read == nil {
		return fmt.Sprintf("r %s nil", m.Key)
	}
	return fmt.Sprintf("r %s %v", m.Key, m.Read)
}
