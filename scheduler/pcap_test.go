package scheduler

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

func TestPCAP(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	// 1.0005 ms: not a whole number of microseconds, so a microsecond pcap
	// would round the stamps.
	const epochNS = 1_000_500
	s := NewSwitch(addrs)
	s.SetRules([]Rule{{Src: 1, Dst: 0, DelayEpochs: 2}})
	for _, tc := range []struct {
		epoch    uint64
		src, dst int
		id       string
	}{
		{0, 0, 1, "first"},
		{0, 1, 0, "late"}, // delayed: delivered with a frame sent two epochs after it
		{2, 0, 1, "second"},
		{4000, 0, 1, "much-later"},
	} {
		p, err := testPacket(addrs[tc.src], addrs[tc.dst], 64, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		s.Send(tc.epoch, tc.src, [][]byte{p})
	}
	frames := append(s.Deliver(3), s.Deliver(4001)...)
	if len(frames) != 4 {
		t.Fatalf("delivered %d frames, want 4", len(frames))
	}

	write := func() []byte {
		var buf bytes.Buffer
		w, err := NewPCAPWriter(&buf, epochNS)
		if err != nil {
			t.Fatal(err)
		}
		// Two calls, as a driver would make per epoch.
		if err := w.Write(frames[:2]); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(frames[2:]); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	file := write()
	if again := write(); !bytes.Equal(file, again) {
		t.Fatal("the same frames produced two different pcap files")
	}

	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Errorf("link type %v, want %v", r.LinkType(), layers.LinkTypeRaw)
	}
	// Reader.Resolution in gopacket v1.1.19 reports the two resolutions
	// swapped, so look at the magic number itself.
	if magic := binary.LittleEndian.Uint32(file[:4]); magic != 0xa1b23c4d {
		t.Errorf("pcap magic %#x, want the nanosecond-resolution magic 0xa1b23c4d", magic)
	}
	clock := Clock{EpochNS: epochNS}
	var n int
	for ; ; n++ {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n >= len(frames) {
			t.Fatalf("more records than the %d frames written", len(frames))
		}
		f := frames[n]
		// Documented stamp: the end of the sending epoch.
		want := time.Unix(0, 0).Add(time.Duration((f.SentEpoch + 1) * epochNS))
		if !ci.Timestamp.Equal(want) {
			t.Errorf("record %d (sent in epoch %d): timestamp %v, want %v", n, f.SentEpoch, ci.Timestamp, want)
		}
		if got := clock.Start(f.SentEpoch + 1); !ci.Timestamp.Equal(time.Unix(0, 0).Add(got)) {
			t.Errorf("record %d: timestamp disagrees with Clock.Start", n)
		}
		if ci.CaptureLength != len(f.Data) || ci.Length != len(f.Data) {
			t.Errorf("record %d: lengths %d/%d, want %d", n, ci.CaptureLength, ci.Length, len(f.Data))
		}
		if !bytes.Equal(data, f.Data) {
			t.Errorf("record %d: data differs from the frame", n)
		}
		// A reader that knows only the link type finds the IPv4 header.
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatalf("record %d: no IPv4 layer: %v", n, pkt.ErrorLayer())
		}
		if !ip.DstIP.Equal(addrs[f.Dst].AsSlice()) {
			t.Errorf("record %d: IPv4 dst %v, want %v", n, ip.DstIP, addrs[f.Dst])
		}
	}
	if n != len(frames) {
		t.Errorf("read %d records, want %d", n, len(frames))
	}
}

func TestPCAPRejectsZeroEpoch(t *testing.T) {
	if _, err := NewPCAPWriter(io.Discard, 0); err == nil {
		t.Fatal("NewPCAPWriter accepted a zero epoch length")
	}
}
