package main

import (
	"bytes"
	"strings"
	"testing"
)

// Lines of `go test -json` as Go 1.26 writes them (times left out).
const (
	passing = `{"Action":"output","Package":"x/a","Output":"TestMain says hi\n"}
{"Action":"run","Package":"x/a","Test":"TestPass"}
{"Action":"output","Package":"x/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"x/a","Test":"TestPass","Output":"    a_test.go:4: quiet\n"}
{"Action":"output","Package":"x/a","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"x/a","Test":"TestPass"}
{"Action":"output","Package":"x/a","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Action":"output","Package":"x/a","Test":"TestSkip","Output":"    a_test.go:5: no widget: make widget\n"}
{"Action":"output","Package":"x/a","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Action":"skip","Package":"x/a","Test":"TestSkip"}
{"Action":"output","Package":"x/a","Test":"TestSub/skips","Output":"    a_test.go:6: sub reason\n"}
{"Action":"output","Package":"x/a","Test":"TestSub/skips","Output":"--- SKIP: TestSub/skips (0.00s)\n"}
{"Action":"skip","Package":"x/a","Test":"TestSub/skips"}
{"Action":"output","Package":"x/a","Test":"TestSub","Output":"--- PASS: TestSub (0.00s)\n"}
{"Action":"pass","Package":"x/a","Test":"TestSub"}
{"Action":"output","Package":"x/a","Output":"PASS\n"}
{"Action":"output","Package":"x/a","Output":"ok  \tx/a\t0.024s\n"}
{"Action":"pass","Package":"x/a"}
`
	failing = `{"Action":"output","Package":"x/b","Test":"TestFail","Output":"=== RUN   TestFail\n"}
{"Action":"output","Package":"x/b","Test":"TestFail","Output":"    b_test.go:3: context\n"}
{"Action":"output","Package":"x/b","Test":"TestFail/inner","Output":"    b_test.go:3: boom\n"}
{"Action":"output","Package":"x/b","Test":"TestFail/inner","Output":"--- FAIL: TestFail/inner (0.00s)\n"}
{"Action":"fail","Package":"x/b","Test":"TestFail/inner"}
{"Action":"output","Package":"x/b","Test":"TestFail","Output":"--- FAIL: TestFail (0.00s)\n"}
{"Action":"fail","Package":"x/b","Test":"TestFail"}
{"Action":"output","Package":"x/b","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"x/b","Test":"TestPass"}
{"Action":"output","Package":"x/b","Output":"FAIL\n"}
{"Action":"output","Package":"x/b","Output":"FAIL\tx/b\t0.174s\n"}
{"Action":"fail","Package":"x/b"}
`
	died = `{"Action":"output","Package":"x/c","Output":"FAIL: kube-apiserver and etcd is missing: run make testbin\n"}
{"Action":"output","Package":"x/c","Output":"FAIL\tx/c\t0.01s\n"}
{"Action":"fail","Package":"x/c"}
{"ImportPath":"x/d [x/d.test]","Action":"build-output","Output":"# x/d\n"}
go: some error of the go command
`
	designed = `{"Action":"output","Package":"github.com/credbroker/credbroker/e2e","Test":"TestScale","Output":"    scale_test.go:62: make bench\n"}
{"Action":"skip","Package":"github.com/credbroker/credbroker/e2e","Test":"TestScale"}
`
)

func TestReportWritesWhatGoTestWouldAndCountsTheSkips(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		verbose  []string
		want     string
	}{
		{"a passing package is its ok line", passing, nil,
			"ok  \tx/a\t0.024s\n\n2 tests skipped:\n  x/a.TestSkip: a_test.go:5: no widget: make widget\n  x/a.TestSub/skips: a_test.go:6: sub reason\n"},
		{"a verbose package is all but the markers", passing, []string{"x/a"},
			"TestMain says hi\n    a_test.go:4: quiet\n--- PASS: TestPass (0.00s)\n    a_test.go:5: no widget: make widget\n--- SKIP: TestSkip (0.00s)\n" +
				"    a_test.go:6: sub reason\n--- SKIP: TestSub/skips (0.00s)\n--- PASS: TestSub (0.00s)\nPASS\nok  \tx/a\t0.024s\n" +
				"\n2 tests skipped:\n  x/a.TestSkip: a_test.go:5: no widget: make widget\n  x/a.TestSub/skips: a_test.go:6: sub reason\n"},
		{"a failed test is written in full, a passed one not", failing, nil,
			"    b_test.go:3: context\n    b_test.go:3: boom\n--- FAIL: TestFail/inner (0.00s)\n--- FAIL: TestFail (0.00s)\nFAIL\nFAIL\tx/b\t0.174s\n\n0 tests skipped\n"},
		{"a failed package, build output and the go command's errors are written", died, nil,
			"FAIL: kube-apiserver and etcd is missing: run make testbin\nFAIL\tx/c\t0.01s\n# x/d\ngo: some error of the go command\n\n0 tests skipped\n"},
		{"one skip", passing[strings.Index(passing, `{"Action":"output","Package":"x/a","Test":"TestSub/skips"`):], nil,
			"ok  \tx/a\t0.024s\n\n1 test skipped:\n  x/a.TestSub/skips: a_test.go:6: sub reason\n"},
		{"skips by design are counted apart", designed, nil,
			"\n0 tests skipped\n(and github.com/credbroker/credbroker/e2e.TestScale, skipped by design: it runs with make bench (CREDBROKER_SCALE=1))\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := newReport(&out, tc.verbose)
			if err := r.read(strings.NewReader(tc.in)); err != nil {
				t.Fatal(err)
			}
			r.summary()
			if out.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), tc.want)
			}
		})
	}
}
