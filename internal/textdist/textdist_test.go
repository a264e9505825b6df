package textdist

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"duration", "duration", 0}, {"duraton", "duration", 1},
		{"durtaion", "duration", 1}, {"kind", "knid", 1}, {"abc", "", 3}, {"nodes", "node", 1},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
