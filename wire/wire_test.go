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

func TestPageOutBuffer(t *testing.T) {
	p, err := NewPage(make([]byte, Size))
	if err != nil {
		t.Fatal(err)
	}
	p.Init()
	if !p.Valid() {
		t.Fatal("initialised page not valid")
	}
	big := bytes.Repeat([]byte{7}, OutCap-10)
	if n := p.AppendOut(big); n != len(big) {
		t.Fatalf("AppendOut = %d, want %d", n, len(big))
	}
	if n := p.AppendOut(make([]byte, 100)); n != 10 {
		t.Fatalf("AppendOut past capacity = %d, want 10", n)
	}
	out, err := p.TakeOut()
	if err != nil || len(out) != OutCap {
		t.Fatalf("TakeOut = %d bytes, %v", len(out), err)
	}
	if out, _ := p.TakeOut(); len(out) != 0 {
		t.Fatalf("TakeOut after take = %d bytes", len(out))
	}
	p.setOutLen(OutCap + 1) // a hostile guest
	if _, err := p.TakeOut(); err == nil {
		t.Fatal("TakeOut accepted a length beyond the buffer")
	}
	if _, err := NewPage(make([]byte, 10)); err == nil {
		t.Fatal("NewPage accepted a short region")
	}
}
