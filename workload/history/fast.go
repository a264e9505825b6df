package history

import (
	"encoding/json"
	"math"
)

// Decoding without reflection. A history is mostly list-append reads of
// integers, and encoding/json spends most of the auditor's time on them.
// The scanners here handle exactly the shapes the Recorder writes and give
// up (ok false) on anything else, even valid JSON they do not expect; the
// callers then fall back to encoding/json, which decides and words the
// error. Tests hold the two to the same answer wherever the fast one
// answers.

// fastTxn decodes a transaction value: a list of Elle triples.
func fastTxn(b []byte) (Txn, bool) {
	p := scanner{b: b}
	if !p.byte('[') {
		return nil, false
	}
	t := Txn{}
	if p.peek(']') {
		p.i++
		return t, p.end()
	}
	for {
		m, ok := p.micro()
		if !ok {
			return nil, false
		}
		t = append(t, m)
		if p.byte(']') {
			return t, p.end()
		}
		if !p.byte(',') {
			return nil, false
		}
	}
}

type scanner struct {
	b []byte
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek reports whether the next non-space byte is c, without consuming it.
func (p *scanner) peek(c byte) bool {
	p.ws()
	return p.i < len(p.b) && p.b[p.i] == c
}

// byte consumes c if it is next.
func (p *scanner) byte(c byte) bool {
	if p.peek(c) {
		p.i++
		return true
	}
	return false
}

func (p *scanner) end() bool {
	p.ws()
	return p.i == len(p.b)
}

func (p *scanner) micro() (MicroOp, bool) {
	var m MicroOp
	var ok bool
	if !p.byte('[') {
		return m, false
	}
	if m.F, ok = p.str(); !ok || !p.byte(',') {
		return m, false
	}
	if p.peek('"') {
		m.Key, ok = p.str()
	} else { // a numeric key, kept as its decimal text
		start := p.i
		_, ok = p.int()
		m.Key = string(p.b[start:p.i])
	}
	if !ok || !p.byte(',') {
		return m, false
	}
	switch m.F {
	case MicroAppend:
		if m.Value, ok = p.int(); !ok {
			return m, false
		}
	case MicroRead:
		if p.peek('n') {
			if p.i+4 > len(p.b) || string(p.b[p.i:p.i+4]) != "null" {
				return m, false
			}
			p.i += 4
			break
		}
		if !p.byte('[') {
			return m, false
		}
		m.Read = []int64{}
		if !p.byte(']') {
			for {
				v, ok := p.int()
				if !ok {
					return m, false
				}
				m.Read = append(m.Read, v)
				if p.byte(']') {
					break
				}
				if !p.byte(',') {
					return m, false
				}
			}
		}
	default:
		return m, false
	}
	return m, p.byte(']')
}

// str reads a string without escapes; one with escapes is left to
// encoding/json.
func (p *scanner) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// int reads a JSON integer: an optional minus and digits, no leading zero,
// no fraction or exponent (encoding/json refuses those for an int64 too,
// but with its own message), within int64.
func (p *scanner) int() (int64, bool) {
	p.ws()
	neg := p.i < len(p.b) && p.b[p.i] == '-'
	if neg {
		p.i++
	}
	digits := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
		p.i++
	}
	n := p.i - digits
	if n == 0 || (n > 1 && p.b[digits] == '0') {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true // wraps to MinInt64 for 1<<63, as it should
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// fastOp decodes one history line of the shape the Recorder writes (any
// field order, no duplicate or unknown fields, strings without escapes),
// giving up on anything else so that parseOp falls back to encoding/json,
// which then decides and words the error.
func fastOp(b []byte) (Op, bool) {
	var op Op
	p := scanner{b: b}
	if !p.byte('{') {
		return op, false
	}
	const (
		fIndex = 1 << iota
		fType
		fProcess
		fF
		fKey
		fValue
		fTime
		fError
		required = fIndex | fType | fProcess | fF | fTime
	)
	var seen int
	for {
		name, ok := p.str()
		if !ok || !p.byte(':') {
			return op, false
		}
		var bit int
		switch name {
		case "index":
			bit = fIndex
			op.Index, ok = p.int()
		case "type":
			bit = fType
			var t string
			t, ok = p.str()
			op.Type = Type(t)
			ok = ok && op.Type.valid()
		case "process":
			bit = fProcess
			var v int64
			v, ok = p.int()
			op.Process = int(v)
			ok = ok && int64(op.Process) == v
		case "f":
			bit = fF
			op.F, ok = p.str()
		case "key":
			bit = fKey
			op.Key, ok = p.str()
		case "value":
			bit = fValue
			op.Value, ok = p.value()
		case "time":
			bit = fTime
			op.Time, ok = p.int()
		case "error":
			bit = fError
			op.Error, ok = p.str()
		}
		if !ok || bit == 0 || seen&bit != 0 {
			return op, false
		}
		seen |= bit
		if p.byte('}') {
			break
		}
		if !p.byte(',') {
			return op, false
		}
	}
	return op, p.end() && seen&required == required && op.F != ""
}

// value returns the raw JSON value that starts here, validated.
func (p *scanner) value() (json.RawMessage, bool) {
	p.ws()
	start, depth := p.i, 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			for p.i < len(p.b) && p.b[p.i] != '"' {
				if p.b[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			if depth == 0 {
				return p.raw(start)
			}
			depth--
		case (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r') && depth == 0:
			return p.raw(start)
		}
		p.i++
	}
	return p.raw(start)
}

func (p *scanner) raw(start int) (json.RawMessage, bool) {
	v := json.RawMessage(p.b[start:min(p.i, len(p.b))])
	return v, len(v) > 0 && json.Valid(v)
}
