package scenario

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/internal/yamlwalk"
)

// History models the controller can check a run's history against
// (Check.History).
const (
	// HistoryNone checks nothing; the same as leaving check: out.
	HistoryNone = "none"
	// HistoryLinearizableRegister checks that the read, write and cas
	// operations on each key are linearizable (auditor/linear).
	HistoryLinearizableRegister = "linearizable-register"
	// HistoryListAppend checks that list-append transactions are
	// serializable (auditor/listappend).
	HistoryListAppend = "list-append"
)

// DefaultCheckTimeout bounds a history check unless check.timeout says
// otherwise. A check that runs out of time is an unknown verdict.
const DefaultCheckTimeout = 10 * time.Second

// historyModels are the values of check.history, in the order hints list
// them.
var historyModels = []string{HistoryLinearizableRegister, HistoryListAppend, HistoryNone}

// Check is what the controller checks once the run has ended (check:).
type Check struct {
	// History is the model the history the workload recorded
	// (<run>/history.jsonl) is checked against: HistoryLinearizableRegister
	// or HistoryListAppend; "" (or HistoryNone when written) for no check.
	History string
	// Timeout bounds the check in wall time; DefaultCheckTimeout unless
	// written. It is > 0.
	Timeout time.Duration
}

// Enabled reports whether a history check was asked for.
func (c Check) Enabled() bool { return c.History != "" && c.History != HistoryNone }

var checkSchema = schema{what: "the check (check:)", keys: []string{"history", "timeout"}}

// check reads the check: mapping into s.Check.
func (p *parser) check(v *yaml.Node, s *Scenario) {
	const example = "check: {history: linearizable-register, timeout: 10s}"
	d := p.Mapping(v, "check", "write what to check, like "+example)
	if d == nil {
		return
	}
	f := p.fields(d, "check", checkSchema)
	out := Check{Timeout: DefaultCheckTimeout}
	hint := "use one of " + strings.Join(historyModels, ", ")
	if v := f.Req("history", "say which model the history is checked against, like "+example); v != nil {
		if text, ok := p.Scalar(v, "check.history", "a model name", hint); ok {
			if slices.Contains(historyModels, text) {
				out.History = text
			} else {
				if g := suggest(text, historyModels); g != "" {
					hint = fmt.Sprintf("did you mean %q? (%s)", g, hint)
				}
				p.fail(v.Line, "check.history", fmt.Sprintf("%q is not a history model", text), hint)
			}
		}
	}
	if v := f.Opt("timeout"); v != nil {
		if t, ok := p.duration(v, "check.timeout"); ok {
			if t <= 0 {
				p.fail(v.Line, "check.timeout", fmt.Sprintf("%s is not greater than 0", yamlwalk.Deref(v).Value), "give the check a positive time budget like 10s")
			} else {
				out.Timeout = t
			}
		}
	}
	s.Check = out
}
