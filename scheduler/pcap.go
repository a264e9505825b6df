package scheduler

import (
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapSnaplen is tcpdump's own maximum. Frames are IPv4 packets (at most
// 65535 bytes when well formed); a guest could hand over a longer buffer, and
// that is truncated in the capture rather than rejected.
const pcapSnaplen = 262144

// PCAPWriter writes frames to a pcap stream with virtual timestamps, so that
// the same run produces a byte-identical capture.
//
// The link type is LINKTYPE_RAW (101): each record is a bare IP packet, which
// is exactly what a Frame carries. Timestamps have nanosecond resolution
// because the epoch length is given in nanoseconds: microsecond stamps would
// round epochs that are not whole microseconds, and two epochs could collide.
//
// A frame is stamped with the end of the epoch in which it was sent, i.e. the
// virtual start of SentEpoch+1, as time.Unix(0, 0).Add(virtual). That is the
// moment the controller took it off the sender's wire, so the capture reads
// like one taken at the switch's ingress: a frame held back by a delay rule
// keeps its sending time, and both copies of a duplicated packet carry the
// same stamp. A consequence is that when the writer is fed
// Deliver's output (ordered by DeliverEpoch) and rules delay frames,
// timestamps in the file need not be monotonic; tcpdump reads such files
// as they are.
type PCAPWriter struct {
	w     *pcapgo.Writer
	clock Clock
}

// NewPCAPWriter writes the pcap file header to w and returns a writer whose
// epochs are epochNS nanoseconds long.
func NewPCAPWriter(w io.Writer, epochNS uint64) (*PCAPWriter, error) {
	if epochNS == 0 {
		return nil, fmt.Errorf("scheduler: pcap writer needs a non-zero epoch length")
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(pcapSnaplen, layers.LinkTypeRaw); err != nil {
		return nil, fmt.Errorf("scheduler: writing pcap header: %w", err)
	}
	return &PCAPWriter{w: pw, clock: Clock{EpochNS: epochNS}}, nil
}

// Timestamp returns the capture time Write records for f.
func (p *PCAPWriter) Timestamp(f *Frame) time.Time {
	return time.Unix(0, 0).Add(p.clock.Start(satAdd(f.SentEpoch, 1)))
}

// Write appends one record per frame, in the order given.
func (p *PCAPWriter) Write(frames []Frame) error {
	for i := range frames {
		f := &frames[i]
		data := f.Data
		if len(data) > pcapSnaplen {
			data = data[:pcapSnaplen]
		}
		// pcapgo substitutes time.Now for a zero Timestamp; the Unix epoch
		// is not the zero time.Time, so the stamp stays virtual.
		ci := gopacket.CaptureInfo{
			Timestamp:     p.Timestamp(f),
			CaptureLength: len(data),
			Length:        len(f.Data),
		}
		if err := p.w.WritePacket(ci, data); err != nil {
			return fmt.Errorf("scheduler: writing frame src=%d seq=%d copy=%d to pcap: %w", f.Src, f.Seq, f.Copy, err)
		}
	}
	return nil
}
