// Package yamlwalk is the shared part of detvm's hand-written YAML
// readers, scenario files and fault specs. They walk the yaml.Node tree
// instead of letting yaml.v3 decode into structs, because only the tree
// knows the line of every key and value, and every problem they report
// names its line and field (see fielderr).
//
// What is here is what does not depend on the format: following aliases,
// naming a node's kind, expanding merge keys (<<: *base), checking a
// mapping's keys against the allowed ones, and taking a scalar, list or
// mapping apart. What a key means, how a misspelt one is guessed and how a
// duration or a size is read stay with each format. The messages here are
// part of both formats' user interface: the tests of scenario and faults
// pin them, so change them only together with those.
package yamlwalk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/internal/fielderr"
)

// DecodeAll returns the documents in data. A panic in yaml.v3 becomes an
// error, as a stack trace is no answer for a user with a broken file.
func DecodeAll(data []byte) (docs []*yaml.Node, err error) {
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

var lineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// SplitError takes a syntax error of yaml.v3 ("yaml: line 3: did not find
// expected key") apart into the line it names and its message, so that it
// can be reported in the form of the others. ok is false if the error names
// no line; msg is then the error without its "yaml: " prefix.
func SplitError(err error) (line int, msg string, ok bool) {
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, strings.TrimPrefix(err.Error(), "yaml: "), false
	}
	line, _ = strconv.Atoi(m[1])
	return line, m[2], true
}

// Deref follows aliases. yaml.v3 lets an anchor refer to itself, hence the
// bound.
func Deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent or null ("key:" with no value, or
// ~), which both formats read as "not given".
func IsNull(n *yaml.Node) bool {
	d := Deref(n)
	return d == nil || d.Kind == yaml.ScalarNode && d.ShortTag() == "!!null"
}

// KindName names the kind of a dereferenced node for a message, like "is a
// list, not a mapping".
func KindName(n *yaml.Node) string {
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

// Join appends key to a field path, quoting a key that would make the path
// ambiguous or unreadable.
func Join(field, key string) string {
	if !plainKeyRE.MatchString(key) {
		key = strconv.Quote(key)
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

// Walker records the problems of one walk over a file in Errs. The walk
// goes on after a problem, so that the one on the earliest line can be
// reported whatever order the fields are read in. A Walker with no Errs
// records nothing: it is for a look ahead whose problems a later walk
// reports.
//
// The hints are the format's own, as their examples are its keys.
type Walker struct {
	Errs *fielderr.List
	// KeyHint is the hint for a key that is a list or a mapping, like
	// "keys must be plain names like kind or at".
	KeyHint string
	// MergeHint is the hint for a merge key whose value is not a mapping,
	// like `merge a mapping defined with an anchor, like "<<: *base"`.
	MergeHint string
}

func (w *Walker) fail(line int, field, problem, hint string) {
	if w.Errs != nil {
		w.Errs.Fail(line, field, problem, hint)
	}
}

// Entry is a key of a mapping and its value.
type Entry struct {
	Key, Val *yaml.Node
	Name     string // the key's text
	merged   bool   // from a merge key, so a written key overrides it
}

// Entries returns the pairs of the mapping n in the order written, with
// YAML merge keys (<<: *defaults) expanded so that mappings can share
// settings. Written keys override merged ones, and an earlier merged
// mapping overrides a later one, as the merge key spec says. A key written
// twice, a key that is not a scalar and a merge that is not of mappings are
// reported and left out; field is the path of n.
func (w *Walker) Entries(n *yaml.Node, field string) []Entry {
	return w.entries(n, field, map[*yaml.Node]bool{})
}

// entries is Entries; visiting holds the mappings being expanded, to catch
// one that merges itself.
func (w *Walker) entries(n *yaml.Node, field string, visiting map[*yaml.Node]bool) []Entry {
	if visiting[n] {
		w.fail(n.Line, field, "merges a mapping into itself", "remove the <<: that refers back to this mapping")
		return nil
	}
	visiting[n] = true
	defer delete(visiting, n)
	var all []Entry
	written := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kd := Deref(k)
		if kd.Kind != yaml.ScalarNode {
			w.fail(k.Line, field, "has a key that is "+KindName(kd), w.KeyHint)
			continue
		}
		if kd.ShortTag() == "!!merge" {
			all = append(all, w.merge(v, Join(field, "<<"), visiting)...)
			continue
		}
		if first := written[kd.Value]; first != nil {
			w.fail(k.Line, Join(field, kd.Value), fmt.Sprintf("is set twice (first on line %d)", first.Line), "remove one of the two")
			continue
		}
		written[kd.Value] = k
		all = append(all, Entry{Key: k, Val: v, Name: kd.Value})
	}
	var out []Entry
	kept := map[string]bool{}
	for _, e := range all {
		if e.merged && (written[e.Name] != nil || kept[e.Name]) {
			continue
		}
		kept[e.Name] = true
		out = append(out, e)
	}
	return out
}

// merge returns the entries of the mapping, or list of mappings, v that a
// merge key brings in.
func (w *Walker) merge(v *yaml.Node, field string, visiting map[*yaml.Node]bool) []Entry {
	d := Deref(v)
	var sources []*yaml.Node
	switch d.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{d}
	case yaml.SequenceNode:
		for _, item := range d.Content {
			if it := Deref(item); it.Kind == yaml.MappingNode {
				sources = append(sources, it)
			} else {
				w.fail(item.Line, field, "is "+KindName(it)+", not a mapping", w.MergeHint)
			}
		}
	default:
		w.fail(v.Line, field, "is "+KindName(d)+", not a mapping", w.MergeHint)
	}
	var out []Entry
	for _, src := range sources {
		for _, e := range w.entries(src, field, visiting) {
			e.merged = true
			out = append(out, e)
		}
	}
	return out
}

// Unknown is what Fields reports for a key it does not allow. The caller
// decides it, as the formats explain such keys differently (a likely
// misspelling, a key that belongs elsewhere).
type Unknown struct {
	// Problem and Hint are the report. With no Problem the key is let
	// through unreported, like an x- extension key of a Compose file.
	Problem, Hint string
	// Guess is an allowed key the unknown one is taken to misspell. Req
	// does not report Guess missing: the misspelling is the real problem,
	// and its report comes with the fix.
	Guess string
}

// Fields is a mapping whose keys were checked against the allowed ones.
type Fields struct {
	Keys map[string]*yaml.Node // the key nodes, by name, for lines to report at
	Vals map[string]*yaml.Node // the values, by key; null ones included

	w       *Walker
	line    int // of the mapping, where a missing key is reported
	field   string
	guessed map[string]bool
}

// Fields reads the mapping n, whose path is field, and checks its keys
// against allowed; unknown says how to report any other key.
func (w *Walker) Fields(n *yaml.Node, field string, allowed []string, unknown func(key string) Unknown) *Fields {
	f := &Fields{Keys: map[string]*yaml.Node{}, Vals: map[string]*yaml.Node{}, w: w, line: n.Line, field: field, guessed: map[string]bool{}}
	for _, e := range w.Entries(n, field) {
		if slices.Contains(allowed, e.Name) {
			f.Keys[e.Name], f.Vals[e.Name] = e.Key, e.Val
			continue
		}
		u := unknown(e.Name)
		if u.Guess != "" {
			f.guessed[u.Guess] = true
		}
		if u.Problem != "" {
			w.fail(e.Key.Line, Join(field, e.Name), u.Problem, u.Hint)
		}
	}
	return f
}

// Opt returns the value of an optional key; nil if it is absent or null, so
// that "memory:" with no value means the default.
func (f *Fields) Opt(key string) *yaml.Node {
	v := f.Vals[key]
	if v == nil || IsNull(v) {
		return nil
	}
	return v
}

// Req returns the value of a required key, or nil after recording that it
// is missing or null; hint says what to write.
func (f *Fields) Req(key, hint string) *yaml.Node {
	v, ok := f.Vals[key]
	switch {
	case !ok:
		if !f.guessed[key] {
			f.w.fail(f.line, Join(f.field, key), "required field is missing", hint)
		}
		return nil
	case IsNull(v):
		f.w.fail(v.Line, Join(f.field, key), "has no value", hint)
		return nil
	}
	return v
}

// Guessed reports whether an unknown key of the mapping was taken to
// misspell key, so that a check of key's absence can stay quiet too.
func (f *Fields) Guessed(key string) bool { return f.guessed[key] }

// Mapping returns the dereferenced mapping v, or nil after recording that
// it is something else.
func (w *Walker) Mapping(v *yaml.Node, field, hint string) *yaml.Node {
	d := Deref(v)
	if d.Kind != yaml.MappingNode {
		w.fail(v.Line, field, "is "+KindName(d)+", not a mapping", hint)
		return nil
	}
	return d
}

// Scalar returns the text of a scalar as written, so that "args: [8080]"
// or "mode: 0644" mean the characters the user typed, not YAML's reading of
// them as numbers. want names what was expected, like "a duration".
func (w *Walker) Scalar(v *yaml.Node, field, want, hint string) (string, bool) {
	d := Deref(v)
	if d.Kind != yaml.ScalarNode {
		w.fail(v.Line, field, "is "+KindName(d)+", not "+want, hint)
		return "", false
	}
	return d.Value, true
}

// Sequence returns the items of the list (YAML sequence) v, or false after
// recording that it is something else. It is not called List, which would
// clash with a fielderr.List embedded next to a Walker.
func (w *Walker) Sequence(v *yaml.Node, field, hint string) ([]*yaml.Node, bool) {
	d := Deref(v)
	if d.Kind != yaml.SequenceNode {
		w.fail(v.Line, field, "is "+KindName(d)+", not a list", hint)
		return nil, false
	}
	return d.Content, true
}

// Bool reads true or false, in any case; key is the name the hint shows
// the fix with.
func (w *Walker) Bool(v *yaml.Node, field, key string) (bool, bool) {
	hint := fmt.Sprintf("write %s: true or %s: false", key, key)
	text, ok := w.Scalar(v, field, "true or false", hint)
	if !ok {
		return false, false
	}
	switch strings.ToLower(text) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	w.fail(v.Line, field, fmt.Sprintf("%q is not true or false", text), hint)
	return false, false
}
