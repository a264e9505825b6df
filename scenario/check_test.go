package scenario

import (
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	const head = "duration: 2s\nnodes: [{name: a, binary: b}]\n"
	for _, c := range []struct {
		yaml string
		want Check
	}{
		{"", Check{}},
		{"check:\n", Check{}},
		{"check: {history: linearizable-register}\n", Check{History: HistoryLinearizableRegister, Timeout: DefaultCheckTimeout}},
		{"check: {history: list-append, timeout: 1m}\n", Check{History: HistoryListAppend, Timeout: time.Minute}},
		{"check:\n  history: none\n", Check{History: HistoryNone, Timeout: DefaultCheckTimeout}},
	} {
		s, err := Parse([]byte(head+c.yaml), "x.yaml")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if s.Check != c.want {
			t.Errorf("%q: check %+v, want %+v", c.yaml, s.Check, c.want)
		}
		if s.Check.Enabled() != (c.want.History != "" && c.want.History != HistoryNone) {
			t.Errorf("%q: Enabled() = %v", c.yaml, s.Check.Enabled())
		}
	}
}

func TestCheckErrors(t *testing.T) {
	const head = "duration: 2s\nnodes: [{name: a, binary: b}]\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"scalar", "check: linearizable-register\n",
			`x.yaml:3: check: is a single value, not a mapping; write what to check, like check: {history: linearizable-register, timeout: 10s}`},
		{"missing history", "check: {timeout: 5s}\n",
			`x.yaml:3: check.history: required field is missing; say which model the history is checked against, like check: {history: linearizable-register, timeout: 10s}`},
		{"unknown model", "check: {history: linearizable}\n",
			`x.yaml:3: check.history: "linearizable" is not a history model; use one of linearizable-register, list-append, none`},
		{"misspelt model", "check: {history: list-apend}\n",
			`x.yaml:3: check.history: "list-apend" is not a history model; did you mean "list-append"? (use one of linearizable-register, list-append, none)`},
		{"unknown field", "check:\n  history: none\n  timout: 5s\n",
			`x.yaml:5: check.timout: unknown field; did you mean "timeout"? (allowed: history, timeout)`},
		{"bad timeout", "check: {history: none, timeout: 5}\n",
			`x.yaml:3: check.timeout: 5 has no unit; use Go duration syntax like 2s or 1500ms`},
		{"zero timeout", "check: {history: none, timeout: 0s}\n",
			`x.yaml:3: check.timeout: 0s is not greater than 0; give the check a positive time budget like 10s`},
		{"misplaced", "nodes: [{name: a, binary: b, history: none}]\nduration: 2s\n",
			`x.yaml:1: nodes[0].history: unknown field; history is a field of the check (check:), not of a node (an item of nodes); move it there (allowed here: name, count, binary, args, env, daemon, memory, disk, files, include, commands)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := head + c.yaml
			if c.name == "misplaced" {
				y = c.yaml
			}
			_, err := Parse([]byte(y), "x.yaml")
			if err == nil || err.Error() != c.want {
				t.Fatalf("error\n got %v\nwant %s", err, c.want)
			}
		})
	}
}
