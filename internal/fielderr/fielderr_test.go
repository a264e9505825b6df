package fielderr

import "testing"

func TestError(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "x.yaml", Line: 3, Field: "duration", Problem: `"2 sec" is not a duration`, Hint: "use 2s"}, `x.yaml:3: duration: "2 sec" is not a duration; use 2s`},
		{Error{File: "x.yaml", Problem: "cannot read it", Hint: "check the path"}, "x.yaml: cannot read it; check the path"},
		{Error{Line: 1, Problem: "empty"}, "<input>:1: empty"},
		{Error{File: "x.yaml", Line: 2, Field: "name", Problem: "\"a\nb\" has a line break"}, `x.yaml:2: name: "a\nb" has a line break`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// TestList: the first problem is the one on the smallest line; on one line,
// the first found; an unnamed input is called Unnamed.
func TestList(t *testing.T) {
	l := List{Unnamed: "<scenario>"}
	if l.First() != nil {
		t.Fatal("empty list has a first error")
	}
	l.Fail(7, "b", "second", "")
	l.Fail(2, "a", "first", "")
	l.Fail(2, "c", "also on 2", "")
	if got, want := l.First().Error(), "<scenario>:2: a: first"; got != want {
		t.Errorf("first: %s, want %s", got, want)
	}
}
