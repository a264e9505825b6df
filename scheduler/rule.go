package scheduler

import (
	"fmt"
	"strings"
)

// Rule is one entry of the fault table. The table is empty by default; the
// fault engine fills it with SetRules. Rules are checked in order at Send
// time and the first match wins, so a specific rule placed before a general
// one carves out an exception.
type Rule struct {
	Src, Dst int // node indices; -1 matches any node
	// FromEpoch and UntilEpoch bound the sending epoch: the rule applies when
	// FromEpoch <= sent epoch < UntilEpoch. UntilEpoch 0 means forever.
	FromEpoch, UntilEpoch uint64
	Drop                  bool   // drop the frame
	DelayEpochs           uint64 // extra epochs before delivery
}

// Matches reports whether r applies to a frame from src to dst sent during
// epoch sentEpoch.
func (r Rule) Matches(src, dst int, sentEpoch uint64) bool {
	return (r.Src == -1 || r.Src == src) &&
		(r.Dst == -1 || r.Dst == dst) &&
		r.FromEpoch <= sentEpoch &&
		(r.UntilEpoch == 0 || sentEpoch < r.UntilEpoch)
}

// String renders r in the form the datadriven tests parse, omitting fields
// at their "match anything / do nothing" values.
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "src=%d dst=%d", r.Src, r.Dst)
	if r.FromEpoch != 0 {
		fmt.Fprintf(&b, " from=%d", r.FromEpoch)
	}
	if r.UntilEpoch != 0 {
		fmt.Fprintf(&b, " until=%d", r.UntilEpoch)
	}
	if r.Drop {
		b.WriteString(" drop")
	}
	if r.DelayEpochs != 0 {
		fmt.Fprintf(&b, " delay=%d", r.DelayEpochs)
	}
	return b.String()
}
