package vmm

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed plugin/barrier.c
var pluginSource []byte

// PluginSourceHash identifies the barrier plugin's source.
func PluginSourceHash() string {
	s := sha256.Sum256(pluginSource)
	return hex.EncodeToString(s[:])
}

// BuildPlugin compiles the barrier plugin into dir, once per source hash,
// and returns the .so path. The C source is embedded, so a detvm binary
// needs only a C compiler to produce the plugin that matches it.
func BuildPlugin(dir string) (string, error) {
	out := filepath.Join(dir, "barrier-"+PluginSourceHash()[:16]+".so")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", fmt.Errorf("vmm: building the barrier plugin needs a C compiler (cc); run `make setup`")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(dir, "barrier.c")
	if err := os.WriteFile(src, pluginSource, 0o644); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	cmd := exec.Command(cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("vmm: compile barrier plugin: %v\n%s", err, b)
	}
	return out, os.Rename(tmp, out)
}
