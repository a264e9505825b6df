package faults

import (
	"fmt"
	"sort"
	"strings"

	"github.com/detvm/detvm/internal/textdist"
)

// Error is a problem in a fault spec, found by ParseSpec, Load or Compile.
// Its message has the form of the scenario package's errors, on one line:
//
//	<file>:<line>: <field>: <problem>; <hint>
//
// for example
//
//	run.yaml:7: faults[1].percent: 120 is over 100; use a number above 0 and at most 100, like percent: 20
//
// Parts that do not apply are left out together with their separator.
type Error struct {
	File    string // file name as given to ParseSpec or Load
	Line    int    // 1-based; 0 when the problem is not at a line
	Field   string // path of the field, like faults[0].nodes[1]
	Problem string // what is wrong
	Hint    string // what to do about it
}

// Error returns the one-line message described on the type.
func (e *Error) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "<faults>"
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
	return oneLine.Replace(b.String())
}

var oneLine = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`)

// errs collects problems; the walk goes on so that the earliest problem in
// the file is reported whatever order the fields are checked in.
type errs struct {
	file string
	list []*Error
}

func (e *errs) fail(line int, field, problem, hint string) {
	e.list = append(e.list, &Error{File: e.file, Line: line, Field: field, Problem: problem, Hint: hint})
}

// first returns the problem with the smallest line, or nil. The sort is
// stable, so problems on one line keep the order of the walk.
func (e *errs) first() error {
	if len(e.list) == 0 {
		return nil
	}
	sort.SliceStable(e.list, func(i, j int) bool { return e.list[i].Line < e.list[j].Line })
	return e.list[0]
}

// suggest returns the word of allowed that key most likely misspells, or "".
func suggest(key string, allowed []string) string {
	lk := strings.ToLower(key)
	limit := 1
	if len(lk) >= 6 {
		limit = 2
	}
	// A guess among equals would send the user the wrong way half the
	// time: "n9" is as near to n1 as to n2.
	best, bestD, ties := "", limit+1, 0
	for _, k := range allowed {
		switch d := textdist.Distance(lk, k); {
		case d < bestD:
			best, bestD, ties = k, d, 1
		case d == bestD:
			ties++
		}
	}
	if ties == 1 {
		return best
	}
	if best != "" {
		return ""
	}
	for _, k := range allowed {
		if len(k) >= 3 && (strings.HasPrefix(lk, k) || strings.HasPrefix(k, lk) && len(lk) >= 3) {
			return k
		}
	}
	return ""
}

// didYouMean appends a suggestion for text among allowed to hint.
func didYouMean(hint, text string, allowed []string) string {
	if g := suggest(text, allowed); g != "" {
		return fmt.Sprintf("did you mean %q? (%s)", g, hint)
	}
	return hint
}
