package trace

import "testing"

func TestChain(t *testing.T) {
	run := func(mut func(epoch uint64, g []Guest)) string {
		var c Chain
		for e := uint64(0); e < 5; e++ {
			g := []Guest{{Name: "node-1", MonoNS: e * 1000, Console: []byte("x"), Events: nil}}
			if mut != nil {
				mut(e, g)
			}
			c.Add(e, g)
		}
		return c.Sum()
	}
	base := run(nil)
	if again := run(nil); again != base {
		t.Fatalf("same input, different hash: %s vs %s", base, again)
	}
	cases := map[string]func(uint64, []Guest){
		"console byte": func(e uint64, g []Guest) {
			if e == 3 {
				g[0].Console = []byte("y")
			}
		},
		"virtual time": func(e uint64, g []Guest) {
			if e == 4 {
				g[0].MonoNS++
			}
		},
		"bytes moved between fields": func(e uint64, g []Guest) {
			if e == 0 {
				g[0].Console, g[0].Events = nil, []byte("x")
			}
		},
		"name": func(e uint64, g []Guest) { g[0].Name = "node-2" },
	}
	for name, mut := range cases {
		if got := run(mut); got == base {
			t.Errorf("%s: change did not change the hash", name)
		}
	}
	var empty Chain
	if empty.Epochs() != 0 || len(empty.Sum()) != 64 {
		t.Fatalf("zero chain: %d epochs, sum %q", empty.Epochs(), empty.Sum())
	}
}
