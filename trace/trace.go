// Package trace computes a run's trace hash: a chain of per-epoch hashes
// over everything each guest showed the controller in that epoch (console
// bytes, agent events, its virtual time at the barrier). Two runs are the
// same run when their chains are equal; the first epoch where they differ
// is where they diverged (DESIGN.md §8). Pure: no I/O, no clock.
package trace

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Chain is the running hash. The zero value is the empty chain.
type Chain struct {
	h      [32]byte
	epochs uint64
}

// Guest is one guest's contribution to an epoch.
type Guest struct {
	Name    string
	MonoNS  uint64 // guest CLOCK_MONOTONIC at the barrier
	Console []byte // serial output since the previous barrier
	Events  []byte // encoded wire events since the previous barrier
	Net     []byte // encoded frames the guest sent since the previous barrier
}

// Add folds one epoch into the chain and returns that epoch's hash. Guests
// must come in a fixed order (the scenario's node order).
func (c *Chain) Add(epoch uint64, guests []Guest) [32]byte {
	s := sha256.New()
	s.Write(c.h[:])
	var n [8]byte
	put := func(v uint64) { binary.LittleEndian.PutUint64(n[:], v); s.Write(n[:]) }
	put(epoch)
	put(uint64(len(guests)))
	for _, g := range guests {
		put(uint64(len(g.Name)))
		s.Write([]byte(g.Name))
		put(g.MonoNS)
		put(uint64(len(g.Console)))
		s.Write(g.Console)
		put(uint64(len(g.Events)))
		s.Write(g.Events)
		put(uint64(len(g.Net)))
		s.Write(g.Net)
	}
	copy(c.h[:], s.Sum(nil))
	c.epochs++
	return c.h
}

// Sum is the hash of the chain so far, in hex.
func (c *Chain) Sum() string { return hex.EncodeToString(c.h[:]) }

// Epochs is how many epochs the chain holds.
func (c *Chain) Epochs() uint64 { return c.epochs }

// Digest identifies one guest's contribution to one epoch, so that a
// divergence can be pinned to a guest, not just an epoch.
func (g Guest) Digest() string {
	var c Chain
	c.Add(0, []Guest{g})
	return c.Sum()[:16]
}

// Line is one line of a run's trace.log: an epoch in which something
// happened, the chain hash after it, and each guest's digest.
type Line struct {
	Epoch   uint64
	Chain   string
	Guests  []string // "name=digest", in guest order
	Comment string   // e.g. "end"
}

// Format renders l as written to trace.log.
func (l Line) Format() string {
	s := fmt.Sprintf("%d %s", l.Epoch, l.Chain)
	for _, g := range l.Guests {
		s += " " + g
	}
	if l.Comment != "" {
		s += " #" + l.Comment
	}
	return s
}

// ParseLine reads a line written by Format.
func ParseLine(s string) (Line, error) {
	var l Line
	if i := strings.Index(s, " #"); i >= 0 {
		s, l.Comment = s[:i], s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 2 {
		return l, fmt.Errorf("trace: bad line %q", s)
	}
	e, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return l, fmt.Errorf("trace: bad epoch in %q", s)
	}
	l.Epoch, l.Chain, l.Guests = e, f[1], f[2:]
	return l, nil
}

// Divergence is where two traces first differ.
type Divergence struct {
	Epoch uint64
	Guest string // "" when the difference is not in one guest (e.g. one trace is shorter)
	What  string
}

// Compare finds the first line where a and b differ; ok is true when they
// are identical.
func Compare(a, b []Line) (d Divergence, ok bool) {
	for i := 0; i < len(a) && i < len(b); i++ {
		la, lb := a[i], b[i]
		if la.Epoch != lb.Epoch {
			e := min(la.Epoch, lb.Epoch)
			return Divergence{Epoch: e, What: fmt.Sprintf("activity at epoch %d in one run only", e)}, false
		}
		if la.Chain == lb.Chain {
			continue
		}
		for j := 0; j < len(la.Guests) && j < len(lb.Guests); j++ {
			if la.Guests[j] != lb.Guests[j] {
				name, _, _ := strings.Cut(la.Guests[j], "=")
				return Divergence{Epoch: la.Epoch, Guest: name, What: "guest " + name + " differs"}, false
			}
		}
		return Divergence{Epoch: la.Epoch, What: "chain differs"}, false
	}
	if len(a) != len(b) {
		n := min(len(a), len(b))
		var e uint64
		if n > 0 {
			e = a[n-1].Epoch
		}
		return Divergence{Epoch: e, What: fmt.Sprintf("one trace ends after epoch %d", e)}, false
	}
	return Divergence{}, true
}

// ChainState is a Chain frozen for a snapshot.
type ChainState struct {
	Sum    string `json:"sum"`
	Epochs uint64 `json:"epochs"`
}

// State freezes c.
func (c *Chain) State() ChainState { return ChainState{Sum: c.Sum(), Epochs: c.epochs} }

// RestoreChain continues a chain from a frozen state, so that a run
// resumed from a snapshot ends with the same Sum as one that never stopped.
func RestoreChain(st ChainState) (Chain, error) {
	var c Chain
	b, err := hex.DecodeString(st.Sum)
	if err != nil || len(b) != len(c.h) {
		return c, fmt.Errorf("trace: chain state: sum %q is not a 64-digit hex hash", st.Sum)
	}
	copy(c.h[:], b)
	c.epochs = st.Epochs
	return c, nil
}
