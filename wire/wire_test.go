package wire

import (
	"bytes"
	"reflect"
	"testing"
)

func TestEventRoundTrip(t *testing.T) {
	evs := []Event{
		{Kind: KindLog, MonoNS: 1, Data: []byte("agent ready")},
		{Kind: KindStart, MonoNS: 2, Proc: "etcd", Data: []byte("/usr/bin/etcd --x")},
		{Kind: KindStdout, MonoNS: 3, Proc: "hello", Data: []byte("line\n")},
		{Kind: KindExit, MonoNS: 4, Proc: "hello", Code: -9},
		{Kind: KindExit, MonoNS: 5, Proc: "x"},
	}
	var b []byte
	for _, e := range evs {
		b = AppendEvent(b, e)
	}
	got, err := DecodeEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, evs)
	}
}

func TestDecodeRejectsTruncation(t *testing.T) {
	b := AppendEvent(nil, Event{Kind: KindStdout, Proc: "p", Data: []byte("abc")})
	for i := 1; i < len(b); i++ {
		if _, err := DecodeEvents(b[:i]); err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded without error", i, len(b))
		}
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add(AppendEvent(nil, Event{Kind: KindExit, Proc: "a", Code: 3}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := DecodeEvents(b)
		if err != nil {
			return
		}
		var re []byte
		for _, e := range evs {
			re = AppendEvent(re, e)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("decode/encode not inverse")
		}
	})
}

func TestPageRegions(t *testing.T) {
	p, err := NewPage(make([]byte, Size))
	if err != nil {
		t.Fatal(err)
	}
	p.Init()
	if !p.Valid() {
		t.Fatal("initialised page not valid")
	}
	// Fill the events region with records of 1000 bytes: only whole records
	// go in, the rest stays with the caller for the next epoch.
	var enc []byte
	for i := 0; i < regEvents.cap/1000+5; i++ {
		enc = AppendEvent(enc, Event{Kind: KindStdout, Proc: "p", Data: bytes.Repeat([]byte{'x'}, 1000-recHeader-1)}) // name "p" is 1 byte
	}
	n := p.AppendOut(enc)
	if n == 0 || n == len(enc) || n > regEvents.cap {
		t.Fatalf("AppendOut consumed %d of %d bytes (region %d)", n, len(enc), regEvents.cap)
	}
	out, err := p.TakeOut()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeEvents(out); err != nil {
		t.Fatalf("a full region holds a cut record: %v", err)
	}
	if m := p.AppendOut(enc[n:]); m != len(enc)-n {
		t.Fatalf("rest: consumed %d of %d", m, len(enc)-n)
	}
	if out, _ := p.TakeOut(); len(out) != len(enc)-n {
		t.Fatalf("second take = %d bytes", len(out))
	}
	if out, _ := p.TakeOut(); len(out) != 0 {
		t.Fatalf("TakeOut after take = %d bytes", len(out))
	}

	// Frames both ways are independent of events.
	var tx []byte
	tx = AppendFrame(tx, []byte("packet-1"))
	tx = AppendFrame(tx, []byte("packet-2"))
	in := AppendFrame(nil, []byte("in"))
	if p.AppendTX(tx) != len(tx) || p.AppendRX(in) != len(in) {
		t.Fatal("frames not accepted")
	}
	got, err := p.TakeTX()
	if err != nil {
		t.Fatal(err)
	}
	frames, err := SplitFrames(got)
	if err != nil || len(frames) != 2 || string(frames[1]) != "packet-2" {
		t.Fatalf("TX frames %q, %v", frames, err)
	}
	rx, _ := p.TakeRX()
	if frames, _ := SplitFrames(rx); len(frames) != 1 || string(frames[0]) != "in" {
		t.Fatalf("RX frames %q", frames)
	}

	// An oversized record is consumed (dropped), not retried forever.
	huge := AppendFrame(nil, make([]byte, regRX.cap))
	if m := p.AppendRX(huge); m != len(huge) {
		t.Fatalf("oversized frame: consumed %d of %d", m, len(huge))
	}
	if rx, _ := p.TakeRX(); len(rx) != 0 {
		t.Fatalf("oversized frame was written: %d bytes", len(rx))
	}

	p.put32(regTX.lenOff, uint32(regTX.cap+1)) // a hostile guest
	if _, err := p.TakeTX(); err == nil {
		t.Fatal("TakeTX accepted a length beyond the region")
	}
	if _, err := NewPage(make([]byte, 10)); err == nil {
		t.Fatal("NewPage accepted a short region")
	}
}

func TestRegionsDisjoint(t *testing.T) {
	rs := []region{{0, 0, headerSize}, regCmd, regEvents, regTX, regRX}
	for i := 1; i < len(rs); i++ {
		if rs[i].off < rs[i-1].off+rs[i-1].cap {
			t.Fatalf("region %d overlaps the previous one", i)
		}
	}
	if last := rs[len(rs)-1]; last.off+last.cap > Size {
		t.Fatal("last region beyond the page")
	}
}

func TestHeaderFieldsDisjoint(t *testing.T) {
	fields := []struct {
		name      string
		off, size int
	}{
		{"magic", offMagic, 8}, {"version", offVersion, 4},
		{"epoch", offEpoch, 8}, {"seed", offSeed, 8}, {"rxlen", offRxLen, 4},
		{"branch", offBranch, 8}, {"cmdlen", offCmdLen, 4}, {"base", offBase, 8},
		{"mono", offMonoNS, 8}, {"state", offState, 4}, {"outlen", offOutLen, 4},
		{"txlen", offTxLen, 4}, {"busy", offBusy, 4}, {"more", offMore, 4},
	}
	var used [headerSize]string
	for _, f := range fields {
		if f.off%f.size != 0 {
			t.Errorf("%s at %#x is not aligned to %d", f.name, f.off, f.size)
		}
		for i := f.off; i < f.off+f.size; i++ {
			if i >= headerSize {
				t.Fatalf("%s at %#x runs past the header", f.name, f.off)
			}
			if used[i] != "" {
				t.Fatalf("%s at %#x overlaps %s", f.name, f.off, used[i])
			}
			used[i] = f.name
		}
	}
}

// TestBusyAndMore: the flags the guest publishes for a controller that may
// find it held anywhere; Init clears both (a fresh agent is in no access).
func TestBusyAndMore(t *testing.T) {
	p, err := NewPage(make([]byte, Size))
	if err != nil {
		t.Fatal(err)
	}
	if p.Busy() || p.More() {
		t.Fatal("a zero page is neither busy nor has more")
	}
	p.Enter()
	p.SetMore(true)
	if !p.Busy() || !p.More() {
		t.Fatal("Enter/SetMore not seen")
	}
	p.Init()
	if p.Busy() || p.More() {
		t.Fatal("Init must clear busy and more")
	}
	p.Enter()
	p.Leave()
	p.SetMore(false)
	if p.Busy() || p.More() {
		t.Fatal("Leave/SetMore(false) not seen")
	}
	p.SetState(StateReady)
	if p.State() != StateReady {
		t.Fatalf("state %d", p.State())
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindLog: "log", KindExit: "exit", KindFault: "fault", 99: "kind(99)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
