package testenv

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// builds caches Build's binaries for the life of the test binary: several
// tests of a package run the same program.
var builds sync.Map // package path → func() (string, error)

// Build compiles a main package of this module (a path as go build takes
// it, relative to the test's package) once per test binary run. It builds
// as hack/image.sh does (static, trimmed paths, no symbols), so that the
// image tests put these very binaries into the image (ImageBinaries) instead
// of compiling the whole module a second time with other flags.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	abs, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	once, _ := builds.LoadOrStore(abs, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "credbroker-bin-")
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, filepath.Base(abs))
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, abs)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", &buildError{pkg: pkg, out: string(msg), err: err}
		}
		return out, nil
	}))
	bin, err := once.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// ImageBinaries returns the environment that makes hack/image.sh put
// Build's credbroker and credbroker-credential-provider into the image
// (CREDBROKER_BINARIES, a directory holding both), relative to a test
// package one level below the module root.
func ImageBinaries(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range []string{"../cmd/credbroker", "../cmd/credbroker-credential-provider"} {
		if err := os.Symlink(Build(t, pkg), filepath.Join(dir, filepath.Base(pkg))); err != nil {
			t.Fatal(err)
		}
	}
	return "CREDBROKER_BINARIES=" + dir
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

// Process is a program running until the test ends (interrupted, then
// killed if it lingers); its output, stdout and stderr, is kept and shown
// when the test fails.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	lines  []string
	cursor int // lines before it were seen by WaitLine
}

// Start runs cmd.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.done) // after the last line was read
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); _ = w.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Output is everything the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitLine returns the first line not seen by an earlier WaitLine that
// match accepts, failing the test if the process exits or within passes
// first.
func (p *Process) WaitLine(t testing.TB, within time.Duration, what string, match func(line string) bool) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p.mu.Lock()
		for p.cursor < len(p.lines) {
			line := p.lines[p.cursor]
			p.cursor++
			if match(line) {
				p.mu.Unlock()
				return line
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			p.mu.Lock()
			more := p.cursor < len(p.lines)
			p.mu.Unlock()
			if !more {
				t.Fatalf("%s exited before %s:\n%s", p.name, what, p.Output())
			}
		case <-time.After(10 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %s after %v:\n%s", p.name, what, within, p.Output())
			}
		}
	}
}

// Terminate sends SIGTERM and returns the exit code.
func (p *Process) Terminate(t testing.TB) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return p.Wait(t)
}

// Kill sends SIGKILL, as a node that dies or an OOM kill would, and waits
// for the process to be gone.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait(t)
}

// Wait waits for the process to exit and returns its exit code.
func (p *Process) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit:\n%s", p.name, p.Output())
	}
	return p.cmd.ProcessState.ExitCode()
}
