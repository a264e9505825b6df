package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// The Recorder runs inside the sidecar guest, where every CPU cycle is
// virtual time taken from the workload, and list-append reads grow long.
// encoding/json spends most of its time there on reflection and on
// re-validating values it produced itself, so the line format is written by
// hand. It is byte-for-byte what json.Marshal(Op) gives (a test holds it to
// that), so any JSON reader, and Read, can read it.

// appendJSON appends op's line, without the newline.
func (o *Op) appendJSON(b []byte) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, o.Index, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, string(o.Type))
	b = append(b, `,"process":`...)
	b = strconv.AppendInt(b, int64(o.Process), 10)
	b = append(b, `,"f":`...)
	b = appendString(b, o.F)
	if o.Key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, o.Key)
	}
	b = append(b, `,"value":`...)
	if len(o.Value) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, o.Value...) // compact: see marshalValue
	}
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, o.Time, 10)
	if o.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, o.Error)
	}
	return append(b, '}')
}

// appendString writes s as encoding/json would: plain if it needs no
// escaping (the common case), through encoding/json otherwise.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSON appends the transaction as a list of Elle triples.
func (t Txn) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '[')
	for i, m := range t {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = m.appendJSON(b); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

func (m MicroOp) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '[')
	b = appendString(b, m.F)
	b = append(b, ',')
	b = appendString(b, m.Key)
	b = append(b, ',')
	switch m.F {
	case MicroAppend:
		b = strconv.AppendInt(b, m.Value, 10)
	case MicroRead:
		if m.Read == nil {
			b = append(b, "null"...)
			break
		}
		b = append(b, '[')
		for i, v := range m.Read {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ']')
	default:
		return nil, fmt.Errorf("micro-op %q: want %q or %q", m.F, MicroAppend, MicroRead)
	}
	return append(b, ']'), nil
}

// MarshalJSON writes the Elle triple.
func (m MicroOp) MarshalJSON() ([]byte, error) { return m.appendJSON(nil) }

// MarshalJSON writes the list of Elle triples.
func (t Txn) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	return t.appendJSON(nil)
}

// marshalValue encodes a value for an op: compact, one line, valid JSON.
func marshalValue(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case Txn:
		return v.MarshalJSON()
	case json.RawMessage:
		if v == nil {
			return json.RawMessage("null"), nil
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return nil, fmt.Errorf("value %q is not valid JSON", v)
		}
		return buf.Bytes(), nil
	}
	return json.Marshal(v)
}
