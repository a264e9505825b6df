package scheduler

import (
	"fmt"
	"strings"
)

// PPM is the denominator of the Rule probabilities: a probability of
// LossPPM/PPM, so 1_000_000 means always and 0 never.
const PPM = 1_000_000

// Rule is one entry of the fault table. The table is empty by default; the
// fault engine fills it with [Switch.SetRules].
//
// Every rule that matches a frame applies, and their effects compose: the
// frame is dropped if any rule drops it or any rule's loss draw hits; the
// delays, jitters and reorder holds of all rules add up; each rule's
// probabilities are drawn independently of the other rules'; and the
// smallest RateBytesPerEpoch among the matching rules limits the link.
// There are no exceptions: a rule cannot exempt a link from another rule,
// so to spare one link the fault engine writes per-(Src, Dst) rules instead
// of a general one. The order of the table matters only through the rule
// index that is part of every random draw (see [Switch.SetSeed]).
//
// The zero value of every effect field means "no effect", so a Rule with
// only Src and Dst set matches and does nothing.
type Rule struct {
	Src, Dst int // node indices; -1 matches any node
	// FromEpoch and UntilEpoch bound the sending epoch: the rule applies when
	// FromEpoch <= sent epoch < UntilEpoch. UntilEpoch 0 means forever.
	FromEpoch, UntilEpoch uint64
	Drop                  bool   // drop every matching frame
	DelayEpochs           uint64 // extra epochs before delivery
	// JitterEpochs adds a uniform draw from [0, JitterEpochs] epochs to each
	// copy of the frame on top of DelayEpochs.
	JitterEpochs uint64 `json:",omitempty"`
	// LossPPM is the probability, in parts per million, that the frame is
	// lost. Lost frames count as DroppedByRule, like dropped ones.
	LossPPM uint32 `json:",omitempty"`
	// DuplicatePPM is the probability that a second copy of the frame is
	// delivered too. A frame has at most two copies however many rules hit.
	DuplicatePPM uint32 `json:",omitempty"`
	// ReorderPPM is the probability that a copy is held ReorderEpochs extra
	// epochs, so that frames sent after it overtake it. ReorderEpochs must be
	// at least 1 when ReorderPPM is non-zero.
	ReorderPPM    uint32 `json:",omitempty"`
	ReorderEpochs uint64 `json:",omitempty"`
	// CorruptPPM is the probability that one bit of a copy is flipped (see
	// [Switch.Send] for which bit).
	CorruptPPM uint32 `json:",omitempty"`
	// RateBytesPerEpoch, when non-zero, makes the (Src, Dst) link carry at
	// most that many bytes of frames per epoch (see [Switch.Send]). With a
	// wildcard Src or Dst, each matching link gets that rate of its own.
	RateBytesPerEpoch uint64 `json:",omitempty"`
}

// Validate reports a rule that [Switch.SetRules] would refuse: a node index
// below -1, a probability above [PPM], or reordering that holds nothing back.
func (r Rule) Validate() error {
	if r.Src < -1 || r.Dst < -1 {
		return fmt.Errorf("rule %v: node indices must be -1 (any) or a node", r)
	}
	for _, p := range []struct {
		name string
		ppm  uint32
	}{{"loss", r.LossPPM}, {"duplicate", r.DuplicatePPM}, {"reorder", r.ReorderPPM}, {"corrupt", r.CorruptPPM}} {
		if p.ppm > PPM {
			return fmt.Errorf("rule %v: %s probability %d ppm is above %d", r, p.name, p.ppm, PPM)
		}
	}
	if r.ReorderPPM != 0 && r.ReorderEpochs == 0 {
		return fmt.Errorf("rule %v: reordering needs ReorderEpochs >= 1, or no frame is overtaken", r)
	}
	return nil
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
// at their "match anything / do nothing" values. Probabilities are in ppm.
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "src=%d dst=%d", r.Src, r.Dst)
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"from", r.FromEpoch},
		{"until", r.UntilEpoch},
		{"drop", 0},
		{"delay", r.DelayEpochs},
		{"jitter", r.JitterEpochs},
		{"loss", uint64(r.LossPPM)},
		{"duplicate", uint64(r.DuplicatePPM)},
		{"reorder", uint64(r.ReorderPPM)},
		{"reorder-epochs", r.ReorderEpochs},
		{"corrupt", uint64(r.CorruptPPM)},
		{"rate", r.RateBytesPerEpoch},
	} {
		switch {
		case f.name == "drop":
			if r.Drop {
				b.WriteString(" drop")
			}
		case f.v != 0:
			fmt.Fprintf(&b, " %s=%d", f.name, f.v)
		}
	}
	return b.String()
}
