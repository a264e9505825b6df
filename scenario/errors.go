package scenario

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/detvm/detvm/internal/fielderr"
	"github.com/detvm/detvm/internal/textdist"
)

// Error is a problem found in a scenario file: one line,
//
//	x.yaml:3: duration: "2 sec" is not a duration; use Go duration syntax like 2s or 1500ms
//
// (fielderr.Error, which fault specs share).
type Error = fielderr.Error

// fail records a problem; the walk goes on so that the earliest problem in
// the file can be reported no matter in which order fields are checked.
func (p *parser) fail(line int, field, problem, hint string) { p.errs.Fail(line, field, problem, hint) }

// first returns the problem with the smallest line.
func (p *parser) first() error { return p.errs.First() }

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
