package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/github/emulator"
)

// The suite's peers are real programs: the credbroker binary, the GitHub
// emulator as a process, kube-apiserver + etcd, CNCF Distribution and crane.
// make test builds them and names them in the environment.
const (
	registryBinEnv = testenv.RegistryBinEnv
	craneBinEnv    = testenv.CraneBinEnv
)

// requirePeers fails (or, in a quick run, skips) when a peer is missing.
func requirePeers(t *testing.T) (registryBin, craneBin string) {
	t.Helper()
	testenv.Require(t, testenv.AssetsEnv, registryBinEnv, craneBinEnv)
	return os.Getenv(registryBinEnv), os.Getenv(craneBinEnv)
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

// distribution are githubemu's arguments that put CNCF Distribution,
// with token auth whose realm is the emulator, behind its ghcr.io.
func distribution(t *testing.T, registryBin string) []string {
	return []string{"-distribution", registryBin, "-dir", t.TempDir()}
}

// crane runs the pull client with a docker config directory holding
// exactly dockerConfigJSON, and returns its combined output and whether it
// succeeded.
func crane(t *testing.T, bin string, dockerConfigJSON []byte, args ...string) (string, bool) {
	t.Helper()
	dir := dockerConfigDir(t, dockerConfigJSON)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dir)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// pushImage pushes a one-layer image with the pusher's PAT.
func pushImage(t *testing.T, craneBin, registry, repo string, fx emulator.Fixture) {
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

// dockerConfigDir is a DOCKER_CONFIG directory holding dockerConfigJSON.
func dockerConfigDir(t *testing.T, dockerConfigJSON []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), dockerConfigJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
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

// startEmulator runs the GitHub emulator as a process with args and
// returns its fixture, and a way to pull its control levers (POST
// /_emulator/<action>).
func startEmulator(t *testing.T, bin string, args ...string) (emulator.Fixture, func(action string)) {
	t.Helper()
	emu := testenv.Start(t, "githubemu", exec.Command(bin, args...))
	line := emu.WaitLine(t, 30*time.Second, "the fixture", func(line string) bool { return strings.HasPrefix(line, "{") })
	var fx emulator.Fixture
	if err := json.Unmarshal([]byte(line), &fx); err != nil {
		t.Fatalf("emulator fixture %q: %v\n%s", line, err, emu.Output())
	}
	control := func(action string) {
		t.Helper()
		emulatorControl(t, fx, action)
	}
	return fx, control
}

// emulatorControl pulls one of the emulator's control levers.
func emulatorControl(t *testing.T, fx emulator.Fixture, action string) {
	t.Helper()
	resp, err := http.Post(strings.TrimSuffix(fx.APIURL, "/")+"/_emulator/"+action, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("emulator control %s: %d", action, resp.StatusCode)
	}
}

// startBroker runs `credbroker serve` with args on free loopback ports and
// waits until it is ready; it returns the gRPC and HTTP addresses.
func startBroker(t *testing.T, bin string, args ...string) (grpcAddr, httpAddr string) {
	t.Helper()
	grpcAddr, httpAddr = freeAddr(t), freeAddr(t)
	startBrokerOn(t, bin, grpcAddr, httpAddr, args...)
	return grpcAddr, httpAddr
}

// startBrokerOn is startBroker on given addresses, returning the process.
func startBrokerOn(t *testing.T, bin, grpcAddr, httpAddr string, args ...string) *testenv.Process {
	t.Helper()
	p := testenv.Start(t, "credbroker", exec.Command(bin, append([]string{"serve", "--grpc-addr", grpcAddr, "--http-addr", httpAddr}, args...)...))
	testenv.Eventually(t, 30*time.Second, testenv.Holds("credbroker did not become ready", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}))
	return p
}

// pullAuths reads the pull Secret name in ns: its logins by registry host.
func pullAuths(ctx context.Context, kube kubernetes.Interface, ns, name string) (map[string]login, error) {
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var cfg struct{ Auths map[string]login }
	if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", ns, name, err)
	}
	return cfg.Auths, nil
}

// login is a registry's entry in a .dockerconfigjson.
type login struct{ Username, Password string }

// pemOf is an App key's PEM (PKCS#1, the form GitHub hands out).
func pemOf(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}
