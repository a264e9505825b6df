package sim

import (
	"bytes"
	"testing"

	"github.com/detvm/detvm/workload/history"
)

// TestDeterministic: a Config names one history, byte for byte, and the
// history is well formed with as many invocations as asked for.
func TestDeterministic(t *testing.T) {
	for name, gen := range map[string]func(Config) ([]byte, error){"registers": Registers, "list-append": ListAppend} {
		cfg := Config{Seed: 7, Ops: 500, InfoRate: 0.05, FailRate: 0.05, StaleRate: 0.05}
		a, err := gen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := gen(cfg)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: same config, different histories", name)
		}
		cfg.Seed++
		if c, _ := gen(cfg); bytes.Equal(a, c) {
			t.Fatalf("%s: the seed changes nothing", name)
		}
		ops, err := history.Read(bytes.NewReader(a))
		if err != nil {
			t.Fatal(err)
		}
		pairs, err := history.Pairs(ops)
		if err != nil {
			t.Fatal(err)
		}
		types := map[history.Type]int{}
		for _, p := range pairs {
			types[p.Completion.Type]++
		}
		if len(pairs) != cfg.Ops || types[history.OK] == 0 || types[history.Info] == 0 || types[history.Fail] == 0 {
			t.Fatalf("%s: %d ops, outcomes %v", name, len(pairs), types)
		}
	}
}
