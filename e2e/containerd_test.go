package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/internal/testenv"
)

// startContainerd runs a containerd of the test's own (socket, root and
// state under dir; no CRI plugin, nothing of the host's /run/containerd)
// and returns a function that runs ctr against it.
func startContainerd(t *testing.T, dir string) func(args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		testenv.Missing(t, "containerd", "apt-get install containerd (.ci/run installs it)")
	}
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	configFile := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Start(t, "containerd", exec.Command(bin, "--config", configFile))
	testenv.Eventually(t, 20*time.Second, testenv.Holds("containerd did not listen", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}))
	return func(args ...string) (string, error) {
		out, err := exec.Command("ctr", append([]string{"--address", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
}

// emulatorCalls reads how often the emulator process answered route.
func emulatorCalls(t *testing.T, fx emulator.Fixture, route string) int {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(fx.APIURL, "/") + "/_emulator/calls?route=" + url.QueryEscape(route))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var n int
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// emulatorTokenRequests reads the emulator process's realm log.
func emulatorTokenRequests(t *testing.T, fx emulator.Fixture) []emulator.TokenRequest {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(fx.APIURL, "/") + "/_emulator/token-requests")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out []emulator.TokenRequest
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// fellBackToGET finds, among the realm's requests by containerd, an OAuth2
// POST refused 405 followed by a GET answered 200 for a login of kind
// login (stateless: with a stateless installation token), as containerd
// logs in at ghcr.io; it describes what it found or what it saw instead.
func fellBackToGET(requests []emulator.TokenRequest, login string, stateless bool) (string, bool) {
	refused := -1
	var seen []string
	for i, r := range requests {
		if !strings.HasPrefix(r.UserAgent, "containerd/") {
			continue
		}
		seen = append(seen, fmt.Sprintf("%s %d %s stateless=%v", r.Method, r.Status, r.Login, r.Stateless))
		switch {
		case r.Method == http.MethodPost && r.Status == http.StatusMethodNotAllowed:
			refused = i
		case refused >= 0 && r.Method == http.MethodGet && r.Status == http.StatusOK && r.Login == login && r.Stateless == stateless:
			return fmt.Sprintf("%s: POST 405 then GET 200", requests[i].UserAgent), true
		}
	}
	return fmt.Sprintf("containerd's requests: %v", seen), false
}

// A real containerd pulls through CNCF Distribution whose token realm is
// the GitHub emulator, as a node's containerd pulls from ghcr.io: its
// OAuth2 password grant (POST /token) is refused 405, as ghcr.io refuses
// it, and it logs in again with GET and pulls with a PAT; once the PAT is
// revoked the realm answers 403 DENIED and the pull fails.
func TestContainerdPullsThroughTheEmulatorRealm(t *testing.T) {
	registryBin, craneBin := requirePeers(t)
	dir := t.TempDir()
	ctr := startContainerd(t, dir)
	fx, control := startEmulator(t, testenv.Build(t, "./githubemu"), distribution(t, registryBin)...)
	registry := fx.Registry
	for _, tag := range []string{"v1", "v2"} {
		ref := registry + "/" + fx.PATOwner + "/app:" + tag
		pushImage(t, craneBin, registry, fx.PATOwner+"/app:"+tag, fx)
		// containerd refuses an image whose config names no platform.
		if out, ok := crane(t, craneBin, dockerConfig(registry, "pusher", fx.PusherPAT), "mutate", "--set-platform", "linux/amd64", ref); !ok {
			t.Fatalf("set the platform of %s: %s", ref, out)
		}
	}

	before := emulatorCalls(t, fx, emulator.RouteRegistryTokenPOST)
	user := fx.PATOwner + ":" + fx.PAT
	out, err := ctr("images", "pull", "--plain-http", "--snapshotter", "native", "--user", user, registry+"/"+fx.PATOwner+"/app:v1")
	t.Logf("ctr images pull with the PAT: %v\n%s", err, out)
	if err != nil {
		t.Fatalf("containerd could not pull with the PAT")
	}
	if posts := emulatorCalls(t, fx, emulator.RouteRegistryTokenPOST) - before; posts == 0 {
		t.Error("containerd never POSTed to the realm: the OAuth2 password grant went untested")
	}
	if how, ok := fellBackToGET(emulatorTokenRequests(t, fx), "pat", false); !ok {
		t.Errorf("containerd did not fall back from POST 405 to GET: %s", how)
	} else {
		t.Log(how)
	}

	control("revoke?token=" + fx.PAT)
	out, err = ctr("images", "pull", "--plain-http", "--snapshotter", "native", "--user", user, registry+"/"+fx.PATOwner+"/app:v2")
	t.Logf("ctr images pull with the revoked PAT: %v\n%s", err, out)
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("the pull with a revoked PAT: %v, want it refused with the realm's 403", err)
	}
}
