package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The helpers here walk the yaml.Node tree by hand, as the scenario package
// does, so that every problem names its line and field.

// parser is the state of one ParseSpec or Load.
type parser struct {
	errs
}

var (
	intRE    = regexp.MustCompile(`^[+-]?[0-9]+$`)
	numberRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
)

const durationHint = "use Go duration syntax like 2s or 1500ms"

// decodeAll returns the documents in data; a panic in yaml.v3 becomes an
// error.
func decodeAll(data []byte) (docs []*yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			docs, err = nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if derr := dec.Decode(&n); errors.Is(derr, io.EOF) {
			return docs, nil
		} else if derr != nil {
			return nil, derr
		}
		docs = append(docs, &n)
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

func (p *parser) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	p.fail(line, "yaml syntax", msg, "check the brackets, quotes and indentation from this line on")
}

// fields is a mapping checked against a set of keys.
type fields struct {
	line  int // of the mapping, where a missing key is reported
	field string
	vals  map[string]*yaml.Node
	keys  map[string]*yaml.Node
}

// fields checks the keys of the mapping n. A key outside allowed is
// reported, with the reason from misplaced if it has one (a key that exists
// but not here), or else with a guess at what was meant.
func (p *parser) fields(n *yaml.Node, field string, allowed []string, misplaced func(key string) (problem, hint string)) *fields {
	f := &fields{line: n.Line, field: field, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	list := strings.Join(allowed, ", ")
	for _, e := range p.entries(n, field, map[*yaml.Node]bool{}) {
		if slices.Contains(allowed, e.name) {
			f.keys[e.name], f.vals[e.name] = e.key, e.val
			continue
		}
		if misplaced != nil {
			if problem, hint := misplaced(e.name); problem != "" {
				if hint == "" {
					hint = fmt.Sprintf("remove it (allowed here: %s)", list)
				}
				p.fail(e.key.Line, join(field, e.name), problem, hint)
				continue
			}
		}
		hint := fmt.Sprintf("remove it or fix its spelling (allowed: %s)", list)
		if g := suggest(e.name, allowed); g != "" {
			hint = fmt.Sprintf("did you mean %q? (allowed: %s)", g, list)
		}
		p.fail(e.key.Line, join(field, e.name), "unknown field", hint)
	}
	return f
}

// opt returns the value of an optional key; nil if absent or null.
func (f *fields) opt(key string) *yaml.Node {
	v := f.vals[key]
	if v == nil || isNull(v) {
		return nil
	}
	return v
}

// req returns the value of a required key, or nil after recording that it
// is missing.
func (p *parser) req(f *fields, key, hint string) *yaml.Node {
	v, ok := f.vals[key]
	switch {
	case !ok:
		p.fail(f.line, join(f.field, key), "required field is missing", hint)
		return nil
	case isNull(v):
		p.fail(v.Line, join(f.field, key), "has no value", hint)
		return nil
	}
	return v
}

type entry struct {
	key, val *yaml.Node
	name     string
	merged   bool
}

// entries returns the pairs of the mapping n in the order written, with
// YAML merge keys (<<: *base) expanded; written keys override merged ones.
func (p *parser) entries(n *yaml.Node, field string, visiting map[*yaml.Node]bool) []entry {
	if visiting[n] {
		p.fail(n.Line, field, "merges a mapping into itself", "remove the <<: that refers back to this mapping")
		return nil
	}
	visiting[n] = true
	defer delete(visiting, n)
	var all []entry
	written := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kd := deref(k)
		if kd.Kind != yaml.ScalarNode {
			p.fail(k.Line, field, "has a key that is "+kindName(kd), "keys must be plain names like kind or at")
			continue
		}
		if kd.ShortTag() == "!!merge" {
			all = append(all, p.merge(v, join(field, "<<"), visiting)...)
			continue
		}
		if first := written[kd.Value]; first != nil {
			p.fail(k.Line, join(field, kd.Value), fmt.Sprintf("is set twice (first on line %d)", first.Line), "remove one of the two")
			continue
		}
		written[kd.Value] = k
		all = append(all, entry{key: k, val: v, name: kd.Value})
	}
	var out []entry
	kept := map[string]bool{}
	for _, e := range all {
		if e.merged && (written[e.name] != nil || kept[e.name]) {
			continue
		}
		kept[e.name] = true
		out = append(out, e)
	}
	return out
}

func (p *parser) merge(v *yaml.Node, field string, visiting map[*yaml.Node]bool) []entry {
	const hint = `merge a mapping defined with an anchor, like "<<: *base"`
	d := deref(v)
	var sources []*yaml.Node
	switch d.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{d}
	case yaml.SequenceNode:
		for _, item := range d.Content {
			if it := deref(item); it.Kind == yaml.MappingNode {
				sources = append(sources, it)
			} else {
				p.fail(item.Line, field, "is "+kindName(it)+", not a mapping", hint)
			}
		}
	default:
		p.fail(v.Line, field, "is "+kindName(d)+", not a mapping", hint)
	}
	var out []entry
	for _, src := range sources {
		for _, e := range p.entries(src, field, visiting) {
			e.merged = true
			out = append(out, e)
		}
	}
	return out
}

// mapping returns the dereferenced mapping v, or nil after recording that it
// is something else.
func (p *parser) mapping(v *yaml.Node, field, hint string) *yaml.Node {
	d := deref(v)
	if d.Kind != yaml.MappingNode {
		p.fail(v.Line, field, "is "+kindName(d)+", not a mapping", hint)
		return nil
	}
	return d
}

// scalar returns the text of a scalar as written.
func (p *parser) scalar(v *yaml.Node, field, want, hint string) (string, bool) {
	d := deref(v)
	if d.Kind != yaml.ScalarNode {
		p.fail(v.Line, field, "is "+kindName(d)+", not "+want, hint)
		return "", false
	}
	return d.Value, true
}

func (p *parser) list(v *yaml.Node, field, hint string) ([]*yaml.Node, bool) {
	d := deref(v)
	if d.Kind != yaml.SequenceNode {
		p.fail(v.Line, field, "is "+kindName(d)+", not a list", hint)
		return nil, false
	}
	return d.Content, true
}

// duration reads a duration; sign is what it must be: +1 above 0, 0 at
// least 0, -1 anything.
func (p *parser) duration(v *yaml.Node, field, hint string, sign int) (time.Duration, bool) {
	text, ok := p.scalar(v, field, "a duration", durationHint)
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

func (p *parser) bool(v *yaml.Node, field, key string) (bool, bool) {
	hint := fmt.Sprintf("write %s: true or %s: false", key, key)
	text, ok := p.scalar(v, field, "true or false", hint)
	if !ok {
		return false, false
	}
	switch strings.ToLower(text) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	p.fail(v.Line, field, fmt.Sprintf("%q is not true or false", text), hint)
	return false, false
}

// number reads a decimal number; "20%" is refused with a hint to drop the
// sign.
func (p *parser) number(v *yaml.Node, field, key, hint string) (float64, string, bool) {
	text, ok := p.scalar(v, field, "a number", hint)
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
	text, ok := p.scalar(v, field, "a whole number", hint)
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

// deref follows aliases, with a bound for an anchor that refers to itself.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	d := deref(n)
	return d == nil || d.Kind == yaml.ScalarNode && d.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias that refers to itself"
	}
	return "a single value"
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_<-]+$`)

// join appends key to a field path, quoting a key that would make the path
// unreadable.
func join(field, key string) string {
	if !plainKeyRE.MatchString(key) {
		key = strconv.Quote(key)
	}
	if field == "" {
		return key
	}
	return field + "." + key
}
