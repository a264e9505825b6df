package faults

import (
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/detvm/detvm/internal/yamlwalk"
)

// slotsPerWindow is how many slots a policy window is cut into; a kind
// starts at most one fault per slot.
const slotsPerWindow = 64

// policy draws the faults of a policy window by window; see the package
// documentation for the order of the draws.
func (c *compiler) policy(pol *policy) Schedule {
	we := uint64(pol.window / c.epoch)
	if we == 0 {
		c.fail(max(pol.windowLine, pol.line), yamlwalk.Join(pol.field, "window"), fmt.Sprintf("%v is shorter than an epoch (%v)", pol.window, c.epoch),
			fmt.Sprintf("use %v or more", c.epoch))
	}
	for i, ps := range pol.params {
		if ps == nil || pol.rates[i] == 0 {
			continue
		}
		if ps.has("mode") {
			if problem := c.modeProblem(ps.mode); problem != "" {
				c.fail(ps.set["mode"], yamlwalk.Join(ps.field, "mode"), problem, "add nodes to the scenario or use another mode")
			}
		}
		if ps.has("period") && ps.period < c.epoch {
			c.fail(ps.set["period"], yamlwalk.Join(ps.field, "period"), fmt.Sprintf("%v is shorter than an epoch (%v)", ps.period, c.epoch),
				fmt.Sprintf("use %v or more", c.epoch))
		}
	}
	if len(c.Errs) > 0 { // problems found above
		return nil
	}
	quiet := ceilEpochs(pol.quiet, c.epoch)
	minLen := max(1, ceilEpochs(pol.min, c.epoch))
	maxLen := max(minLen, uint64(pol.max/c.epoch))
	heal := c.endAll
	if pol.finalHeal >= c.duration {
		heal = 0
	} else if pol.finalHeal > 0 {
		heal = min(heal, uint64((c.duration-pol.finalHeal)/c.epoch))
	}
	var out Schedule
	for w := uint64(0); w*we < c.endAll; w++ {
		from := w * we
		n := min(we, c.endAll-from)
		g := newGen(c.seedAt(from), streamKey(windowLabel, w))
		var drawn []Fault
		for i, k := range kinds {
			// Two draws per kind whatever the rates, so that a kind's
			// faults do not depend on the rates of the others.
			s1, s2 := g.r.Uint64(), g.r.Uint64()
			if pol.rates[i] == 0 {
				continue
			}
			kg := newGen(s1, s2)
			slots := min(slotsPerWindow, n)
			for s := range slots {
				a, b := from+s*n/slots, from+(s+1)*n/slots
				if !kg.hit(pol.rates[i], (b-a)*uint64(c.epoch)) {
					continue
				}
				f := Fault{Kind: k, Start: a + kg.below(b-a)}
				f.End = f.Start + minLen + kg.below(maxLen-minLen+1)
				if c.draw(kg, &f, pol.params[i]) && f.Start >= FirstEpoch {
					drawn = append(drawn, f)
				}
			}
		}
		slices.SortStableFunc(drawn, func(a, b Fault) int {
			switch {
			case a.Start < b.Start:
				return -1
			case a.Start > b.Start:
				return 1
			}
			return 0
		})
		for _, f := range drawn {
			if c.admit(&f, out, pol.maxConcurrent, quiet, heal) {
				out = append(out, f)
			}
		}
	}
	return out
}

// hit is true with probability rate*ns/1e18: rate is in billionths of a
// fault per second, ns the slot's length.
func (g *gen) hit(rate, ns uint64) bool {
	hi, lo := bits.Mul64(rate, ns)
	u := g.below(1e18)
	return hi > 0 || u < lo
}

// admit decides whether f, drawn after every fault of acc and starting no
// earlier, joins the schedule, clipping its end to heal, the first epoch of
// the final heal. It enforces max_concurrent, the quiet time after each end,
// and that process, node and clock faults do not overlap on a node.
func (c *compiler) admit(f *Fault, acc Schedule, maxConcurrent int, quiet, heal uint64) bool {
	if f.Start >= heal {
		return false
	}
	f.End = min(f.End, heal)
	active := 0
	for _, a := range acc {
		switch {
		case a.End > f.Start:
			active++
			if a.Kind.Class() != ClassNetwork && f.Kind.Class() != ClassNetwork && overlaps(a.Nodes, f.Nodes) {
				return false
			}
		case f.Start < a.End+quiet:
			return false
		}
	}
	return active < maxConcurrent
}

func overlaps(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// draw makes the random choices of a policy fault of kind f.Kind: targets
// among the non-sidecar nodes, then settings in the ranges the package
// documentation lists, then the policy's fixed settings ov over them (the
// draws they replace are made all the same). It is false if the topology has
// too few nodes for the kind.
func (c *compiler) draw(g *gen, f *Fault, ov *params) bool {
	m := uint64(len(c.cands))
	ms := func(lo, hi int64) time.Duration { return time.Duration(g.between(lo, hi)) * time.Millisecond }
	switch k := f.Kind; {
	case k == Partition:
		if m < 2 {
			return false
		}
		avail := []string{ModeIsolate, ModeHalves, ModeMajority}
		if m >= 3 {
			avail = append(avail, ModeBridge)
		}
		if m >= 4 {
			avail = append(avail, ModeMajoritiesRing)
		}
		mode := avail[g.below(uint64(len(avail)))]
		if ov != nil && ov.has("mode") {
			mode = ov.mode
		}
		f.Groups = shape(g, mode, c.cands)
		f.OneWay = g.chance(1, 4) && (mode == ModeIsolate || mode == ModeHalves || mode == ModeMajority)
	case k.link():
		if m < 2 {
			return false
		}
		x := c.cands[g.below(m)]
		others := slices.DeleteFunc(slices.Clone(c.cands), func(i int) bool { return i == x })
		f.Nodes = []int{x}
		if g.chance(1, 2) {
			f.To = others
		} else {
			f.To = []int{others[g.below(m-1)]}
		}
		f.OneWay = g.chance(1, 4)
		switch k {
		case Loss, Duplicate:
			f.Percent = float64(g.between(10, 50))
		case Corrupt:
			f.Percent = float64(g.between(1, 10))
		case Reorder:
			f.Percent = float64(g.between(10, 50))
			f.Delay = ms(5, 50)
		case Delay:
			f.Delay = ms(5, 100)
			f.Jitter = time.Duration(g.below(uint64(f.Delay/time.Millisecond)+1)) * time.Millisecond
		case Clog:
			f.Rate = g.between(10, 100) * 1024
		}
	default:
		if m == 0 {
			return false
		}
		f.Nodes = []int{c.cands[g.below(m)]}
		switch k {
		case Throttle:
			f.Ratio = float64(g.between(10, 50)) / 100
		case ClockJump:
			f.Offset = time.Duration(g.sign()*g.between(1, 600)) * time.Second
		case ClockStrobe:
			f.Offset = ms(50, 5000)
			f.Period = max(c.epoch, ms(10, 200))
		case ClockSkew:
			f.PPM = g.sign() * g.between(50, MaxPPM)
		}
	}
	if ov != nil {
		apply(f, ov)
	}
	return true
}
