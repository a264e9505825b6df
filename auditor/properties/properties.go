// Package properties turns the SDK's assertion messages into verdicts, with
// Antithesis's semantics (docs/sdk.md):
//
//	kind                   passes when                         fails when
//	always                 evaluated, and true every time      false once, or never evaluated
//	always_or_unreachable  true every time it is evaluated     false once
//	sometimes              true at least once                  never true (also: never evaluated)
//	reachable              evaluated at least once             never evaluated
//	unreachable            never evaluated                     evaluated once
//
// "Never evaluated" can only be seen for a property that was declared (a
// message with hit false) or that the run evaluated under another kind:
// the Aggregator knows only the properties it has been told of.
//
// A property is named by its message. The same message asserted with two
// kinds is two properties, each named "message (kind)", and a warning.
//
// Like the scheduler and the checkers, this is a pure core: observations
// in, verdicts out, no clock, no I/O. The controller feeds it every SDK
// message in collection order (epoch, then node, then order in the page),
// so the verdicts, first failures included, are a function of the run.
package properties

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/workload/sdk"
)

// Obs is one SDK message as the controller collected it.
type Obs struct {
	Epoch     uint64 // the barrier it was collected at
	VirtualNS uint64 // the controller's virtual time then (Epoch × epoch length)
	Node      string
	Proc      string // the sending process, "" if the agent could not tell
	Msg       json.RawMessage
}

// Failure is where a property first failed.
type Failure struct {
	Epoch     uint64 `json:"epoch"`
	VirtualNS uint64 `json:"virtual_ns"`
	Node      string `json:"node"`
	Proc      string `json:"proc,omitempty"`
	Message   string `json:"message"` // what happened, with the assertion's details
}

// Verdict is the outcome of one property.
type Verdict struct {
	Property string         `json:"property"`
	Kind     string         `json:"kind"`
	Status   auditor.Status `json:"status"`
	// Hits counts evaluations; True how many had a true condition.
	Hits uint64 `json:"hits"`
	True uint64 `json:"true"`
	// FirstFailure is the first evaluation that failed the property (a
	// false always, a hit unreachable); nil when it passed, and when it
	// failed for what never happened (a sometimes never true).
	FirstFailure *Failure `json:"first_failure,omitempty"`
	Message      string   `json:"message"` // one line: why this status
}

// prop is what the Aggregator knows of one (message, kind).
type prop struct {
	Message   string   `json:"message"`
	Kind      string   `json:"kind"`
	Hits      uint64   `json:"hits"`
	True      uint64   `json:"true"`
	FirstBad  *Failure `json:"first_bad,omitempty"` // first false (always*), first hit (unreachable)
	FirstGood *Failure `json:"first_good,omitempty"`
}

type key struct{ message, kind string }

// Aggregator accumulates observations. Its zero value is ready; it is not
// safe for concurrent use. It marshals to JSON (and back) so that a
// snapshot of a run can carry it.
type Aggregator struct {
	props map[key]*prop
}

// Observe takes one SDK message. Messages of other types than assert are
// ignored; a malformed message is an error and changes nothing.
func (a *Aggregator) Observe(o Obs) error {
	m, err := sdk.Parse(o.Msg)
	if err != nil {
		return err
	}
	if m.Type != sdk.TypeAssert {
		return nil
	}
	if a.props == nil {
		a.props = map[key]*prop{}
	}
	k := key{m.Message, m.Assert}
	p := a.props[k]
	if p == nil {
		p = &prop{Message: m.Message, Kind: m.Assert}
		a.props[k] = p
	}
	if !m.Evaluated() {
		return nil // declared: known, not reached
	}
	p.Hits++
	cond := *m.Condition
	if cond {
		p.True++
	}
	at := func(what string) *Failure {
		if len(m.Details) > 0 {
			what += ", details " + string(m.Details)
		}
		return &Failure{Epoch: o.Epoch, VirtualNS: o.VirtualNS, Node: o.Node, Proc: o.Proc, Message: what}
	}
	switch {
	case p.Kind == sdk.KindUnreachable && p.FirstBad == nil:
		p.FirstBad = at("reached")
	case (p.Kind == sdk.KindAlways || p.Kind == sdk.KindAlwaysOrUnreachable) && !cond && p.FirstBad == nil:
		p.FirstBad = at("condition false")
	case p.Kind == sdk.KindSometimes && cond && p.FirstGood == nil:
		p.FirstGood = at("condition true")
	}
	return nil
}

// Verdicts returns one verdict per property, sorted by property name.
func (a *Aggregator) Verdicts() []Verdict {
	kinds := a.kindsByMessage()
	out := make([]Verdict, 0, len(a.props))
	for _, p := range a.props {
		v := verdict(p)
		if len(kinds[p.Message]) > 1 {
			v.Property = fmt.Sprintf("%s (%s)", p.Message, p.Kind)
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Property != out[j].Property {
			return out[i].Property < out[j].Property
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// Warnings says what the verdicts cannot: messages asserted with more than
// one kind. Sorted.
func (a *Aggregator) Warnings() []string {
	var out []string
	for msg, ks := range a.kindsByMessage() {
		if len(ks) > 1 {
			out = append(out, fmt.Sprintf("property %q is asserted as %s: reported as %d properties, one per kind", msg, strings.Join(ks, " and "), len(ks)))
		}
	}
	sort.Strings(out)
	return out
}

func (a *Aggregator) kindsByMessage() map[string][]string {
	m := map[string][]string{}
	for k := range a.props {
		m[k.message] = append(m[k.message], k.kind)
	}
	for _, ks := range m {
		sort.Strings(ks)
	}
	return m
}

func verdict(p *prop) Verdict {
	v := Verdict{Property: p.Message, Kind: p.Kind, Hits: p.Hits, True: p.True, Status: auditor.Passed}
	fail := func(msg string, first *Failure) {
		v.Status, v.Message, v.FirstFailure = auditor.Failed, msg, first
	}
	falses := p.Hits - p.True
	switch p.Kind {
	case sdk.KindAlways, sdk.KindAlwaysOrUnreachable:
		switch {
		case falses > 0:
			fail(fmt.Sprintf("false in %d of %s", falses, evals(p.Hits)), p.FirstBad)
		case p.Hits == 0 && p.Kind == sdk.KindAlways:
			fail("never evaluated", nil)
		case p.Hits == 0:
			v.Message = "never evaluated"
		case p.Hits == 1:
			v.Message = "true in 1 evaluation"
		default:
			v.Message = fmt.Sprintf("true in all %s", evals(p.Hits))
		}
	case sdk.KindSometimes:
		switch {
		case p.True > 0:
			v.Message = fmt.Sprintf("true in %d of %s", p.True, evals(p.Hits))
		case p.Hits == 0:
			fail("never evaluated", nil)
		default:
			fail(fmt.Sprintf("never true in %s", evals(p.Hits)), nil)
		}
	case sdk.KindReachable:
		if p.Hits == 0 {
			fail("never reached", nil)
		} else {
			v.Message = "reached " + times(p.Hits)
		}
	case sdk.KindUnreachable:
		if p.Hits > 0 {
			fail("reached "+times(p.Hits), p.FirstBad)
		} else {
			v.Message = "never reached"
		}
	}
	return v
}

func evals(n uint64) string {
	if n == 1 {
		return "1 evaluation"
	}
	return fmt.Sprintf("%d evaluations", n)
}

func times(n uint64) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// MarshalJSON encodes the Aggregator's state, properties sorted, so equal
// states give equal bytes.
func (a *Aggregator) MarshalJSON() ([]byte, error) {
	ps := make([]*prop, 0, len(a.props))
	for _, p := range a.props {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Message != ps[j].Message {
			return ps[i].Message < ps[j].Message
		}
		return ps[i].Kind < ps[j].Kind
	})
	return json.Marshal(struct {
		Props []*prop `json:"props"`
	}{ps})
}

// UnmarshalJSON replaces the Aggregator's state with an encoded one.
func (a *Aggregator) UnmarshalJSON(b []byte) error {
	var s struct {
		Props []*prop `json:"props"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	a.props = map[key]*prop{}
	for _, p := range s.Props {
		if p == nil {
			continue
		}
		a.props[key{p.Message, p.Kind}] = p
	}
	return nil
}
