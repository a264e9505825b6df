// Package images builds what a detvm guest boots from: the uncompressed
// kernel taken out of Debian's linux-image package, kernel modules, and a
// reproducible initramfs holding the guest's binaries and their shared
// libraries.
//
// Everything here is a pure function of its inputs, so that two runs with
// the same kernel package and the same binaries boot byte-identical images,
// which detvm's determinism depends on. Derived files are written
// content-addressed or atomically, so a crash or a concurrent run never
// leaves a half-written file that a later run would trust.
package images
