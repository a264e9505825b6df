package images

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"
)

// xzCompress compresses data with ulikunitz/xz, which writes LZMA2-only
// streams (no BCJ filter).
func xzCompress(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeELF returns a payload that looks like a vmlinux to ExtractVmlinux:
// ELF magic followed by compressible but non-trivial bytes.
func fakeELF(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := []byte("\x7fELF\x02\x01\x01")
	for len(b) < 64<<10 {
		b = append(b, byte(r.IntN(16)))
	}
	return b
}

// fakeBzImage mimics an x86 bzImage: setup code, the xz payload, and
// trailing data, with no guarantee that the xz stream is aligned.
func fakeBzImage(t *testing.T, payload []byte) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(42, 42))
	var b []byte
	for range 3001 {
		b = append(b, byte(r.UintN(256)))
	}
	b = append(b, xzCompress(t, payload)...)
	return append(b, []byte("trailing garbage, as the setup code's data follows the payload")...)
}

func TestExtractVmlinux(t *testing.T) {
	elfPayload := fakeELF(1)
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr string
	}{
		{"bzImage", fakeBzImage(t, elfPayload), elfPayload, ""},
		{"magic only in prefix", append(append([]byte("junk"), xzMagic...), fakeBzImage(t, elfPayload)...), elfPayload, ""},
		{"no magic", bytes.Repeat([]byte("not a kernel "), 1000), nil, "no xz stream found"},
		{"not ELF", fakeBzImage(t, []byte("#!/bin/sh\necho this is not a kernel\n")), nil, "not an ELF file"},
		{"truncated stream", fakeBzImage(t, elfPayload)[:4000], nil, "offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExtractVmlinux(tt.in)
			if tt.wantErr != "" {
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want the %d-byte payload", len(got), len(tt.want))
			}
		})
	}
}

// TestDecodeXZStreamCLI checks the container parser and the BCJ x86 filter
// against streams from xz(1), which is how kernels are compressed.
func TestDecodeXZStreamCLI(t *testing.T) {
	xzBin, err := exec.LookPath("xz")
	if err != nil {
		t.Skip("xz(1) not installed; it produces the BCJ streams this test needs")
	}
	// Something x86-like, so that the BCJ filter has E8/E9 to rewrite:
	// this very test binary.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	code = code[:min(len(code), 1<<20)]
	in := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(in, code, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"x86 crc32 like Linux", []string{"--check=crc32", "--x86", "--lzma2=dict=1MiB"}},
		{"x86 crc64 multi-block", []string{"--check=crc64", "--x86", "--lzma2=dict=1MiB", "--block-size=256KiB"}},
		{"x86 start offset sha256", []string{"--check=sha256", "--x86=start=4096", "--lzma2=preset=1"}},
		{"lzma2 no check", []string{"--check=none", "--lzma2=preset=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--format=xz", "-c"}, tt.args...)
			out, err := exec.Command(xzBin, append(args, in)...).Output()
			if err != nil {
				t.Fatalf("xz %v: %v", args, err)
			}
			got, err := decodeXZStream(append(out, "more data"...))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, code) {
				t.Fatal("decoded data differs from the input")
			}
			// A flipped bit in the last block's data must be caught
			// by the check, not returned.
			bad := bytes.Clone(out)
			bad[len(bad)/2] ^= 0x10
			if _, err := decodeXZStream(bad); err == nil && tt.args[0] != "--check=none" {
				t.Fatal("corrupt stream decoded without error")
			}
		})
	}
}
