package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/detvm/detvm/trace"
)

// ReadTrace reads a run directory's trace.log.
func ReadTrace(runDir string) ([]trace.Line, error) {
	f, err := os.Open(filepath.Join(runDir, "trace.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []trace.Line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l, err := trace.ParseLine(sc.Text())
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// CompareRuns reports whether two run directories hold the same trace and,
// if not, the first divergence with the first differing event of the
// guest that diverged.
func CompareRuns(a, b string) (d trace.Divergence, detail string, same bool, err error) {
	ta, err := ReadTrace(a)
	if err != nil {
		return d, "", false, err
	}
	tb, err := ReadTrace(b)
	if err != nil {
		return d, "", false, err
	}
	// A run continued from a snapshot records only the epochs after it:
	// compare the part both runs executed.
	if from := max(fromEpoch(a), fromEpoch(b)); from > 0 {
		ta, tb = after(ta, from), after(tb, from)
	}
	d, same = trace.Compare(ta, tb)
	if same || d.Guest == "" {
		return d, "", same, nil
	}
	detail, err = EventDiff(filepath.Join(a, d.Guest, "events.jsonl"), filepath.Join(b, d.Guest, "events.jsonl"), d.Epoch)
	return d, detail, false, err
}

// EventDiff names the first event of epoch that differs between two
// events.jsonl files of one guest.
func EventDiff(pathA, pathB string, epoch uint64) (string, error) {
	ea, err := epochEvents(pathA, epoch)
	if err != nil {
		return "", err
	}
	eb, err := epochEvents(pathB, epoch)
	if err != nil {
		return "", err
	}
	for i := 0; i < len(ea) || i < len(eb); i++ {
		var x, y string
		if i < len(ea) {
			x = ea[i]
		}
		if i < len(eb) {
			y = eb[i]
		}
		if x != y {
			return fmt.Sprintf("event %d of the epoch: %s vs %s", i+1, orNone(x), orNone(y)), nil
		}
	}
	return "same events; the console, the frames sent or the guest's virtual time differ", nil
}

// fromEpoch is the snapshot epoch a run continued from (0: it booted).
func fromEpoch(runDir string) uint64 {
	var r struct {
		FromEpoch uint64 `json:"from_epoch"`
	}
	b, err := os.ReadFile(filepath.Join(runDir, "result.json"))
	if err == nil {
		_ = json.Unmarshal(b, &r)
	}
	return r.FromEpoch
}

func after(lines []trace.Line, epoch uint64) []trace.Line {
	for i, l := range lines {
		if l.Epoch > epoch {
			return lines[i:]
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// epochEvents returns the raw events.jsonl lines of one epoch.
func epochEvents(path string, epoch uint64) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Epoch uint64 `json:"epoch"`
		}
		if json.Unmarshal(line, &e) == nil && e.Epoch == epoch {
			out = append(out, string(line))
		}
	}
	return out, nil
}
