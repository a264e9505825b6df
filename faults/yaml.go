package faults

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/internal/yamlwalk"
)

// The helpers here walk the yaml.Node tree by hand, as the scenario package
// does, with the same walker (internal/yamlwalk), so that every problem
// names its line and field.

// parser is the state of one ParseSpec or Load.
type parser struct {
	errs
	yamlwalk.Walker
}

func newParser(file string) *parser {
	p := &parser{errs: newErrs(file)}
	p.Walker = yamlwalk.Walker{
		Errs:      &p.errs.List,
		KeyHint:   "keys must be plain names like kind or at",
		MergeHint: `merge a mapping defined with an anchor, like "<<: *base"`,
	}
	return p
}

var (
	intRE    = regexp.MustCompile(`^[+-]?[0-9]+$`)
	numberRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
)

const durationHint = "use Go duration syntax like 2s or 1500ms"

func (p *parser) syntax(err error) {
	line, msg, ok := yamlwalk.SplitError(err)
	if !ok {
		line = 1
	}
	p.fail(line, "yaml syntax", msg, "check the brackets, quotes and indentation from this line on")
}

// fields checks the keys of the mapping n. A key outside allowed is
// reported, with the reason from misplaced if it has one (a key that exists
// but not here), or else with a guess at what was meant. Unlike the
// scenario's, a guess does not silence a missing required key.
func (p *parser) fields(n *yaml.Node, field string, allowed []string, misplaced func(key string) (problem, hint string)) *yamlwalk.Fields {
	list := strings.Join(allowed, ", ")
	return p.Fields(n, field, allowed, func(key string) yamlwalk.Unknown {
		if misplaced != nil {
			if problem, hint := misplaced(key); problem != "" {
				if hint == "" {
					hint = fmt.Sprintf("remove it (allowed here: %s)", list)
				}
				return yamlwalk.Unknown{Problem: problem, Hint: hint}
			}
		}
		hint := fmt.Sprintf("remove it or fix its spelling (allowed: %s)", list)
		if g := suggest(key, allowed); g != "" {
			hint = fmt.Sprintf("did you mean %q? (allowed: %s)", g, list)
		}
		return yamlwalk.Unknown{Problem: "unknown field", Hint: hint}
	})
}

// duration reads a duration; sign is what it must be: +1 above 0, 0 at
// least 0, -1 anything.
func (p *parser) duration(v *yaml.Node, field, hint string, sign int) (time.Duration, bool) {
	text, ok := p.Scalar(v, field, "a duration", durationHint)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		problem := fmt.Sprintf("%q is not a duration", text)
		if numberRE.MatchString(text) {
			problem = fmt.Sprintf("%s has no unit", text)
		}
		p.fail(v.Line, field, problem, durationHint)
		return 0, false
	}
	switch {
	case sign >= 0 && d < 0:
		p.fail(v.Line, field, fmt.Sprintf("%s is negative", text), hint)
		return 0, false
	case sign > 0 && d == 0:
		p.fail(v.Line, field, fmt.Sprintf("%s is zero", text), hint)
		return 0, false
	}
	return d, true
}

// number reads a decimal number; "20%" is refused with a hint to drop the
// sign.
func (p *parser) number(v *yaml.Node, field, key, hint string) (float64, string, bool) {
	text, ok := p.Scalar(v, field, "a number", hint)
	if !ok {
		return 0, "", false
	}
	if !numberRE.MatchString(text) {
		if t := strings.TrimSpace(strings.TrimSuffix(text, "%")); t != text && numberRE.MatchString(t) {
			hint = fmt.Sprintf("write the number without %%, like %s: %s", key, t)
		}
		p.fail(v.Line, field, fmt.Sprintf("%q is not a number", text), hint)
		return 0, "", false
	}
	x, err := strconv.ParseFloat(text, 64)
	if err != nil {
		p.fail(v.Line, field, fmt.Sprintf("%q is not a number", text), hint)
		return 0, "", false
	}
	return x, text, true
}

// integer reads a whole number.
func (p *parser) integer(v *yaml.Node, field, hint string) (int64, string, bool) {
	text, ok := p.Scalar(v, field, "a whole number", hint)
	if !ok {
		return 0, "", false
	}
	if !intRE.MatchString(text) {
		p.fail(v.Line, field, fmt.Sprintf("%q is not a whole number", text), hint)
		return 0, "", false
	}
	x, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		p.fail(v.Line, field, fmt.Sprintf("%s is too large", text), hint)
		return 0, "", false
	}
	return x, text, true
}
