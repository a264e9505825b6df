package images

import (
	"bytes"
	"errors"
	"fmt"
)

var elfMagic = []byte("\x7fELF")

// ExtractVmlinux returns the uncompressed ELF kernel inside an x86 bzImage
// whose payload is xz-compressed, as Debian's kernels are.
//
// QEMU's -kernel wants a bzImage or, with PVH, an ELF vmlinux; the ELF is
// what detvm boots, because it skips the real-mode setup code and the
// in-guest decompressor, which are slow under TCG.
//
// The payload is found by searching for the xz magic rather than trusting
// the setup header, so an occurrence of the magic that is not the payload
// (or does not decode) is skipped in favour of the next.
func ExtractVmlinux(bzImage []byte) ([]byte, error) {
	var firstErr error
	for off := 0; ; off++ {
		i := bytes.Index(bzImage[off:], xzMagic)
		if i < 0 {
			break
		}
		off += i
		out, err := decodeXZStream(bzImage[off:])
		if err == nil && !bytes.HasPrefix(out, elfMagic) {
			err = fmt.Errorf("decompressed %d bytes, but they are not an ELF file", len(out))
		}
		if err == nil {
			return out, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("xz stream at offset %#x: %w", off, err)
		}
	}
	if firstErr != nil {
		return nil, fmt.Errorf("extracting vmlinux from bzImage: %w", firstErr)
	}
	return nil, errors.New("extracting vmlinux from bzImage: no xz stream found (is this an xz-compressed x86 bzImage?)")
}
