package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestHistory runs the scripts in testdata/. Commands:
//
//	record                 drive a Recorder, one call per input line; the clock
//	                       advances by 10 each time it is read:
//	  invoke P F KEY VALUE   (KEY "-" for none, VALUE raw JSON)
//	  ok P [VALUE]           complete process P's outstanding op
//	  fail P [REASON...]
//	  info P [REASON...]
//	                       prints the lines written, and errors as "error: ..."
//	read                   parse the input as a history file; one op per line
//	pairs                  parse, then pair invocations with completions
//	txn                    decode the input as a txn value; print it and re-encode
//
// Run with -rewrite to regenerate the expected output.
func TestHistory(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "record":
				return record(t, d)
			case "read":
				ops, err := Read(strings.NewReader(d.Input))
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				var b strings.Builder
				for _, op := range ops {
					fmt.Fprintln(&b, op)
				}
				return b.String()
			case "pairs":
				ops, err := Read(strings.NewReader(d.Input))
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				pairs, err := Pairs(ops)
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				var b strings.Builder
				for _, p := range pairs {
					fmt.Fprintf(&b, "id=%d pending=%t\n  %v\n  %v\n", p.ID(), p.Pending(), p.Invoke, p.Completion)
				}
				return b.String()
			case "txn":
				txn, err := ParseTxn(json.RawMessage(d.Input))
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				enc, err := json.Marshal(txn)
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				return fmt.Sprintf("%v\n%s\n", txn, enc)
			default:
				d.Fatalf(t, "unknown command %s", d.Cmd)
				return ""
			}
		})
	})
}

func record(t *testing.T, d *datadriven.TestData) string {
	var out bytes.Buffer
	var clock int64
	r := NewRecorder(&out, func() int64 { clock += 10; return clock })
	outstanding := map[int]Op{}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			d.Fatalf(t, "bad line %q", line)
		}
		p, err := strconv.Atoi(f[1])
		if err != nil {
			d.Fatalf(t, "bad process in %q", line)
		}
		before := out.Len()
		switch f[0] {
		case "invoke":
			if len(f) != 5 {
				d.Fatalf(t, "want: invoke P F KEY VALUE")
			}
			key := f[3]
			if key == "-" {
				key = ""
			}
			var op Op
			op, err = r.Invoke(p, f[2], key, json.RawMessage(f[4]))
			if err == nil {
				outstanding[p] = op
			}
		case "ok":
			var v any
			if len(f) > 2 {
				v = json.RawMessage(strings.Join(f[2:], " "))
			}
			_, err = r.Ok(outstanding[p], v)
		case "fail", "info":
			var reason error
			if len(f) > 2 {
				reason = errors.New(strings.Join(f[2:], " "))
			}
			if f[0] == "fail" {
				_, err = r.Fail(outstanding[p], reason)
			} else {
				_, err = r.Info(outstanding[p], reason)
			}
		default:
			d.Fatalf(t, "unknown call %q", f[0])
		}
		b.Write(out.Bytes()[before:])
		if err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
		}
	}
	return b.String()
}

// TestRecorderConcurrent has many goroutines record at once and checks that
// the file reads back as a well-formed history with dense indices: the
// Recorder is the only serialisation point the workload has.
func TestRecorderConcurrent(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	var clock int64
	r := NewRecorder(&out, func() int64 { mu.Lock(); defer mu.Unlock(); clock++; return clock })
	const procs, each = 8, 200
	var wg sync.WaitGroup
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				op, err := r.Invoke(p, FWrite, "x", p*each+i)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := r.Ok(op, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ops, err := Read(&out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2*procs*each {
		t.Fatalf("read %d ops, want %d", len(ops), 2*procs*each)
	}
	for i, op := range ops {
		if op.Index != int64(i) {
			t.Fatalf("op %d has index %d", i, op.Index)
		}
		if i > 0 && op.Time < ops[i-1].Time {
			t.Fatalf("op %d: time %d before %d", i, op.Time, ops[i-1].Time)
		}
	}
	pairs, err := Pairs(ops)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if p.Pending() || p.Completion.Type != OK || !bytes.Equal(p.Invoke.Value, p.Completion.Value) {
			t.Fatalf("bad pair %v / %v", p.Invoke, p.Completion)
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(b), nil
}

// TestRecorderWriteError: once a line cannot be written the history is cut,
// and every later call says so rather than pretending to record.
func TestRecorderWriteError(t *testing.T) {
	r := NewRecorder(&failWriter{n: 1}, func() int64 { return 0 })
	op, err := r.Invoke(0, FRead, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Ok(op, 3); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Ok after a failed write: %v", err)
	}
	if _, err := r.Invoke(1, FRead, "y", nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Invoke after a failed write: %v", err)
	}
}

// TestTxnValueRoundTrip: a transaction built with the helpers survives the
// trip through a recorded file, including the difference between a read
// not yet done (null) and a read of an empty list.
func TestTxnValueRoundTrip(t *testing.T) {
	var out bytes.Buffer
	r := NewRecorder(&out, func() int64 { return 7 })
	inv, err := r.Invoke(3, FTxn, "", Txn{Append("x", 1), ReadKey("y"), ReadKey("z")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Ok(inv, Txn{Append("x", 1), ReadResult("y", nil), ReadResult("z", []int64{4, 5})}); err != nil {
		t.Fatal(err)
	}
	ops, err := Read(&out)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseTxn(ops[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	done, err := ParseTxn(ops[1].Value)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(in, " ", done); got != "[append x 1, r y nil, r z nil] [append x 1, r y [], r z [4 5]]" {
		t.Fatalf("got %s", got)
	}
	if in[1].Read != nil || done[1].Read == nil || len(done[1].Read) != 0 {
		t.Fatal("null and [] reads are not told apart")
	}
}

func TestParseRegister(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"5", "5 true <nil>"},
		{"null", "0 false <nil>"},
		{"", "0 false <nil>"},
		{`"5"`, `0 false register value "5": want an int or null`},
	} {
		v, ok, err := ParseRegister(json.RawMessage(tc.in))
		if got := fmt.Sprint(v, " ", ok, " ", err); got != tc.want {
			t.Errorf("ParseRegister(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	from, to, err := ParseCAS(json.RawMessage("[1, 2]"))
	if from != 1 || to != 2 || err != nil {
		t.Errorf("ParseCAS = %d %d %v", from, to, err)
	}
	if _, _, err := ParseCAS(json.RawMessage("[1]")); err == nil {
		t.Error("ParseCAS([1]) did not fail")
	}
}

// TestFastTxnAgrees: the reflection-free decoder either gives up or agrees
// with encoding/json, on shapes it handles and on ones it must refuse.
func TestFastTxnAgrees(t *testing.T) {
	const handled = 6 // the first inputs are the common shapes
	for i, in := range []string{
		`[]`, ` [ ] `, `[["append","x",1]]`, `[["append", 12, -3], ["r", "y", null], ["r","z",[]]]`,
		"[\n [\"r\" ,\t\"x\" , [ 1 , 2,3 ] ] ]", `[["r","x",[9223372036854775807,-9223372036854775808]]]`,
		`[["r","x",[9223372036854775808]]]`, `[["r","x",[-9223372036854775809]]]`, `[["r","x",[18446744073709551616]]]`, `[["r","x",[99999999999999999999]]]`, `[["append","x",1.0]]`, `[["append","x",1e3]]`, `[["append","x",01]]`,
		`[["app\u0065nd","x",1]]`, `[["append","\u0078",1]]`, `[["append","x",1,2]]`, `[["append","x"]]`,
		`[["r","x",nul]]`, `[["r","x",[1,]]]`, `[["r","x",[1 2]]]`, `[["w","x",1]]`, `[["append",true,1]]`,
		`[["append","x",1]] x`, `[["append","x",1],]`, `[["append","x",-]]`, `[["append","x",-0]]`, `[["r",-0,[]]]`,
	} {
		var slow Txn
		slowErr := json.Unmarshal([]byte(in), &slow)
		fast, ok := fastTxn([]byte(in))
		if !ok {
			if i < handled {
				t.Errorf("%s: the fast decoder gave up on a shape it should handle", in)
			}
			continue
		}
		if slowErr != nil {
			t.Errorf("%s: fast decoded %v, encoding/json refused: %v", in, fast, slowErr)
			continue
		}
		a, _ := json.Marshal(slow)
		b, _ := json.Marshal(fast)
		if !bytes.Equal(a, b) || (len(slow) > 0 && slow[0].F == MicroRead && (slow[0].Read == nil) != (fast[0].Read == nil)) {
			t.Errorf("%s: fast %s, encoding/json %s", in, b, a)
		}
	}
}

// TestLineEncoding: the hand-written line is exactly json.Marshal's, so the
// file is ordinary JSON whatever wrote it.
func TestLineEncoding(t *testing.T) {
	for _, op := range []Op{
		{},
		{Index: 3, Type: OK, Process: -2, F: FRead, Key: "x", Value: json.RawMessage("5"), Time: 1 << 60},
		{Index: 4, Type: Info, F: "f<&>\"\\\n", Key: "ключ", Value: json.RawMessage(`[["r","x",[1,2]]]`), Error: "timed out: \"deadline\"\t<x>"},
		{Type: Fail, F: FTxn, Value: json.RawMessage("null"), Error: "\x00\u2028"},
	} {
		want, err := json.Marshal(op)
		if err != nil {
			t.Fatal(err)
		}
		if got := op.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	txn := Txn{Append("x", -1), ReadKey("y"), ReadResult("z<", nil), ReadResult("w", []int64{1, 2, 3})}
	got, err := marshalValue(txn)
	if err != nil {
		t.Fatal(err)
	}
	var generic []any
	for _, m := range txn {
		if m.F == MicroAppend {
			generic = append(generic, []any{m.F, m.Key, m.Value})
		} else {
			generic = append(generic, []any{m.F, m.Key, m.Read})
		}
	}
	if want, _ := json.Marshal(generic); !bytes.Equal(got, want) {
		t.Errorf("txn: got %s, want %s", got, want)
	}
	if _, err := marshalValue(Txn{{F: "w", Key: "x"}}); err == nil {
		t.Error("a micro-op with f w was encoded")
	}
	if got, _ := marshalValue(json.RawMessage("[1,\n 2]")); string(got) != "[1,2]" {
		t.Errorf("raw value not compacted to one line: %q", got)
	}
}

// BenchmarkRecordTxn records list-append transactions with reads of 100
// elements, the sidecar's hot path.
func BenchmarkRecordTxn(b *testing.B) {
	list := make([]int64, 100)
	for i := range list {
		list[i] = int64(i)
	}
	r := NewRecorder(io.Discard, func() int64 { return 0 })
	in := Txn{Append("x", 1), ReadKey("y"), ReadKey("z")}
	out := Txn{Append("x", 1), ReadResult("y", list), ReadResult("z", list)}
	b.ReportAllocs()
	for range b.N {
		op, err := r.Invoke(0, FTxn, "", in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Ok(op, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadTxn parses such a history back and decodes the values, the
// auditor's side.
func BenchmarkReadTxn(b *testing.B) {
	list := make([]int64, 100)
	for i := range list {
		list[i] = int64(i)
	}
	var buf bytes.Buffer
	r := NewRecorder(&buf, func() int64 { return 0 })
	for range 1000 {
		op, _ := r.Invoke(0, FTxn, "", Txn{Append("x", 1), ReadKey("y")})
		_, _ = r.Ok(op, Txn{Append("x", 1), ReadResult("y", list)})
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for range b.N {
		ops, err := Read(bytes.NewReader(buf.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		for _, op := range ops {
			if _, err := ParseTxn(op.Value); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestFastOpAgrees: the reflection-free line decoder either gives up or
// agrees with encoding/json.
func TestFastOpAgrees(t *testing.T) {
	const handled = 3 // the first lines are what the Recorder writes
	for i, in := range []string{
		`{"index":0,"type":"invoke","process":0,"f":"read","key":"x","value":null,"time":5}`,
		`{"index":7,"type":"ok","process":-3,"f":"txn","value":[["r","x",[1,2]],["append","y",3]],"time":9,"error":"x"}`,
		` { "time" : 1 , "f" : "w" , "process" : 2 , "type" : "info" , "index" : 3 , "value" : {"a":"]\"}"} } ` + "\n",
		`{"index":0,"type":"ok","process":0,"f":"read","value":"a\\"b","time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":1 2,"time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":nul,"time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":[1,,2],"time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":5,"time":5,"time":6}`,
		`{"Index":0,"type":"ok","process":0,"f":"read","value":5,"time":5}`,
		`{"index":1.5,"type":"ok","process":0,"f":"read","value":5,"time":5}`,
		`{"index":0,"type":"ok","process":99999999999999999999,"f":"read","value":5,"time":5}`,
		`{"index":0,"type":"okay","process":0,"f":"read","value":5,"time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"","value":5,"time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":5}`,
		`{"index":0,"type":"ok","process":0,"f":"read","key":null,"value":5,"time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"r\u0065ad","value":5,"time":5}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":5,"time":5,"extra":1}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":5,"time":5} {}`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":5,"time":5`,
		`{"index":0,"type":"ok","process":0,"f":"read","value":[1,2,"time":5}`,
	} {
		slow, slowErr := slowOp([]byte(in))
		fast, ok := fastOp([]byte(in))
		if !ok {
			if i < handled {
				t.Errorf("%s: the fast decoder gave up on a shape it should handle", in)
			}
			continue
		}
		if slowErr != nil {
			t.Errorf("%s: fast decoded %v, encoding/json refused: %v", in, fast, slowErr)
			continue
		}
		fast.Value, slow.Value = compact(t, fast.Value), compact(t, slow.Value)
		if fmt.Sprintf("%#v", fast) != fmt.Sprintf("%#v", slow) {
			t.Errorf("%s:\nfast %#v\nslow %#v", in, fast, slow)
		}
	}
}

func compact(t *testing.T, raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
