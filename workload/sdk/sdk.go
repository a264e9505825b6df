// Package sdk is how a workload, or the system under test itself, tells detvm
// what should be true: Antithesis-style assertions (Always, Sometimes,
// Reachable, ...), the moment the system is ready (SetupComplete), the
// operation history a checker reads (HistoryWriter), and metrics
// (Guidance). See docs/sdk.md.
//
// In a detvm guest the agent sets DETVM_SDK to its socket, a unix datagram
// socket at /run/detvm/sdk, and each call sends one JSON message there. The
// agent hands it to the controller at the next epoch barrier, so what the
// controller sees is a function of the run, like everything else. A call
// waits for the agent's acknowledgement (at most a second of virtual time),
// so a message is recorded before anything the process does after the call.
//
// Outside detvm (DETVM_SDK unset) every message is written to stderr as one
// line, "detvm-sdk: " and the JSON, so a workload built with this package
// runs anywhere. Nothing here ever fails the caller: the SDK must not break
// the program it observes. Shell scripts and other languages use the
// detvm-sdk helper in every guest (CLI), which sends the same messages.
//
// The package runs inside guests: it imports nothing of the host side.
package sdk

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
)

// Always asserts that cond is true every time this call is made, and that
// it is made at least once in the run. Message names the property: every
// call with the same message, on any node, is the same property. Details is
// any value json.Marshal accepts, shown with a failure; nil for none.
func Always(cond bool, message string, details any) { assert(KindAlways, cond, message, details) }

// AlwaysOrUnreachable asserts that cond is true every time this call is
// made; a run that never makes it passes.
func AlwaysOrUnreachable(cond bool, message string, details any) {
	assert(KindAlwaysOrUnreachable, cond, message, details)
}

// Sometimes asserts that cond is true at least once in the run: that the
// run got somewhere interesting.
func Sometimes(cond bool, message string, details any) { assert(KindSometimes, cond, message, details) }

// Reachable asserts that this call is made at least once in the run.
func Reachable(message string, details any) { assert(KindReachable, true, message, details) }

// Unreachable asserts that this call is never made.
func Unreachable(message string, details any) { assert(KindUnreachable, true, message, details) }

// SetupComplete says that the system is up and the test proper begins: the
// controller records the first epoch this is seen at (Result's
// setup_complete_epoch), from which the explorer branches.
func SetupComplete(details any) {
	b, err := SetupCompleteMessage(details)
	std().send(b, err)
}

// Guidance records a named number (queue depth, rounds without a leader),
// for a person or a future explorer to steer by. It is recorded only.
func Guidance(name string, value float64) {
	b, err := GuidanceMessage(name, value)
	std().send(b, err)
}

// Random returns 64 random bits from the kernel (getrandom). In a detvm guest
// they are deterministic: the agent seeds the kernel RNG from the run seed
// at boot and mixes in the branch seed when a run branches, and the guest
// CPU has no RDRAND, so the same run seed (and branch seeds) give the same
// numbers — and another seed gives others. Outside detvm they are simply
// random. Any source that reads the kernel RNG (crypto/rand, /dev/urandom)
// behaves the same; this is a convenience.
func Random() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return binary.LittleEndian.Uint64(b[:])
}

// HistoryWriter returns a writer for a history Recorder:
//
//	rec := history.NewRecorder(sdk.HistoryWriter(), now)
//
// Each complete line written is one op (a JSON object) and is sent as one
// history message; the controller appends the ops of every guest to the
// run's history.jsonl in a deterministic order. A partial line waits for
// its newline. A line that is not a JSON object, or longer than one
// message, is an error: the Recorder stops, rather than record a history
// with a hole in it. Each writer has its own line buffer; share one.
func HistoryWriter() io.Writer { return &historyWriter{s: std()} }

type historyWriter struct {
	mu  sync.Mutex
	s   *sender
	buf []byte
}

func (w *historyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	var first error
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSpace(w.buf[:i])
		if len(line) > 0 {
			b, err := HistoryMessage(line)
			w.s.send(b, err)
			if err != nil && first == nil {
				first = err
			}
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // don't pin a large line's array
	}
	return len(p), first
}

func assert(kind string, cond bool, message string, details any) {
	b, err := AssertMessage(kind, cond, message, details)
	std().send(b, err)
}

// Send sends one raw message, which should be a JSON object of at most
// MaxMessage bytes; the agent reports anything else as a bad message. It
// returns the agent's reply: "ok", "bad message: ..." or "" when there was
// no reply (outside detvm, or no answer in time).
func Send(msg []byte) string { return std().send(msg, nil) }

// transport sends one datagram and returns the agent's reply ("" if none).
type transport interface {
	send(b []byte) (reply string, err error)
}

// sender is where messages go: a transport, else (or when it fails) out.
type sender struct {
	t   transport // nil: not in a detvm guest
	out io.Writer // stderr

	mu     sync.Mutex // guards out and warned
	warned bool
}

var (
	stdOnce sync.Once
	stdS    *sender
)

// std is the process's sender, set up from DETVM_SDK on first use.
func std() *sender {
	stdOnce.Do(func() {
		stdS = &sender{out: os.Stderr}
		path := os.Getenv(EnvVar)
		if path == "" {
			return
		}
		t, err := dial(path)
		if err != nil {
			stdS.warn(fmt.Sprintf("%s=%s: %v; writing messages to stderr", EnvVar, path, err))
			return
		}
		stdS.t = t
	})
	return stdS
}

// send delivers an encoded message (or reports why it could not be
// encoded) and returns the agent's reply.
func (s *sender) send(b []byte, encErr error) string {
	if encErr != nil {
		s.line("error: " + encErr.Error())
		return ""
	}
	if s.t != nil {
		reply, err := s.t.send(b)
		if err == nil {
			return reply
		}
		s.warn(fmt.Sprintf("send: %v; writing messages to stderr", err))
	}
	s.line(string(b))
	return ""
}

// line writes one "detvm-sdk: " line to out in a single write, so lines
// of concurrent callers do not interleave.
func (s *sender) line(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = io.WriteString(s.out, "detvm-sdk: "+text+"\n")
}

// warn writes a problem with the transport once.
func (s *sender) warn(text string) {
	s.mu.Lock()
	w := s.warned
	s.warned = true
	s.mu.Unlock()
	if !w {
		s.line(text)
	}
}
