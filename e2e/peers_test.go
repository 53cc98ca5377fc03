package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credbroker/credbroker/github/emulator"
)

// The suite's peers are real programs: the credbroker binary, the GitHub
// emulator as a process, kube-apiserver + etcd, CNCF Distribution and crane.
// make test builds them and names them in the environment.
const (
	registryBinEnv = "CREDBROKER_REGISTRY_BIN"
	craneBinEnv    = "CREDBROKER_CRANE_BIN"
)

// TestMain quiets controller-runtime's envtest, which otherwise complains
// on stderr that nobody set its logger.
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// requirePeers skips (or, in CI, fails) when a peer is missing.
func requirePeers(t *testing.T) (registryBin, craneBin string) {
	t.Helper()
	for _, env := range []string{"KUBEBUILDER_ASSETS", registryBinEnv, craneBinEnv} {
		if os.Getenv(env) == "" {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not set: run the suite with make test", env)
			}
			t.Skipf("%s is not set (make test sets it)", env)
		}
	}
	return os.Getenv(registryBinEnv), os.Getenv(craneBinEnv)
}

// build compiles a main package of this module into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	if msg, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// process is a peer running until the test ends; its output is kept.
type process struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// run starts bin; firstLine, if not nil, receives the first line of stdout
// (the emulator's fixture) instead of the log.
func run(t *testing.T, name string, firstLine *string, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...)}
	p.cmd.Stderr = p
	var stdout io.ReadCloser
	if firstLine != nil {
		var err error
		if stdout, err = p.cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
	} else {
		p.cmd.Stdout = p
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	if firstLine != nil {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("%s printed no first line: %v\n%s", name, err, p.output())
		}
		*firstLine = line
		go func() { _, _ = io.Copy(p, stdout) }()
	}
	return p
}

// freeAddr returns a loopback address nobody listens on yet.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// eventually polls cond until it holds, or fails the test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond) // polling other processes: nothing to wait on
	}
}

// startRegistry runs CNCF Distribution with token auth whose realm is the
// emulator's.
func startRegistry(t *testing.T, bin, dir string, fx fixture) string {
	t.Helper()
	certFile := filepath.Join(dir, "realm.pem")
	if err := os.WriteFile(certFile, []byte(fx.RealmCertPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	config := emulator.DistributionConfig(addr, fx.Realm, certFile)
	configFile := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "registry", nil, bin, "serve", configFile)
	eventually(t, 20*time.Second, "the registry did not come up", func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	return addr
}

// crane runs the pull client with a docker config directory holding
// exactly dockerConfigJSON, and returns its combined output and whether it
// succeeded.
func crane(t *testing.T, bin string, dockerConfigJSON []byte, args ...string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), dockerConfigJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dir)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// pushImage pushes a one-layer image with the pusher's PAT.
func pushImage(t *testing.T, craneBin, registry, repo string, fx fixture) {
	t.Helper()
	layer := filepath.Join(t.TempDir(), "layer.tar")
	var buf bytes.Buffer
	writeTar(&buf, "hello.txt", []byte("hello from "+repo+"\n"))
	if err := os.WriteFile(layer, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := dockerConfig(registry, "pusher", fx.PusherPAT)
	if out, ok := crane(t, craneBin, cfg, "append", "-f", layer, "-t", registry+"/"+repo); !ok {
		t.Fatalf("push %s: %s", repo, out)
	}
}

func dockerConfig(registry, user, password string) []byte {
	out, _ := json.Marshal(map[string]any{"auths": map[string]any{registry: map[string]string{"username": user, "password": password}}})
	return out
}

// writeTar writes a tar archive of one file.
func writeTar(w io.Writer, name string, content []byte) {
	tw := tar.NewWriter(w)
	_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(content)
	_ = tw.Close()
}

// startCluster starts kube-apiserver + etcd with namespaces and returns an
// admin client and a kubeconfig file for the binaries under test.
func startCluster(t *testing.T, namespaces ...string) (kubernetes.Interface, string) {
	t.Helper()
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		if _, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	user, err := env.AddUser(envtest.User{Name: "credbroker-e2e", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return kube, path
}
