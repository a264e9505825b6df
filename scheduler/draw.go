package scheduler

import (
	"math"
	"math/bits"
)

// purpose names what a random draw decides, so that the draws for one frame
// and one rule are independent of each other.
type purpose uint64

const (
	purposeLoss purpose = iota + 1
	purposeDuplicate
	purposeJitter
	purposeReorder
	purposeCorrupt
	purposeCorruptBit
)

// draw is the switch's only source of randomness. It is a pure function of
// the seed and of what the draw is for: the packet (src, seq), the index of
// the rule in the table, the purpose and the copy (0 for the original, 1 for
// a duplicate). There is no generator state, so a restored switch needs none,
// and a draw does not depend on how many other draws came before it: adding a
// fault to one link leaves every other link's outcomes as they were.
//
// Each input is folded in with the SplitMix64 finaliser (Steele, Lea and
// Flood, "Fast splittable pseudorandom number generators", 2014); the seed is
// finalised first, so that no two (seed, src) pairs fold to the same state by
// a simple XOR coincidence.
func draw(seed uint64, src int, seq uint64, rule int, p purpose, cp uint8) uint64 {
	h := mix64(seed ^ 0x6a09e667f3bcc908) // sqrt(2) fraction: any odd constant
	h = mix64(h ^ uint64(src))
	h = mix64(h ^ seq)
	h = mix64(h ^ uint64(rule))
	h = mix64(h ^ uint64(p))
	return mix64(h ^ uint64(cp))
}

// mix64 is SplitMix64's output function, a bijection on uint64 whose output
// bits each depend on every input bit.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// hit reports whether a draw x falls within a probability of ppm parts per
// million. It maps x onto [0, PPM) by its high bits, so 0 never hits and
// [PPM] always does.
func hit(x uint64, ppm uint32) bool {
	return below(x, PPM) < uint64(ppm)
}

// uniform maps a draw x onto [0, n] inclusive.
func uniform(x, n uint64) uint64 {
	if n == math.MaxUint64 {
		return x
	}
	return below(x, n+1)
}

// below maps a draw x onto [0, n) by multiplication (Lemire's method without
// the rejection step: the bias is at most n/2^64, far below anything a test
// run can observe, and rejection would need more draws).
func below(x, n uint64) uint64 {
	hi, _ := bits.Mul64(x, n)
	return hi
}
