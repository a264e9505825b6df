// Package wire is the layout of the page a guest shares with the controller
// (an ivshmem BAR in the guest, a file mapping on the host) and the encoding
// of what crosses it.
//
// Ownership is by time, not by locks: the guest writes its half only while it
// runs, and the controller touches the page only while that guest is held in
// a barrier. So whatever the guest reads after a barrier is a function of the
// run, never of host timing (DESIGN.md, "Data through shared memory").
//
// The guest may be held at any instruction (QEMU holds it at virtual-time
// boundaries, whatever it is doing), so its page accesses are bracketed by
// Enter and Leave: a controller that finds the page busy leaves every region
// alone until a later barrier. Region lengths are published after the
// records they cover, so a length never counts a half-written record.
//
// Both sides treat the other as untrusted: every length read from the page is
// bounds-checked before use. This package is pure and imported by the guest
// agent, so it must not import host-only packages.
//
// Layout (Version 5): header fields at 0x000..0x800, fault commands
// (controller → guest) at 0x800, events at 0x1000, TX frames at 0x40000, RX
// frames at 0xa0000.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Size is the size of the shared region. ivshmem BARs must be a power of two.
const Size = 1 << 20

// Magic marks a page the agent has initialised ("DETVMSHM").
const Magic = 0x4d48535f4d565444

// Version changes whenever the layout does. 4: the command region, Base and
// KindFault. 5: Busy, More and StateReady, for a guest that QEMU holds at
// any instruction and that is woken only when there is something for it.
const Version = 5

// Offsets of the fixed header fields. Everything is little-endian.
const (
	offMagic   = 0x00 // u64, guest
	offVersion = 0x08 // u32, guest
	// Controller → guest, written only while the guest is held.
	offEpoch  = 0x10 // u64: the epoch the guest runs after this barrier
	offSeed   = 0x18 // u64: the run seed, valid from the first barrier on
	offRxLen  = 0x20 // u32: bytes of frames in the RX region (the guest zeroes it once consumed)
	offBranch = 0x28 // u64: the branch seed, 0 until a run branches (mixed into the guest RNG when it changes)
	offCmdLen = 0x30 // u32: bytes of commands in the command region (the guest zeroes it once taken)
	offBase   = 0x38 // u64: the epoch the agent's clock origin corresponds to (see Page.Base)
	// Guest → controller, written only while the guest runs.
	offMonoNS = 0x40 // u64: guest CLOCK_MONOTONIC at the barrier
	offState  = 0x48 // u32: State
	offOutLen = 0x4c // u32: bytes of events in the events region
	offTxLen  = 0x50 // u32: bytes of frames in the TX region
	offBusy   = 0x54 // u32: non-zero while the guest is inside Enter..Leave
	offMore   = 0x58 // u32: non-zero when the guest has more to write than fitted
)

// A region is a length-prefixed run of records in the page, filled by one
// side and emptied by the other.
type region struct{ lenOff, off, cap int }

// headerSize bounds the fixed header fields; the command region follows.
const headerSize = 0x800

// The regions: events and TX frames flow guest → controller, commands and RX
// frames controller → guest. Each record is a u32 length and that many bytes.
var (
	regCmd    = region{offCmdLen, headerSize, 0x1000 - headerSize}
	regEvents = region{offOutLen, 0x01000, 0x3f000}
	regTX     = region{offTxLen, 0x40000, 0x60000}
	regRX     = region{offRxLen, 0xa0000, 0x60000}
)

// State is what the agent reports at each barrier.
type State uint32

const (
	// StateRunning: processes the run waits for are still running.
	StateRunning State = 1
	// StateDone: every process the run waits for has exited.
	StateDone State = 2
	// StateReady: the agent has booted and waits to be woken with the
	// seed (a guest that QEMU holds; one with a barrier instruction says
	// so by reaching its first barrier).
	StateReady State = 3
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

// The fields whose order of stores matters (busy flag, lengths, state) are
// accessed atomically: that keeps the compiler from moving a length store
// before the copy it publishes, or a record copy past Leave. x86 keeps a
// single vCPU's stores in program order; the offsets are 4-aligned in a
// page-aligned mapping.
func (p *Page) ptr32(off int) *uint32     { return (*uint32)(unsafe.Pointer(&p.b[off])) }
func (p *Page) load32(off int) uint32     { return atomic.LoadUint32(p.ptr32(off)) }
func (p *Page) store32(off int, v uint32) { atomic.StoreUint32(p.ptr32(off), v) }

// Init marks the page as initialised by the agent and empties every region.
// A fresh agent owns nothing a previous boot of the same guest left behind:
// commands written for the old agent (a "restart" meant for a process of the
// old kernel), frames for its sockets, and events or frames it appended
// after its last completed barrier, whose existence depends on when the
// host's reset landed. Epoch, Seed, Branch and Base are left alone: the
// controller writes them at the new agent's first barrier.
func (p *Page) Init() {
	for _, r := range []region{regCmd, regEvents, regTX, regRX} {
		p.store32(r.lenOff, 0)
	}
	p.store32(offMore, 0)
	p.store32(offBusy, 0)
	p.put64(offMagic, Magic)
	p.put32(offVersion, Version)
}

// Valid reports whether the agent initialised the page with this layout.
func (p *Page) Valid() bool { return p.u64(offMagic) == Magic && p.u32(offVersion) == Version }

// Epoch is the epoch the guest runs after the current barrier.
func (p *Page) Epoch() uint64 { return p.u64(offEpoch) }

// SetEpoch is called by the controller while the guest is held.
func (p *Page) SetEpoch(e uint64) { p.put64(offEpoch, e) }

// Seed is the run seed (valid after the first barrier).
func (p *Page) Seed() uint64 { return p.u64(offSeed) }

// SetSeed is called by the controller at the first barrier.
func (p *Page) SetSeed(s uint64) { p.put64(offSeed, s) }

// Branch is the seed of the current branch, 0 before any branch.
func (p *Page) Branch() uint64 { return p.u64(offBranch) }

// SetBranch is called by the controller, at the barrier a run branches at.
func (p *Page) SetBranch(s uint64) { p.put64(offBranch, s) }

// Base is the controller epoch the agent's clock origin corresponds to. The
// agent's origin is the epoch boundary on its CLOCK_MONOTONIC right after its
// first ("ready") barrier, and it sleeps until
//
//	origin + (Epoch - Base) * EpochNS
//
// before its next barrier, or not at all when Epoch <= Base. Base is 0 in a
// run where every node boots at epoch 0 and is never held out, and then the
// guest's epoch count is the controller's. The controller changes it in two
// cases, always while the guest is held:
//
//   - Holding a node out: a node kept in its barrier (or paused) for k
//     epochs while the others run has not seen its clock move. Releasing it
//     with Epoch = E+1 and Base += k makes it run one epoch of its own time,
//     as if nothing happened, instead of k+1 epochs at once.
//   - Joining late: a rebooted node's fresh agent reaches its ready barrier
//     while the controller is at epoch J. Writing Base = J and Epoch = J+1
//     there makes its origin controller epoch J.
func (p *Page) Base() uint64 { return p.u64(offBase) }

// SetBase is called by the controller while the guest is held.
func (p *Page) SetBase(e uint64) { p.put64(offBase, e) }

// MonoNS is the guest's CLOCK_MONOTONIC at its last barrier.
func (p *Page) MonoNS() uint64 { return p.u64(offMonoNS) }

// SetMonoNS is called by the agent just before its barrier.
func (p *Page) SetMonoNS(ns uint64) { p.put64(offMonoNS, ns) }

// State is the agent's state as it last published it.
func (p *Page) State() State { return State(p.load32(offState)) }

// SetState is called by the agent; by the controller only to clear it
// (0) before it resets a held guest.
func (p *Page) SetState(s State) { p.store32(offState, uint32(s)) }

// Enter marks the page busy (guest side): until Leave, the controller must
// not take or append anything, since the guest may be held halfway through
// an append or a take.
func (p *Page) Enter() { p.store32(offBusy, 1) }

// Leave ends what Enter began.
func (p *Page) Leave() { p.store32(offBusy, 0) }

// Busy reports whether the guest was held between Enter and Leave.
func (p *Page) Busy() bool { return p.load32(offBusy) != 0 }

// SetMore says whether the guest holds records that did not fit (guest
// side): the controller, having emptied the regions, should wake it.
func (p *Page) SetMore(more bool) {
	v := uint32(0)
	if more {
		v = 1
	}
	p.store32(offMore, v)
}

// More reports what SetMore last said.
func (p *Page) More() bool { return p.load32(offMore) != 0 }

// fit returns how many leading bytes of enc are whole records that fit in
// room bytes. A record that could never fit an empty region is counted as
// fitting when it comes first, so that the caller drops it instead of
// waiting forever; the decoder then rejects it.
func fit(enc []byte, room, capacity int) int {
	n := 0
	for n+4 <= len(enc) {
		l := 4 + int(binary.LittleEndian.Uint32(enc[n:]))
		if l > len(enc)-n {
			break
		}
		if n+l > room {
			if n == 0 && l > capacity {
				return l
			}
			break
		}
		n += l
	}
	return n
}

// appendTo appends the whole records of enc that fit and returns how many
// bytes of enc it consumed; the caller keeps the rest for the next epoch.
func (p *Page) appendTo(r region, enc []byte) int {
	used := int(p.load32(r.lenOff))
	if used > r.cap {
		used = r.cap // the other side scribbled: never write past the region
	}
	n := fit(enc, r.cap-used, r.cap)
	if n > r.cap-used {
		return n // oversized record: dropped
	}
	copy(p.b[r.off+used:], enc[:n])
	p.store32(r.lenOff, uint32(used+n)) // after the copy: see load32
	return n
}

// take returns a copy of the region's records and empties it, also when its
// length is bad: a reader must not meet the same corruption at every barrier.
func (p *Page) take(r region) ([]byte, error) {
	n := int(p.load32(r.lenOff))
	if n > r.cap {
		p.store32(r.lenOff, 0)
		return nil, fmt.Errorf("wire: region at %#x claims %d bytes, holds %d", r.off, n, r.cap)
	}
	out := append([]byte(nil), p.b[r.off:r.off+n]...)
	p.store32(r.lenOff, 0) // after the copy: the writer may reuse the space
	return out, nil
}

// AppendCmd appends encoded commands (controller side) and returns how many
// bytes of enc were consumed: whole records only. The region holds 2 KiB,
// a few dozen commands; the caller keeps the rest for a later barrier.
func (p *Page) AppendCmd(enc []byte) int { return p.appendTo(regCmd, enc) }

// TakeCmd returns the commands and empties the region (guest side).
func (p *Page) TakeCmd() ([]byte, error) { return p.take(regCmd) }

// AppendOut appends encoded events (guest side) and returns how many bytes
// of enc were consumed: whole records only.
func (p *Page) AppendOut(enc []byte) int { return p.appendTo(regEvents, enc) }

// TakeOut returns the events and empties the region (controller side).
func (p *Page) TakeOut() ([]byte, error) { return p.take(regEvents) }

// AppendTX appends encoded frames the guest sent (guest side).
func (p *Page) AppendTX(enc []byte) int { return p.appendTo(regTX, enc) }

// TakeTX returns the frames the guest sent and empties the region.
func (p *Page) TakeTX() ([]byte, error) { return p.take(regTX) }

// AppendRX appends encoded frames for the guest (controller side).
func (p *Page) AppendRX(enc []byte) int { return p.appendTo(regRX, enc) }

// TakeRX returns the frames delivered to the guest and empties the region.
func (p *Page) TakeRX() ([]byte, error) { return p.take(regRX) }

// AppendFrame encodes one frame (a raw IP packet) onto b.
func AppendFrame(b, frame []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
	return append(b, frame...)
}

// SplitFrames decodes encoded frames. The slices alias b.
func SplitFrames(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return out, ErrShort
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n > len(b)-4 {
			return out, fmt.Errorf("%w: frame of %d bytes with %d left", ErrShort, n, len(b)-4)
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
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
	// KindFault: the agent executed a Command. Proc is its target ("" for
	// the clock ops), Code the Command's Fault id, Data one line saying what
	// was done or why not (see Command). Never fatal to the agent.
	KindFault Kind = 6
	// KindSDK: a message a guest process sent to the agent's SDK socket
	// (docs/sdk.md). Proc is the sender's process name ("" if the agent
	// could not tell), Data the datagram exactly as received: one JSON
	// object of at most MaxSDKMessage bytes.
	KindSDK Kind = 7
)

// MaxSDKMessage bounds one SDK datagram; the agent reports longer ones as
// bad messages.
const MaxSDKMessage = 64 << 10

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
	case KindFault:
		return "fault"
	case KindSDK:
		return "sdk"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one thing that happened in a guest, stamped with guest time.
type Event struct {
	Kind   Kind
	MonoNS uint64 // guest CLOCK_MONOTONIC
	Proc   string // process name, "" for the agent
	Code   int32  // KindExit: exit status; KindFault: fault id
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

// ErrShort reports a record (event, frame or command) cut by the end of the
// buffer.
var ErrShort = errors.New("wire: truncated record")

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
