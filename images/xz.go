package images

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// xzMagic opens every xz stream (xz file format spec, section 2.1.1.1).
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// Filter IDs from the xz file format spec, section 5.3.
const (
	filterX86   = 0x04
	filterLZMA2 = 0x21
)

// maxDictCap bounds the LZMA2 dictionary we are willing to allocate: a
// corrupt or accidental header could otherwise ask for 4 GiB.
const maxDictCap = 1 << 30

var crc64Table = crc64.MakeTable(crc64.ECMA)

// decodeXZStream decodes the single xz stream at the start of b and ignores
// whatever follows it.
//
// ulikunitz/xz only accepts a lone LZMA2 filter, but Linux compresses x86
// kernels with `xz --x86`, i.e. a BCJ x86 filter in front of LZMA2. So the
// container is parsed here and only the LZMA2 layer is delegated to
// ulikunitz/xz/lzma; the BCJ step is undone by bcjX86Decode.
func decodeXZStream(b []byte) ([]byte, error) {
	if len(b) < 12 || !bytes.HasPrefix(b, xzMagic) {
		return nil, errors.New("xz: no stream header")
	}
	flags := b[6:8]
	if crc32.ChecksumIEEE(flags) != binary.LittleEndian.Uint32(b[8:12]) {
		return nil, errors.New("xz: stream header CRC mismatch")
	}
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return nil, errors.New("xz: unsupported stream flags")
	}
	check := flags[1] & 0x0f

	var out []byte
	pos := 12
	for {
		if pos >= len(b) {
			return nil, io.ErrUnexpectedEOF
		}
		if b[pos] == 0 {
			// Index indicator: all blocks are done. The index and
			// footer are not needed to produce the data, and each
			// block's check has already vouched for its contents.
			return out, nil
		}
		data, next, err := decodeXZBlock(b, pos, check)
		if err != nil {
			return nil, err
		}
		out = append(out, data...)
		pos = next
	}
}

// decodeXZBlock decodes the block whose header starts at b[pos] and returns
// its data and the offset just past the block's check field.
func decodeXZBlock(b []byte, pos int, check byte) ([]byte, int, error) {
	hlen := (int(b[pos]) + 1) * 4
	if pos+hlen > len(b) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	hdr := b[pos : pos+hlen]
	if crc32.ChecksumIEEE(hdr[:hlen-4]) != binary.LittleEndian.Uint32(hdr[hlen-4:]) {
		return nil, 0, errors.New("xz: block header CRC mismatch")
	}
	bflags := hdr[1]
	if bflags&0x3c != 0 {
		return nil, 0, errors.New("xz: unsupported block flags")
	}
	p := hdr[2 : hlen-4]
	compSize, uncompSize := int64(-1), int64(-1)
	var err error
	if bflags&0x40 != 0 {
		if compSize, p, err = readVLI(p); err != nil {
			return nil, 0, err
		}
	}
	if bflags&0x80 != 0 {
		if uncompSize, p, err = readVLI(p); err != nil {
			return nil, 0, err
		}
	}

	nfilters := int(bflags&0x03) + 1
	var (
		bcj      bool
		bcjStart uint32
		dictCap  int64 = -1
	)
	for i := 0; i < nfilters; i++ {
		var id, size int64
		if id, p, err = readVLI(p); err != nil {
			return nil, 0, err
		}
		if size, p, err = readVLI(p); err != nil {
			return nil, 0, err
		}
		if size > int64(len(p)) {
			return nil, 0, errors.New("xz: truncated filter properties")
		}
		props := p[:size]
		p = p[size:]
		last := i == nfilters-1
		switch {
		case id == filterLZMA2 && last && size == 1:
			if dictCap, err = lzma.DecodeDictCap(props[0]); err != nil {
				return nil, 0, fmt.Errorf("xz: %w", err)
			}
		case id == filterX86 && !last && !bcj && (size == 0 || size == 4):
			bcj = true
			if size == 4 {
				bcjStart = binary.LittleEndian.Uint32(props)
			}
		default:
			return nil, 0, fmt.Errorf("xz: unsupported filter chain (filter %#x at position %d of %d)", id, i+1, nfilters)
		}
	}
	if dictCap < 0 {
		return nil, 0, errors.New("xz: filter chain does not end in LZMA2")
	}
	if dictCap > maxDictCap {
		return nil, 0, fmt.Errorf("xz: LZMA2 dictionary of %d bytes is implausibly large", dictCap)
	}
	if !allZero(p) {
		return nil, 0, errors.New("xz: non-zero block header padding")
	}

	start := pos + hlen
	r := bytes.NewReader(b[start:])
	lz, err := lzma.Reader2Config{DictCap: int(max(dictCap, lzma.MinDictCap))}.NewReader2(r)
	if err != nil {
		return nil, 0, fmt.Errorf("xz: %w", err)
	}
	var data []byte
	if uncompSize >= 0 {
		data = make([]byte, 0, uncompSize)
	}
	buf := bytes.NewBuffer(data)
	if _, err := buf.ReadFrom(lz); err != nil {
		return nil, 0, fmt.Errorf("xz: LZMA2: %w", err)
	}
	data = buf.Bytes()
	// Reader2 pulls bytes one chunk at a time and never reads ahead of the
	// end-of-payload marker, so what it left unread starts at the padding.
	end := len(b) - r.Len()
	if compSize >= 0 && int64(end-start) != compSize {
		return nil, 0, errors.New("xz: block compressed size mismatch")
	}
	if uncompSize >= 0 && int64(len(data)) != uncompSize {
		return nil, 0, errors.New("xz: block uncompressed size mismatch")
	}
	if bcj {
		bcjX86Decode(data, bcjStart)
	}

	// Block padding aligns to 4 bytes from the stream start; block headers
	// are multiples of 4, so aligning compressed size alone suffices.
	padded := start + (end-start+3)&^3
	csize, h := checkFor(check)
	if padded+csize > len(b) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	if !allZero(b[end:padded]) {
		return nil, 0, errors.New("xz: non-zero block padding")
	}
	if h != nil {
		h.Write(data)
		if !bytes.Equal(h.Sum(nil), b[padded:padded+csize]) {
			return nil, 0, errors.New("xz: block check mismatch (corrupt data)")
		}
	}
	return data, padded + csize, nil
}

// checkFor returns the size of a block's check field for the stream's check
// type, and a hash to verify it with, or nil for types this package cannot
// verify (the spec only reserves their sizes).
func checkFor(check byte) (int, hash.Hash) {
	switch check {
	case 0x00:
		return 0, nil
	case 0x01:
		return 4, crc32LE{crc32.NewIEEE()}
	case 0x04:
		return 8, crc64LE{crc64.New(crc64Table)}
	case 0x0a:
		return 32, sha256.New()
	}
	return 4 << ((check - 1) / 3), nil
}

// crc32LE and crc64LE emit their sums little-endian, as xz stores them,
// where hash/crc* are big-endian.
type crc32LE struct{ hash.Hash32 }

func (c crc32LE) Sum(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, c.Sum32()) }

type crc64LE struct{ hash.Hash64 }

func (c crc64LE) Sum(b []byte) []byte { return binary.LittleEndian.AppendUint64(b, c.Sum64()) }

// readVLI decodes an xz variable-length integer (spec section 1.2).
func readVLI(p []byte) (int64, []byte, error) {
	var v uint64
	for i := 0; i < 9 && i < len(p); i++ {
		c := p[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, nil, errors.New("xz: non-minimal integer encoding")
			}
			return int64(v), p[i+1:], nil
		}
	}
	return 0, nil, errors.New("xz: bad integer encoding")
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// bcjX86Decode undoes the xz BCJ x86 filter in place. The filter rewrote
// the relative targets of E8/E9 (CALL/JMP rel32) into absolute addresses to
// help LZMA find repeats; this converts them back. It is a direct port of
// bcj_x86 in XZ Embedded (public domain), run over the whole buffer in one
// call, which is equivalent to streaming since the decoder state only
// carries across its own loop.
func bcjX86Decode(buf []byte, startPos uint32) {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	msByte := func(b byte) bool { return b == 0x00 || b == 0xff }

	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskToBitNum[prevMask])]
				if !maskToAllowed[prevMask] || msByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !msByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (startPos + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !msByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= -(dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
