package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	cmds := []Command{
		{Fault: 1, Op: OpKill},
		{Fault: 2, Op: OpRestart, Proc: "etcd"},
		{Fault: 3, Op: OpCPUMax, Proc: "etcd", Ratio: 0.25},
		{Fault: 4, Op: OpClockStep, DeltaNS: -5_000_000_000},
		{Fault: 5, Op: OpClockFreq, PPM: -500},
		{Fault: 6, Op: OpFreeze, Proc: "a name with spaces/and slashes"},
		{Fault: math.MaxInt32, Op: "future-op"},
	}
	var b []byte
	for _, c := range cmds {
		b = AppendCommand(b, c)
	}
	got, err := DecodeCommands(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cmds) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, cmds)
	}
	if got, err := DecodeCommands(nil); err != nil || got != nil {
		t.Fatalf("empty buffer: %v, %v", got, err)
	}
}

// The encoding is the controller's record of what it asked: it must be the
// same bytes every time.
func TestAppendCommandStable(t *testing.T) {
	c := Command{Fault: 7, Op: OpCPUMax, Proc: "p", Ratio: 0.5}
	want := `{"fault":7,"op":"cpu-max","proc":"p","ratio":0.5}`
	b := AppendCommand(nil, c)
	if n := binary.LittleEndian.Uint32(b); int(n) != len(want) || string(b[4:]) != want {
		t.Fatalf("AppendCommand = %d %q, want %d %q", n, b[4:], len(want), want)
	}
}

func TestAppendCommandNonFinite(t *testing.T) {
	for _, r := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		got, err := DecodeCommands(AppendCommand(nil, Command{Op: OpCPUMax, Ratio: r}))
		if err != nil || len(got) != 1 || got[0].Ratio != -1 {
			t.Errorf("ratio %v: decoded %+v, %v; want ratio -1", r, got, err)
		}
	}
}

func record(body string) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestDecodeCommandsCorrupt(t *testing.T) {
	good := AppendCommand(nil, Command{Fault: 1, Op: OpKill})
	for _, tc := range []struct {
		name string
		b    []byte
		want string // in the error
		n    int    // commands decoded before the error
	}{
		{"cut length", good[:3], "truncated", 0},
		{"length past the end", good[:len(good)-1], "truncated", 0},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, '{', '}'}, "truncated", 0},
		{"good then cut", append(append([]byte(nil), good...), 1, 0), "truncated", 1},
		{"empty record", record(""), "not a JSON object", 0},
		{"not an object", record(`["kill"]`), "not a JSON object", 0},
		{"null", record("null"), "not a JSON object", 0},
		{"bad json", record(`{"op":`), "unexpected EOF", 0},
		{"unknown field", record(`{"op":"kill","signal":9}`), "unknown field", 0},
		{"wrong type", record(`{"op":9}`), "cannot unmarshal", 0},
		{"overflow", record(`{"delta_ns":1e30}`), "cannot unmarshal", 0},
		{"trailing data", record(`{"op":"kill"}{}`), "data after", 0},
		{"good then bad", append(append([]byte(nil), good...), record("x")...), "command 1", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeCommands(tc.b)
			if err == nil {
				t.Fatalf("decoded %+v without error", got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if len(got) != tc.n {
				t.Errorf("decoded %d commands before the error, want %d", len(got), tc.n)
			}
		})
	}
	if _, err := DecodeCommands(good[:2]); !errors.Is(err, ErrShort) {
		t.Errorf("cut record: %v is not ErrShort", err)
	}
}

func TestDecodeCommandsWhitespace(t *testing.T) {
	got, err := DecodeCommands(record(" \n{\"op\":\"thaw\"}\n "))
	if err != nil || len(got) != 1 || got[0].Op != OpThaw {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func FuzzDecodeCommands(f *testing.F) {
	f.Add(AppendCommand(nil, Command{Fault: 3, Op: OpCPUMax, Proc: "x", Ratio: 0.3}))
	f.Add(record(`{"op":"kill"} `))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := DecodeCommands(b)
		if err != nil {
			return
		}
		var re []byte
		for _, c := range cmds {
			re = AppendCommand(re, c)
		}
		again, err := DecodeCommands(re)
		if err != nil || !reflect.DeepEqual(again, cmds) {
			t.Fatalf("re-encoding %+v: %+v, %v", cmds, again, err)
		}
	})
}

func TestPageCommands(t *testing.T) {
	p, err := NewPage(make([]byte, Size))
	if err != nil {
		t.Fatal(err)
	}
	// Commands only fill the 2 KiB region with whole records; the rest stays
	// with the controller for the next barrier.
	var enc []byte
	var all []Command
	for i := 0; i < 100; i++ {
		c := Command{Fault: i, Op: OpCPUMax, Proc: "node-main-process", Ratio: 0.5}
		all = append(all, c)
		enc = AppendCommand(enc, c)
	}
	n := p.AppendCmd(enc)
	if n == 0 || n >= len(enc) || n > regCmd.cap {
		t.Fatalf("AppendCmd consumed %d of %d bytes (region %d)", n, len(enc), regCmd.cap)
	}
	// The other regions are untouched.
	if out, _ := p.TakeOut(); len(out) != 0 {
		t.Fatalf("events region holds %d bytes", len(out))
	}
	got1, err := p.TakeCmd()
	if err != nil {
		t.Fatal(err)
	}
	first, err := DecodeCommands(got1)
	if err != nil {
		t.Fatalf("a full region holds a cut record: %v", err)
	}
	if m := p.AppendCmd(enc[n:]); m == 0 {
		t.Fatal("nothing appended to an empty region")
	}
	got2, _ := p.TakeCmd()
	second, err := DecodeCommands(got2)
	if err != nil || !reflect.DeepEqual(append(first, second...), all[:len(first)+len(second)]) {
		t.Fatalf("commands out of order or lost: %v", err)
	}
	if got, _ := p.TakeCmd(); len(got) != 0 {
		t.Fatalf("TakeCmd after take = %d bytes", len(got))
	}

	// An oversized command is consumed (dropped), never written.
	huge := AppendCommand(nil, Command{Op: OpKill, Proc: strings.Repeat("x", regCmd.cap)})
	if m := p.AppendCmd(huge); m != len(huge) {
		t.Fatalf("oversized command: consumed %d of %d", m, len(huge))
	}
	if got, _ := p.TakeCmd(); len(got) != 0 {
		t.Fatalf("oversized command was written: %d bytes", len(got))
	}

	// A hostile controller (from the guest's side) or guest.
	p.put32(regCmd.lenOff, uint32(regCmd.cap+1))
	if _, err := p.TakeCmd(); err == nil {
		t.Fatal("TakeCmd accepted a length beyond the region")
	}
	if got, err := p.TakeCmd(); err != nil || len(got) != 0 {
		t.Fatalf("a bad length was not cleared: %d bytes, %v", len(got), err)
	}
	p.put32(regCmd.lenOff, uint32(regCmd.cap+1))
	if m := p.AppendCmd(AppendCommand(nil, Command{Op: OpKill})); m != 0 {
		t.Fatalf("AppendCmd into a region claiming more than its size consumed %d", m)
	}
	if got := p.u32(regCmd.lenOff); got > uint32(regCmd.cap)+1 {
		t.Fatalf("length grew to %d", got)
	}
}

func TestPageBase(t *testing.T) {
	p, _ := NewPage(make([]byte, Size))
	if p.Base() != 0 {
		t.Fatal("fresh page: Base != 0")
	}
	p.SetBase(41)
	p.SetEpoch(42)
	if p.Base() != 41 || p.Epoch() != 42 || p.Branch() != 0 {
		t.Fatalf("Base %d Epoch %d Branch %d", p.Base(), p.Epoch(), p.Branch())
	}
}

// Init is a fresh agent's first act: it drops whatever an earlier boot of
// the guest left in the regions and keeps the controller's fields.
func TestInitEmptiesRegions(t *testing.T) {
	p, _ := NewPage(make([]byte, Size))
	p.SetEpoch(9)
	p.SetBase(8)
	p.SetSeed(7)
	p.AppendCmd(AppendCommand(nil, Command{Op: OpRestart}))
	p.AppendRX(AppendFrame(nil, []byte("old")))
	p.AppendTX(AppendFrame(nil, []byte("old")))
	p.AppendOut(AppendEvent(nil, Event{Kind: KindLog}))
	p.Init()
	if !p.Valid() {
		t.Fatal("not valid after Init")
	}
	for name, take := range map[string]func() ([]byte, error){"cmd": p.TakeCmd, "rx": p.TakeRX, "tx": p.TakeTX, "out": p.TakeOut} {
		if b, err := take(); err != nil || len(b) != 0 {
			t.Errorf("%s after Init: %d bytes, %v", name, len(b), err)
		}
	}
	if p.Epoch() != 9 || p.Base() != 8 || p.Seed() != 7 {
		t.Errorf("Init changed controller fields: epoch %d base %d seed %d", p.Epoch(), p.Base(), p.Seed())
	}
}
