// Package wire is the layout of the page a guest shares with the controller
// (an ivshmem BAR in the guest, a file mapping on the host) and the encoding
// of what crosses it.
//
// Ownership is by time, not by locks: the guest writes its half only while it
// runs, and the controller touches the page only while that guest is held in
// a barrier. So whatever the guest reads after a barrier is a function of the
// run, never of host timing (DESIGN.md, "Data through shared memory").
//
// Both sides treat the other as untrusted: every length read from the page is
// bounds-checked before use. This package is pure and imported by the guest
// agent, so it must not import host-only packages.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Size is the size of the shared region. ivshmem BARs must be a power of two.
const Size = 1 << 20

// Magic marks a page the agent has initialised ("DETVMSHM").
const Magic = 0x4d48535f4d565444

// Version changes whenever the layout does.
const Version = 1

// Offsets of the fixed header fields. Everything is little-endian.
const (
	offMagic   = 0x00 // u64, guest
	offVersion = 0x08 // u32, guest
	// Controller → guest, written only while the guest is held.
	offEpoch = 0x10 // u64: the epoch the guest runs after this barrier
	offSeed  = 0x18 // u64: the run seed, valid from the first barrier on
	// Guest → controller, written only while the guest runs.
	offMonoNS = 0x40 // u64: guest CLOCK_MONOTONIC at the barrier
	offState  = 0x48 // u32: State
	offOutLen = 0x4c // u32: bytes of events in the out buffer

	// OutOff and OutCap bound the guest → controller event buffer. The
	// second half of the page is reserved for the controller → guest ring.
	OutOff = 0x1000
	OutCap = Size/2 - OutOff
)

// State is what the agent reports at each barrier.
type State uint32

const (
	// StateRunning: processes the run waits for are still running.
	StateRunning State = 1
	// StateDone: every process the run waits for has exited.
	StateDone State = 2
)

// Page is a view of the shared region. It copies nothing; the caller owns
// the timing discipline described in the package comment.
type Page struct{ b []byte }

// NewPage wraps a mapping of at least Size bytes.
func NewPage(b []byte) (*Page, error) {
	if len(b) < Size {
		return nil, fmt.Errorf("wire: shared region is %d bytes, need %d", len(b), Size)
	}
	return &Page{b: b[:Size]}, nil
}

func (p *Page) u64(off int) uint64      { return binary.LittleEndian.Uint64(p.b[off:]) }
func (p *Page) put64(off int, v uint64) { binary.LittleEndian.PutUint64(p.b[off:], v) }
func (p *Page) u32(off int) uint32      { return binary.LittleEndian.Uint32(p.b[off:]) }
func (p *Page) put32(off int, v uint32) { binary.LittleEndian.PutUint32(p.b[off:], v) }
func (p *Page) Init()                   { p.put64(offMagic, Magic); p.put32(offVersion, Version) }
func (p *Page) Valid() bool             { return p.u64(offMagic) == Magic && p.u32(offVersion) == Version }
func (p *Page) Epoch() uint64           { return p.u64(offEpoch) }
func (p *Page) SetEpoch(e uint64)       { p.put64(offEpoch, e) }
func (p *Page) Seed() uint64            { return p.u64(offSeed) }
func (p *Page) SetSeed(s uint64)        { p.put64(offSeed, s) }
func (p *Page) MonoNS() uint64          { return p.u64(offMonoNS) }
func (p *Page) SetMonoNS(ns uint64)     { p.put64(offMonoNS, ns) }
func (p *Page) State() State            { return State(p.u32(offState)) }
func (p *Page) SetState(s State)        { p.put32(offState, uint32(s)) }
func (p *Page) outLen() uint32          { return p.u32(offOutLen) }
func (p *Page) setOutLen(n uint32)      { p.put32(offOutLen, n) }
func (p *Page) outBuf() []byte          { return p.b[OutOff : OutOff+OutCap] }

// AppendOut appends encoded events to the out buffer and reports how many
// bytes fit; a caller keeps the rest for the next epoch. Guest side.
func (p *Page) AppendOut(enc []byte) int {
	n := p.outLen()
	if n > OutCap {
		n = OutCap // the controller scribbled: start clean rather than overflow
	}
	k := copy(p.outBuf()[n:], enc)
	p.setOutLen(n + uint32(k))
	return k
}

// TakeOut returns a copy of the out buffer and empties it. Controller side.
func (p *Page) TakeOut() ([]byte, error) {
	n := p.outLen()
	if n > OutCap {
		return nil, fmt.Errorf("wire: guest reports %d bytes of events, buffer holds %d", n, OutCap)
	}
	out := append([]byte(nil), p.outBuf()[:n]...)
	p.setOutLen(0)
	return out, nil
}

// Kind is the type of an event record.
type Kind uint8

const (
	KindLog    Kind = 1 // a line from the agent itself
	KindStdout Kind = 2 // a line a process wrote to stdout
	KindStderr Kind = 3 // a line a process wrote to stderr
	KindStart  Kind = 4 // a process started; Data is its argv joined by spaces
	KindExit   Kind = 5 // a process ended; Code is its exit status, or -signal
)

func (k Kind) String() string {
	switch k {
	case KindLog:
		return "log"
	case KindStdout:
		return "stdout"
	case KindStderr:
		return "stderr"
	case KindStart:
		return "start"
	case KindExit:
		return "exit"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one thing that happened in a guest, stamped with guest time.
type Event struct {
	Kind   Kind
	MonoNS uint64 // guest CLOCK_MONOTONIC
	Proc   string // process name, "" for the agent
	Code   int32  // KindExit only
	Data   []byte
}

// Record layout: u32 length of what follows, u8 kind, u64 mono, u8 name
// length, name, i32 code, data.
const recHeader = 4 + 1 + 8 + 1 + 4

// MaxName bounds process names so the length fits its byte.
const MaxName = 255

// AppendEvent encodes e onto b.
func AppendEvent(b []byte, e Event) []byte {
	name := e.Proc
	if len(name) > MaxName {
		name = name[:MaxName]
	}
	n := recHeader - 4 + len(name) + len(e.Data)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, byte(e.Kind))
	b = binary.LittleEndian.AppendUint64(b, e.MonoNS)
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint32(b, uint32(e.Code))
	return append(b, e.Data...)
}

// ErrShort reports a record cut by the end of the buffer.
var ErrShort = errors.New("wire: truncated event record")

// DecodeEvents parses a buffer of records. Every length is checked, so a
// corrupt buffer yields an error, never a panic or an out-of-range read.
func DecodeEvents(b []byte) ([]Event, error) {
	var out []Event
	for len(b) > 0 {
		if len(b) < 4 {
			return out, ErrShort
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n < recHeader-4 || n > len(b)-4 {
			return out, fmt.Errorf("%w: length %d with %d bytes left", ErrShort, n, len(b)-4)
		}
		r := b[4 : 4+n]
		b = b[4+n:]
		var e Event
		e.Kind = Kind(r[0])
		e.MonoNS = binary.LittleEndian.Uint64(r[1:])
		nl := int(r[9])
		if 10+nl+4 > len(r) {
			return out, fmt.Errorf("%w: name length %d", ErrShort, nl)
		}
		e.Proc = string(r[10 : 10+nl])
		e.Code = int32(binary.LittleEndian.Uint32(r[10+nl:]))
		if d := r[10+nl+4:]; len(d) > 0 {
			e.Data = append([]byte(nil), d...)
		}
		out = append(out, e)
	}
	return out, nil
}
