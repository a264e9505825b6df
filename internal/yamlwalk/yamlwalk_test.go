package yamlwalk

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/internal/fielderr"
)

// TestWalk walks small documents and checks what is read and every problem
// recorded, in the order found.
func TestWalk(t *testing.T) {
	// read reads the keys a and b of root, b required. Other keys are
	// reported, except x- ones; "bb" is taken to misspell b.
	read := func(w *Walker, root *yaml.Node) string {
		d := w.Mapping(root, "top", "write a mapping")
		if d == nil {
			return ""
		}
		f := w.Fields(d, "top", []string{"a", "b"}, func(key string) Unknown {
			switch {
			case strings.HasPrefix(key, "x-"):
				return Unknown{}
			case key == "bb":
				return Unknown{Problem: "unknown field", Hint: `did you mean "b"?`, Guess: "b"}
			}
			return Unknown{Problem: "unknown field", Hint: "remove it"}
		})
		var got []string
		if v := f.Opt("a"); v != nil {
			if a, ok := w.Scalar(v, "top.a", "a value", "write a: value"); ok {
				got = append(got, "a="+a)
			}
		}
		if v := f.Req("b", "add b"); v != nil {
			if b, ok := w.Bool(v, "top.b", "b"); ok {
				got = append(got, fmt.Sprintf("b=%v", b))
			}
		}
		return strings.Join(got, " ")
	}
	for _, tc := range []struct {
		name, doc string
		want      string   // what read returns
		errs      []string // line: field: problem; hint
	}{
		{"plain", "a: 1\nb: true", "a=1 b=true", nil},
		{"scalar as written", "a: 0644\nb: FALSE", "a=0644 b=false", nil},
		{"null optional", "a:\nb: false", "b=false", nil},
		{"not a mapping", "[a, b]", "", []string{"1: top: is a list, not a mapping; write a mapping"}},
		{"missing", "a: x", "a=x", []string{"1: top.b: required field is missing; add b"}},
		{"no value", "a: x\nb:", "a=x", []string{"2: top.b: has no value; add b"}},
		{"guess silences missing", "a: x\nbb: true", "a=x", []string{`2: top.bb: unknown field; did you mean "b"?`}},
		{"unknown", "c: 1\nb: true\nx-any: 2", "b=true", []string{"1: top.c: unknown field; remove it"}},
		{"quoted key", "\"a b\": 1\nb: true", "b=true", []string{`1: top."a b": unknown field; remove it`}},
		{"wrong kinds", "a: [1]\nb: yes", "", []string{
			"1: top.a: is a list, not a value; write a: value",
			`2: top.b: "yes" is not true or false; write b: true or b: false`}},
		{"set twice", "a: 1\nb: true\na: 2", "a=1 b=true", []string{"3: top.a: is set twice (first on line 1); remove one of the two"}},
		{"key not a scalar", "[k]: 1\nb: true", "b=true", []string{"1: top: has a key that is a list; keys like a"}},
		{"merge", "base: &base {a: 1, b: true}\ntop:\n  <<: *base\n  a: 2", "a=2 b=true", nil},
		{"earlier merge wins", "one: &one {a: 1}\ntwo: &two {a: 2, b: false}\ntop:\n  <<: [*one, *two]", "a=1 b=false", nil},
		{"merge of a value", "top:\n  <<: 1\n  b: true", "b=true", []string{"2: top.<<: is a single value, not a mapping; merge <<: *base"}},
		{"merge into itself", "top: &t\n  b: true\n  <<: *t", "b=true", []string{
			"1: top.<<: merges a mapping into itself; remove the <<: that refers back to this mapping"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := DecodeAll([]byte(tc.doc))
			if err != nil || len(docs) != 1 {
				t.Fatalf("DecodeAll: %d documents, %v", len(docs), err)
			}
			// A document with anchors to merge has the mapping to read
			// under top.
			root := docs[0].Content[0]
			for i := 0; root.Kind == yaml.MappingNode && i+1 < len(root.Content); i += 2 {
				if root.Content[i].Value == "top" {
					root = root.Content[i+1]
					break
				}
			}
			var l fielderr.List
			w := &Walker{Errs: &l, KeyHint: "keys like a", MergeHint: "merge <<: *base"}
			if got := read(w, root); got != tc.want {
				t.Errorf("read %q, want %q", got, tc.want)
			}
			var errs []string
			for _, e := range l.Errs {
				errs = append(errs, strings.TrimPrefix(e.Error(), "<input>:"))
			}
			if !slices.Equal(errs, tc.errs) {
				t.Errorf("problems\n%s\nwant\n%s", strings.Join(errs, "\n"), strings.Join(tc.errs, "\n"))
			}
		})
	}
}

// TestQuiet: a walker without Errs reads the same and records nothing.
func TestQuiet(t *testing.T) {
	docs, err := DecodeAll([]byte("a: 1\na: 2\n[k]: 3\nb: {<<: 4}"))
	if err != nil {
		t.Fatal(err)
	}
	var w Walker
	var names []string
	for _, e := range w.Entries(docs[0].Content[0], "") {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, " "); got != "a b" {
		t.Errorf("entries %q, want %q", got, "a b")
	}
}

func TestJoin(t *testing.T) {
	for _, tc := range []struct{ field, key, want string }{
		{"", "a", "a"},
		{"nodes[0]", "binary", "nodes[0].binary"},
		{"x", "<<", "x.<<"},
		{"x", "a.b", `x."a.b"`},
		{"x", "", `x.""`},
	} {
		if got := Join(tc.field, tc.key); got != tc.want {
			t.Errorf("Join(%q, %q) = %s, want %s", tc.field, tc.key, got, tc.want)
		}
	}
}

func TestSplitError(t *testing.T) {
	for _, tc := range []struct {
		doc, msg string
		line     int
		ok       bool
	}{
		{"a: 1\nb: c: d", "mapping values are not allowed in this context", 2, true},
		{"x: *nope", "unknown anchor 'nope' referenced", 0, false},
	} {
		_, err := DecodeAll([]byte(tc.doc))
		if err == nil {
			t.Fatalf("%q decodes", tc.doc)
		}
		if line, msg, ok := SplitError(err); line != tc.line || msg != tc.msg || ok != tc.ok {
			t.Errorf("SplitError(%q) = %d, %q, %v; want %d, %q, %v", err, line, msg, ok, tc.line, tc.msg, tc.ok)
		}
	}
}
