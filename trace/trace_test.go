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
		"a frame": func(e uint64, g []Guest) {
			if e == 2 {
				g[0].Net = []byte{1}
			}
		},
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

func TestCompare(t *testing.T) {
	mk := func(lines ...string) []Line {
		var out []Line
		for _, s := range lines {
			l, err := ParseLine(s)
			if err != nil {
				t.Fatal(err)
			}
			if l.Format() != s {
				t.Fatalf("Format(ParseLine(%q)) = %q", s, l.Format())
			}
			out = append(out, l)
		}
		return out
	}
	base := mk("0 aa n1=1 n2=2", "5 bb n1=3 n2=4", "9 cc n1=5 n2=6 #end")
	for _, tc := range []struct {
		name string
		b    []Line
		ok   bool
		want Divergence
	}{
		{"same", mk("0 aa n1=1 n2=2", "5 bb n1=3 n2=4", "9 cc n1=5 n2=6 #end"), true, Divergence{}},
		{"guest", mk("0 aa n1=1 n2=2", "5 bx n1=3 n2=X", "9 cx n1=5 n2=6 #end"), false, Divergence{Epoch: 5, Guest: "n2", What: "guest n2 differs"}},
		{"epoch", mk("0 aa n1=1 n2=2", "6 bb n1=3 n2=4"), false, Divergence{Epoch: 5, What: "activity at epoch 5 in one run only"}},
		{"shorter", mk("0 aa n1=1 n2=2", "5 bb n1=3 n2=4"), false, Divergence{Epoch: 5, What: "one trace ends after epoch 5"}},
	} {
		d, ok := Compare(base, tc.b)
		if ok != tc.ok || d != tc.want {
			t.Errorf("%s: Compare = %+v, %v; want %+v, %v", tc.name, d, ok, tc.want, tc.ok)
		}
	}
	if _, err := ParseLine("x"); err == nil {
		t.Error("ParseLine accepted garbage")
	}
}
