package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// Command is a fault the controller asks a guest's agent to carry out. The
// controller appends commands to the command region while the guest is held;
// the agent takes them right after the barrier returns and executes them in
// order, synchronously, before the guest runs the next epoch and before the
// RX frames of the same barrier reach its kernel: a command takes effect at
// a deterministic point of the guest's execution. The agent reports
// each one as a KindFault event whose Data is one of the lines listed with
// the ops below (N a pid, ERR the kernel's error text). A line containing
// ": " says the command was not carried out, and why; the others say it was.
//
// Process ops act on Proc, the name of a Proc in the node's Config ("" is
// Config.Main); the event's Proc is that name. For an unknown name the line
// is `OP: no process "NAME"`, and "OP: no main process" for "" in a node
// without one.
//
//	kill        SIGKILL to the process group (the agent starts every process
//	            with setsid, so the group is the process and what it forked).
//	            "kill pid N", "kill: not running", "kill pid N: ERR".
//	            The run keeps waiting for a killed non-daemon process: it
//	            finishes only when an instance exits without being killed,
//	            so a killed process of a node whose run ends when its
//	            processes exit must be restarted.
//	restart     start the process again from its Proc (AfterNS ignored), in
//	            the same cgroup, if it is not running. "restart pid N" (the
//	            new pid), "restart: already running", "restart: not started"
//	            (a command the agent has not reached yet), "restart: ERR".
//	stop, cont  SIGSTOP / SIGCONT to the process group. "stop pid N",
//	            "stop: not running", "stop pid N: ERR"; the same for cont.
//	cpu-max     limit the process's cgroup to Ratio of one CPU (cgroup v2
//	            cpu.max "Ratio*100000 100000"; Ratio 1 writes "max 100000",
//	            no limit). Ratio must be in [0.01, 1]: the kernel's smallest
//	            quota is 1 ms per 100 ms period. "cpu-max 0.25",
//	            "cpu-max 1.5: ratio not in [0.01, 1]", "cpu-max 0.25: ERR".
//	freeze,     freeze / thaw the process's cgroup (cgroup.freeze). The
//	thaw        kernel completes a freeze asynchronously, as each task next
//	            runs (cgroup.events says "frozen 1" when done); the agent
//	            does not wait for it. "freeze", "thaw", "freeze: ERR".
//	            Both apply to the cgroup, not an instance: a process
//	            restarted into a frozen cgroup starts frozen.
//
// Clock ops act on the whole guest; their event's Proc is "".
//
//	clock-step  CLOCK_REALTIME += DeltaNS. "clock-step +5s",
//	            "clock-step -1.5ms", "clock-step 0s", "clock-step +5s: ERR"
//	            (ERR also "time out of range"). CLOCK_MONOTONIC, which
//	            paces the epochs, does not move.
//	clock-freq  set the kernel's clock frequency offset to PPM parts per
//	            million (adjtimex ADJ_FREQUENCY; 0 restores the nominal
//	            rate), at most MaxClockPPM either way. "clock-freq +100ppm",
//	            "clock-freq 0ppm", "clock-freq +900ppm: beyond ±500ppm",
//	            "clock-freq -20ppm: ERR". This changes the rate of
//	            CLOCK_MONOTONIC too, so the guest's epochs then last that
//	            much more or less virtual time than other guests'.
//
// Anything else is reported as `"OP": unknown op` with Proc as given.
type Command struct {
	Fault   int     `json:"fault"`          // fault id, echoed as the event's Code (an int32)
	Op      string  `json:"op"`             // one of the Op constants
	Proc    string  `json:"proc,omitempty"` // process name ("" = the node's main process)
	Ratio   float64 `json:"ratio,omitempty"`
	DeltaNS int64   `json:"delta_ns,omitempty"`
	PPM     int64   `json:"ppm,omitempty"`
}

// The ops a Command can carry; see Command.
const (
	OpKill      = "kill"
	OpRestart   = "restart"
	OpStop      = "stop"
	OpCont      = "cont"
	OpCPUMax    = "cpu-max"
	OpFreeze    = "freeze"
	OpThaw      = "thaw"
	OpClockStep = "clock-step"
	OpClockFreq = "clock-freq"
)

// MaxClockPPM bounds clock-freq: the kernel's limit (MAXFREQ, 500 ppm).
const MaxClockPPM = 500

// AppendCommand encodes c onto b: a u32 length and c as JSON. JSON cannot
// carry a non-finite number, so a NaN or infinite Ratio is sent as -1,
// which the agent rejects (and reports).
func AppendCommand(b []byte, c Command) []byte {
	if math.IsNaN(c.Ratio) || math.IsInf(c.Ratio, 0) {
		c.Ratio = -1
	}
	j, err := json.Marshal(c)
	if err != nil {
		// Unreachable: every field of Command has a JSON encoding once
		// Ratio is finite.
		panic(fmt.Sprintf("wire: encode %+v: %v", c, err))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(j)))
	return append(b, j...)
}

// DecodeCommands parses a buffer of command records. Every length is
// checked, and each record must be exactly one JSON object with only
// Command's fields; on a bad record it returns the commands before it and an
// error.
func DecodeCommands(b []byte) ([]Command, error) {
	var out []Command
	for len(b) > 0 {
		if len(b) < 4 {
			return out, fmt.Errorf("%w: command length cut after %d bytes", ErrShort, len(b))
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n > len(b)-4 {
			return out, fmt.Errorf("%w: command of %d bytes with %d left", ErrShort, n, len(b)-4)
		}
		r := b[4 : 4+n]
		b = b[4+n:]
		c, err := decodeCommand(r)
		if err != nil {
			return out, fmt.Errorf("wire: command %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func decodeCommand(r []byte) (Command, error) {
	var c Command
	if t := bytes.TrimLeft(r, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return c, fmt.Errorf("not a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(r))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Command{}, err
	}
	if _, err := d.Token(); err != io.EOF {
		return Command{}, fmt.Errorf("data after the JSON object")
	}
	return c, nil
}
