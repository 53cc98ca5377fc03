package e2e

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/testenv"
)

// credbroker's image is built without a container engine (hack/image.sh)
// and pushed to a real registry; what a node would pull is what the
// Dockerfile describes: the binary that runs, a CA bundle, the nonroot
// user, linux/amd64.
func TestTheImageIsBuiltWithoutAContainerEngine(t *testing.T) {
	registryBin, craneBin := requirePeers(t)
	dir := t.TempDir()
	fx, _ := startEmulator(t, testenv.Build(t, "./githubemu"), distribution(t, registryBin)...)
	registry := fx.Registry
	ref := registry + "/" + fx.PATOwner + "/credbroker:test"

	docker := dockerConfigDir(t, dockerConfig(registry, "pusher", fx.PusherPAT))
	buildImage(t, craneBin, docker, ref)

	crane := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(craneBin, args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+docker)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("crane %v: %v", args, err)
		}
		return out
	}
	var cfg struct {
		OS, Architecture string
		Config           struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]any
		}
	}
	if err := json.Unmarshal(crane("config", ref), &cfg); err != nil {
		t.Fatal(err)
	}
	t.Logf("image config: %+v", cfg)
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.Config.User != "65532:65532" ||
		strings.Join(cfg.Config.Entrypoint, " ") != "/usr/local/bin/credbroker" || strings.Join(cfg.Config.Cmd, " ") != "serve" ||
		cfg.Config.ExposedPorts["8080/tcp"] == nil || cfg.Config.ExposedPorts["9090/tcp"] == nil {
		t.Errorf("image config %+v, want the Dockerfile's: linux/amd64, user 65532, credbroker serve, ports 8080 and 9090", cfg)
	}

	// The filesystem, and the binary in it runs.
	files := map[string][]byte{}
	tr := tar.NewReader(strings.NewReader(string(crane("export", ref, "-"))))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(h.Name, "./")] = data
	}
	for _, want := range []string{"usr/local/bin/credbroker", "etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group"} {
		if len(files[want]) == 0 {
			t.Errorf("the image has no %s", want)
		}
	}
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532") {
		t.Errorf("/etc/passwd does not name the nonroot user: %q", files["etc/passwd"])
	}
	bin := filepath.Join(dir, "credbroker-from-image")
	if err := os.WriteFile(bin, files["usr/local/bin/credbroker"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(bin).CombinedOutput()
	if !strings.Contains(string(out), "usage: credbroker serve") {
		t.Errorf("the image's binary does not run as credbroker: %q", out)
	}
}
