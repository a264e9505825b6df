// Package fielderr is the error of detvm's YAML inputs, scenarios and
// fault specs alike: one line that names the file, the line, the field,
// the problem and the fix, so that a user can act on it without reading
// code.
package fielderr

import (
	"fmt"
	"sort"
	"strings"
)

// Error is a problem in an input file. Its message is a single line,
//
//	<file>:<line>: <field>: <problem>; <hint>
//
// for example
//
//	x.yaml:3: duration: "2 sec" is not a duration; use Go duration syntax like 2s or 1500ms
//
// Parts that do not apply (a line for an unreadable file, a field for an
// empty file) are left out together with their separator.
type Error struct {
	File    string // file name as the user gave it; "" reads as <input>
	Line    int    // 1-based; 0 when the problem is not at a line
	Field   string // path of the field, like nodes[0].binary; "" for the whole file
	Problem string // what is wrong
	Hint    string // what to do about it
}

// Error returns the one-line message described on the type.
func (e *Error) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "<input>"
	}
	b.WriteString(file)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	// Values quoted from the file may hold line breaks; the message must
	// stay one line.
	return oneLine.Replace(b.String())
}

var oneLine = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`)

// List collects the problems of one walk over a file. The walk goes on
// after a problem so that the earliest one in the file can be reported,
// whatever order the fields are checked in.
type List struct {
	// File names the file in every Error; Unnamed stands in for it when
	// it is "" (input that came without a name, like "<scenario>").
	File, Unnamed string
	Errs          []*Error
}

// Fail records a problem.
func (l *List) Fail(line int, field, problem, hint string) {
	file := l.File
	if file == "" {
		file = l.Unnamed
	}
	l.Errs = append(l.Errs, &Error{File: file, Line: line, Field: field, Problem: problem, Hint: hint})
}

// First returns the problem with the smallest line, or nil. The sort is
// stable, so problems on one line keep the deterministic order of the walk.
func (l *List) First() error {
	if len(l.Errs) == 0 {
		return nil
	}
	sort.SliceStable(l.Errs, func(i, j int) bool { return l.Errs[i].Line < l.Errs[j].Line })
	return l.Errs[0]
}
