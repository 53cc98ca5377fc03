// Command testreport reads `go test -json` on stdin and writes what go test
// itself would have printed, then how many tests were skipped. make test
// runs every package through it: a run whose assets are missing must not
// read as a pass, and a skip is easy to miss among a hundred "ok" lines.
//
// Packages named with -v are written out as by `go test -v` (less the
// === RUN, PAUSE and CONT lines); the others as by plain `go test`: the
// output of failed tests and packages, and one line per package. Lines that
// are not JSON (the go command's own errors) pass through.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// byDesign are the tests that skip in make test on every machine, with why:
// they are measurements that make bench runs (docs/performance.md). They are
// counted apart, so that on CI the count of the others is 0.
var byDesign = map[string]string{
	"github.com/credbroker/credbroker/e2e.TestScale":             "make bench (CREDBROKER_SCALE=1)",
	"github.com/credbroker/credbroker/e2e.TestRequestPath":       "make bench (CREDBROKER_SCALE=1)",
	"github.com/credbroker/credbroker/e2e.TestSideBySideWithESO": "make bench (CREDBROKER_ESO=…)",
}

func main() {
	verbose := flag.String("v", "", "comma-separated import paths of the packages to write out in full")
	flag.Parse()
	r := newReport(os.Stdout, strings.Split(*verbose, ","))
	err := r.read(os.Stdin)
	r.summary()
	if err == nil {
		err = r.err
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // of build-output
	Test       string
	Output     string
}

// report turns events into go test's output and remembers the skips.
type report struct {
	out     io.Writer
	verbose map[string]bool
	// held is output not written yet: a plain package's, per top-level test
	// (written if it fails) and per package (key pkg+"."; written in full
	// if the package fails, else only its last line: "ok …", "? …").
	held map[string][]string
	// why is the last line each test logged: a skipped test's reason.
	why      map[string]string
	skipped  []string // "pkg.Test: why"
	expected []string // skipped and in byDesign
	err      error    // the first write that failed
}

// print writes s unless a write failed before.
func (r *report) print(s string) {
	if r.err == nil {
		_, r.err = io.WriteString(r.out, s)
	}
}

func newReport(out io.Writer, verbose []string) *report {
	r := &report{out: out, verbose: map[string]bool{}, held: map[string][]string{}, why: map[string]string{}}
	for _, p := range verbose {
		r.verbose[p] = true
	}
	return r
}

func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var e event
		if line := sc.Bytes(); len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			r.print(sc.Text() + "\n")
			continue
		}
		r.event(e)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return r.err
}

func (r *report) event(e event) {
	root, _, _ := strings.Cut(e.Test, "/")
	key := e.Package + "." + root
	if t := strings.TrimSpace(e.Output); e.Action == "output" && e.Test != "" && t != "" && !marker(t) && !strings.HasPrefix(t, "--- ") {
		r.why[e.Package+"."+e.Test] = t
	}
	switch {
	case e.Action == "build-output":
		r.print(e.Output)
	case e.Action == "output" && r.verbose[e.Package]:
		if !marker(e.Output) {
			r.print(e.Output)
		}
	case e.Action == "output":
		r.held[key] = append(r.held[key], e.Output)
	case e.Action == "skip" && e.Test != "":
		r.skip(e.Package + "." + e.Test)
	case e.Action == "fail" && e.Test == root && e.Test != "":
		r.flush(key)
	case e.Action == "fail" && e.Test == "":
		// Tests still held never ended: the binary died under them.
		for k := range r.held {
			if strings.HasPrefix(k, e.Package+".") && k != key {
				r.flush(k)
			}
		}
		r.flush(key)
	case (e.Action == "pass" || e.Action == "skip") && e.Test == "":
		if lines := r.held[key]; len(lines) > 0 {
			r.print(lines[len(lines)-1])
		}
		delete(r.held, key)
	case e.Action == "pass" && e.Test == root:
		delete(r.held, key)
	}
}

// skip records a skipped test, with the last line it logged as the reason.
func (r *report) skip(name string) {
	if _, ok := byDesign[name]; ok {
		r.expected = append(r.expected, name)
		return
	}
	r.skipped = append(r.skipped, name+": "+r.why[name])
}

func (r *report) flush(key string) {
	for _, l := range r.held[key] {
		if !marker(l) && !strings.HasPrefix(strings.TrimSpace(l), "--- PASS") {
			r.print(l)
		}
	}
	delete(r.held, key)
}

// marker is a line of go test -v that says which test runs next.
func marker(line string) bool {
	return strings.HasPrefix(line, "=== RUN") || strings.HasPrefix(line, "=== PAUSE") || strings.HasPrefix(line, "=== CONT")
}

func (r *report) summary() {
	tests := "tests"
	if len(r.skipped) == 1 {
		tests = "test"
	}
	r.print(fmt.Sprintf("\n%d %s skipped", len(r.skipped), tests))
	if len(r.skipped) > 0 {
		r.print(":\n  " + strings.Join(r.skipped, "\n  "))
	}
	r.print("\n")
	for _, name := range r.expected {
		r.print(fmt.Sprintf("(and %s, skipped by design: it runs with %s)\n", name, byDesign[name]))
	}
}
