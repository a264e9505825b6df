package faults

import (
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/detvm/detvm/scheduler"
)

// NetRules compiles the network faults among active into switch rules for n
// nodes (0..n-1) and epochs of length epoch, which must be positive. Other
// faults are ignored. The switch applies every matching rule, so the rules of
// overlapping faults add up.
//
// Every rule names one (Src, Dst) pair: groups, one-way faults and an empty
// To are expanded here, and the rules of one fault are in (Src, Dst) order,
// after those of the faults before it in active. FromEpoch and UntilEpoch are
// 0: the driver installs a new rule set whenever the active set changes.
// Delays and jitter are rounded up to whole epochs (1.5 epochs become 2), a
// percentage becomes parts per million, and a clog's bytes per second become
// bytes per epoch, at least 1. Indices outside 0..n-1 are skipped.
func NetRules(active []Fault, n int, epoch time.Duration) []scheduler.Rule {
	if epoch <= 0 {
		panic("faults: NetRules: epoch must be positive")
	}
	var out []scheduler.Rule
	for _, f := range active {
		if f.Kind == Partition {
			out = append(out, partitionRules(f, n)...)
			continue
		}
		if !f.Kind.link() {
			continue
		}
		proto := scheduler.Rule{}
		switch f.Kind {
		case Loss:
			proto.LossPPM = ppm(f.Percent)
		case Delay:
			proto.DelayEpochs = ceilEpochs(f.Delay, epoch)
			proto.JitterEpochs = ceilEpochs(f.Jitter, epoch)
		case Duplicate:
			proto.DuplicatePPM = ppm(f.Percent)
		case Reorder:
			proto.ReorderPPM = ppm(f.Percent)
			proto.ReorderEpochs = max(1, ceilEpochs(f.Delay, epoch))
		case Corrupt:
			proto.CorruptPPM = ppm(f.Percent)
		case Clog:
			proto.RateBytesPerEpoch = bytesPerEpoch(f.Rate, epoch)
		}
		for _, p := range linkPairs(f, n) {
			r := proto
			r.Src, r.Dst = p[0], p[1]
			out = append(out, r)
		}
	}
	return out
}

// linkPairs returns the (src, dst) pairs a link fault acts on, sorted and
// without repeats.
func linkPairs(f Fault, n int) [][2]int {
	in := func(i int) bool { return i >= 0 && i < n }
	to := f.To
	everyone := len(to) == 0
	var pairs [][2]int
	for _, a := range f.Nodes {
		if !in(a) {
			continue
		}
		add := func(b int) {
			if !in(b) || b == a {
				return
			}
			pairs = append(pairs, [2]int{a, b})
			if !f.OneWay {
				pairs = append(pairs, [2]int{b, a})
			}
		}
		if everyone {
			for b := range n {
				add(b)
			}
		} else {
			for _, b := range to {
				add(b)
			}
		}
	}
	slices.SortFunc(pairs, func(x, y [2]int) int {
		if x[0] != y[0] {
			return x[0] - y[0]
		}
		return x[1] - y[1]
	})
	return slices.Compact(pairs)
}

// partitionRules drops frames between nodes that share no group; see
// Partition.
func partitionRules(f Fault, n int) []scheduler.Rule {
	member := make([][]bool, n) // member[node][group]
	for g, group := range f.Groups {
		for _, i := range group {
			if i < 0 || i >= n {
				continue
			}
			if member[i] == nil {
				member[i] = make([]bool, len(f.Groups))
			}
			member[i][g] = true
		}
	}
	share := func(a, b int) bool {
		for g := range member[a] {
			if member[a][g] && member[b][g] {
				return true
			}
		}
		return false
	}
	var out []scheduler.Rule
	for a := range n {
		if member[a] == nil || f.OneWay && !member[a][0] {
			continue
		}
		for b := range n {
			if b == a || member[b] == nil || share(a, b) {
				continue
			}
			out = append(out, scheduler.Rule{Src: a, Dst: b, Drop: true})
		}
	}
	return out
}

// ppm converts a percentage to parts per million, between 1 and 1e6 for a
// percentage above 0.
func ppm(percent float64) uint32 {
	if percent <= 0 {
		return 0
	}
	return uint32(min(1e6, max(1, math.Round(percent*1e4))))
}

// ceilEpochs is d in whole epochs, rounded up; 0 for d <= 0.
func ceilEpochs(d, epoch time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	q := uint64(d / epoch)
	if d%epoch != 0 {
		q++
	}
	return q
}

// bytesPerEpoch is rate (bytes per second) over one epoch, rounded down but
// at least 1.
func bytesPerEpoch(rate int64, epoch time.Duration) uint64 {
	if rate <= 0 {
		return 1
	}
	hi, lo := bits.Mul64(uint64(rate), uint64(epoch))
	if hi != 0 {
		return math.MaxUint64 // beyond any frame
	}
	return max(1, lo/uint64(time.Second))
}
