package scenario

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/detvm/detvm/internal/textdist"
)

// Error is a problem found in a scenario file. Its message is a single line,
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
	File    string // file name as given to Load or Parse
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
		file = "<scenario>"
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

// fail records a problem; the walk goes on so that the earliest problem in
// the file can be reported no matter in which order fields are checked.
func (p *parser) fail(line int, field, problem, hint string) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Field: field, Problem: problem, Hint: hint})
}

// first returns the problem with the smallest line. The sort is stable so
// that problems on one line keep the deterministic order of the walk.
func (p *parser) first() error {
	if len(p.errs) == 0 {
		return nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
	return p.errs[0]
}

func readError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is already at the front of the message
	}
	hint := "check the path"
	if errors.Is(err, fs.ErrPermission) {
		hint = "check the file's permissions"
	}
	return &Error{File: path, Problem: "cannot read the scenario file: " + err.Error(), Hint: hint}
}

// aliases maps names a user is likely to try, from other tools' vocabularies,
// to the keys this schema uses. Several targets are listed where the right
// one depends on the mapping; the first one allowed there wins.
var aliases = map[string][]string{
	"vars":        {"env"},
	"argv":        {"run", "args"},
	"arguments":   {"args"},
	"mem":         {"memory"},
	"ram":         {"memory"},
	"bin":         {"binary"},
	"program":     {"binary"},
	"exec":        {"run", "binary"},
	"executable":  {"binary"},
	"command":     {"run", "commands"},
	"cmd":         {"run", "commands"},
	"cmds":        {"commands"},
	"steps":       {"commands"},
	"background":  {"daemon"},
	"daemonize":   {"daemon"},
	"timeout":     {"duration"},
	"limit":       {"duration"},
	"delay":       {"after"},
	"wait":        {"after"},
	"sleep":       {"after"},
	"source":      {"src"},
	"from":        {"src"},
	"dest":        {"dst"},
	"destination": {"dst"},
	"target":      {"dst"},
	"to":          {"dst"},
	"perm":        {"mode"},
	"perms":       {"mode"},
	"permissions": {"mode"},
	"machines":    {"nodes"},
	"hosts":       {"nodes"},
	"vms":         {"nodes"},
	"replicas":    {"count"},
	"instances":   {"count"},
	"cidr":        {"subnet"},
	"net":         {"network"},
}

// suggest returns the allowed key the user most likely meant by key, or "".
func suggest(key string, allowed []string) string {
	lk := strings.ToLower(key)
	for _, a := range aliases[lk] {
		for _, k := range allowed {
			if a == k {
				return k
			}
		}
	}
	// A wrong key that is far from every allowed one is better reported
	// without a guess: a bad guess sends the user the wrong way.
	limit := 1
	if len(lk) >= 6 {
		limit = 2
	}
	best, bestD := "", limit+1
	for _, k := range allowed {
		if d := textdist.Distance(lk, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return best
	}
	// "environment" or "dst_path": the user started with the right key and
	// went on; a key of three letters or more is specific enough to trust.
	for _, k := range allowed {
		if len(k) >= 3 && strings.HasPrefix(lk, k) {
			return k
		}
	}
	return ""
}
