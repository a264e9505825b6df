package faults

import (
	"fmt"
	"strings"

	"github.com/detvm/detvm/internal/fielderr"
	"github.com/detvm/detvm/internal/textdist"
)

// Error is a problem in a fault spec, found by ParseSpec, Load or Compile:
// one line of the form of the scenario's errors,
//
//	run.yaml:7: faults[1].percent: 120 is over 100; use a number above 0 and at most 100, like percent: 20
type Error = fielderr.Error

// errs collects a walk's problems (fielderr.List); a spec without a file
// name is called <faults> in them.
type errs struct{ fielderr.List }

func newErrs(file string) errs { return errs{fielderr.List{File: file, Unnamed: "<faults>"}} }

func (e *errs) fail(line int, field, problem, hint string) { e.Fail(line, field, problem, hint) }

func (e *errs) first() error { return e.First() }

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
