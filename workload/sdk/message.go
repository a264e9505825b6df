package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// EnvVar names the environment variable the agent sets in every process it
// starts: the path of its SDK socket. Unset means "not in a detvm guest".
const EnvVar = "DETVM_SDK"

// SocketPath is where the agent serves the SDK socket in every guest.
const SocketPath = "/run/detvm/sdk"

// MaxMessage bounds one message: the agent reports a longer datagram as a
// bad message (it equals wire.MaxSDKMessage).
const MaxMessage = 64 << 10

// Message types (Message.Type).
const (
	TypeAssert        = "assert"         // an assertion evaluated (or declared)
	TypeSetupComplete = "setup_complete" // the system is ready for faults and checks
	TypeHistory       = "history"        // one op of the run's history
	TypeGuidance      = "guidance"       // a number worth maximising or minimising; recorded only
)

// Assertion kinds (Message.Assert), with Antithesis's names and meaning.
const (
	// Always: the condition holds every time, and the assertion is
	// evaluated at least once.
	KindAlways = "always"
	// AlwaysOrUnreachable: the condition holds every time it is
	// evaluated; never evaluating it passes.
	KindAlwaysOrUnreachable = "always_or_unreachable"
	// Sometimes: the condition holds at least once.
	KindSometimes = "sometimes"
	// Reachable: the assertion is evaluated at least once.
	KindReachable = "reachable"
	// Unreachable: the assertion is never evaluated.
	KindUnreachable = "unreachable"
)

// Kinds lists the assertion kinds in the order the docs give them.
var Kinds = []string{KindAlways, KindAlwaysOrUnreachable, KindSometimes, KindReachable, KindUnreachable}

// Message is one SDK message: a JSON object, one datagram, with the fields
// its Type uses. The JSON field order is the struct's, so the same call
// gives the same bytes.
//
//	{"type":"assert","assert":"always","message":"x ok","condition":true,"details":{"n":1}}
//	{"type":"setup_complete","details":{"members":3}}
//	{"type":"history","op":{"index":0,"type":"invoke","process":0,"f":"read","key":"x","value":null,"time":1200}}
//	{"type":"guidance","name":"queue depth","value":12}
type Message struct {
	Type string `json:"type"`
	// Assert is the assertion kind (TypeAssert).
	Assert string `json:"assert,omitempty"`
	// Message names the property (TypeAssert): the same message from
	// anywhere in the cluster is the same property.
	Message string `json:"message,omitempty"`
	// Condition is the evaluated condition (TypeAssert); reachable and
	// unreachable send true.
	Condition *bool `json:"condition,omitempty"`
	// Hit false declares the assertion without evaluating it (TypeAssert),
	// like Antithesis's catalog: an always or reachable declared but never
	// evaluated fails. Absent means true.
	Hit *bool `json:"hit,omitempty"`
	// Details is any JSON value that helps a person debug (TypeAssert,
	// TypeSetupComplete).
	Details json.RawMessage `json:"details,omitempty"`
	// Op is one history op as workload/history writes it (TypeHistory).
	Op json.RawMessage `json:"op,omitempty"`
	// Name and Value are a guidance metric (TypeGuidance).
	Name  string   `json:"name,omitempty"`
	Value *float64 `json:"value,omitempty"`
}

// Evaluated reports whether an assert message is an evaluation (not a
// declaration with hit false).
func (m *Message) Evaluated() bool { return m.Hit == nil || *m.Hit }

// Parse decodes and checks one message as the controller receives it.
// Unknown fields are allowed (newer senders); unknown types, unknown
// assertion kinds and missing required fields are errors.
func Parse(b []byte) (*Message, error) {
	if !IsObject(b) {
		return nil, errors.New("not a JSON object")
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	switch m.Type {
	case TypeAssert:
		if !knownKind(m.Assert) {
			return nil, fmt.Errorf("assert %q: want one of always, always_or_unreachable, sometimes, reachable, unreachable", m.Assert)
		}
		if m.Condition == nil && m.Evaluated() {
			switch m.Assert {
			case KindReachable, KindUnreachable:
				t := true
				m.Condition = &t
			default:
				return nil, fmt.Errorf("assert %s %q: no condition", m.Assert, m.Message)
			}
		}
	case TypeSetupComplete:
	case TypeHistory:
		if !IsObject(m.Op) {
			return nil, errors.New("history: op is not a JSON object")
		}
	case TypeGuidance:
		if m.Name == "" || m.Value == nil {
			return nil, errors.New("guidance: needs a name and a numeric value")
		}
	case "":
		return nil, errors.New(`no "type"`)
	default:
		return nil, fmt.Errorf("unknown type %q", m.Type)
	}
	return &m, nil
}

func knownKind(k string) bool {
	for _, c := range Kinds {
		if k == c {
			return true
		}
	}
	return false
}

// IsObject reports whether b is exactly one valid JSON object (surrounding
// white space allowed).
func IsObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

// detailsJSON encodes a details value. A value encoding/json refuses does
// not lose the assertion: its details say why they are missing.
func detailsJSON(details any) json.RawMessage {
	if details == nil {
		return nil
	}
	if raw, ok := details.(json.RawMessage); ok && json.Valid(raw) {
		var buf bytes.Buffer
		_ = json.Compact(&buf, raw) // valid, so it compacts
		return buf.Bytes()
	}
	b, err := json.Marshal(details)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"detvm_sdk_error": "details: " + err.Error()})
	}
	return b
}

// AssertMessage encodes an assertion. Details is any value json.Marshal
// accepts (a json.RawMessage is used as it is); nil for none. A message
// that would exceed MaxMessage loses its details first, then the tail of
// its text, so that the evaluation itself always arrives.
func AssertMessage(kind string, cond bool, message string, details any) ([]byte, error) {
	if !knownKind(kind) {
		return nil, fmt.Errorf("sdk: unknown assertion kind %q", kind)
	}
	m := Message{Type: TypeAssert, Assert: kind, Message: message, Condition: &cond, Details: detailsJSON(details)}
	b, err := json.Marshal(&m)
	if err != nil {
		return nil, err
	}
	if len(b) <= MaxMessage {
		return b, nil
	}
	m.Details, _ = json.Marshal(map[string]string{"detvm_sdk_error": fmt.Sprintf("details dropped: the message was %d bytes, more than %d", len(b), MaxMessage)})
	if b, err = json.Marshal(&m); err == nil && len(b) <= MaxMessage {
		return b, nil
	}
	if len(m.Message) > 4096 {
		m.Message = m.Message[:4096] // json.Marshal turns a cut rune into U+FFFD
	}
	return json.Marshal(&m)
}

// SetupCompleteMessage encodes a setup_complete message.
func SetupCompleteMessage(details any) ([]byte, error) {
	b, err := json.Marshal(&Message{Type: TypeSetupComplete, Details: detailsJSON(details)})
	if err == nil && len(b) > MaxMessage {
		return json.Marshal(&Message{Type: TypeSetupComplete})
	}
	return b, err
}

// HistoryMessage encodes one history op, a JSON object. An op too long for
// one message is an error: the history cannot be recorded faithfully.
func HistoryMessage(op []byte) ([]byte, error) {
	op = bytes.TrimSpace(op)
	if !IsObject(op) {
		return nil, fmt.Errorf("sdk: history op is not a JSON object: %.80q", op)
	}
	var buf bytes.Buffer
	buf.WriteString(`{"type":"history","op":`)
	if err := json.Compact(&buf, op); err != nil {
		return nil, err
	}
	buf.WriteByte('}')
	if buf.Len() > MaxMessage {
		return nil, fmt.Errorf("sdk: history op of %d bytes is longer than an SDK message (%d bytes)", len(op), MaxMessage)
	}
	return buf.Bytes(), nil
}

// GuidanceMessage encodes a guidance metric; NaN and infinities are not
// JSON numbers and are refused.
func GuidanceMessage(name string, value float64) ([]byte, error) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return nil, fmt.Errorf("sdk: guidance %q: %v is not a JSON number", name, value)
	}
	if name == "" {
		return nil, errors.New("sdk: guidance needs a name")
	}
	return json.Marshal(&Message{Type: TypeGuidance, Name: name, Value: &value})
}
