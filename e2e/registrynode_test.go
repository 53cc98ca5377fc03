package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/internal/testenv"
	"github.com/credbroker/credbroker/registrytoken"
)

// TestAnInClusterRegistryOnARealNode: a CNCF Distribution registry whose
// token realm is credbroker, and a real kubelet and containerd pulling for
// Pods with the robot credentials credbroker writes into each namespace's
// pull Secret: a namespace's Pod pulls its tenant's image, another
// tenant's image is refused by the registry, Pods created after the robots
// rotated pull with the new ones; a Pod with no pull Secret pulls through
// the kubelet's credential provider with its ServiceAccount token; a build
// Pod's ServiceAccount pushes where its tenant allows and nowhere else.
// containerd asks for its tokens with the OAuth2 POST, which credbroker's
// audit log shows.
func TestAnInClusterRegistryOnARealNode(t *testing.T) {
	registryBin, craneBin := requirePeers(t)
	// On loopback and named localhost: containerd speaks plain HTTP to it,
	// and crane takes a realm on it.
	registryAddr, brokerGRPC, brokerHTTP := freeAddr(t), freeAddr(t), freeAddr(t)
	_, registryPort, _ := net.SplitHostPort(registryAddr)
	_, brokerPort, _ := net.SplitHostPort(brokerHTTP)
	host := "localhost:" + registryPort

	// The kubelet's credential providers: the exchange's for ghcr.io (not
	// used here), and the registry's, which hands a Pod's token for
	// credbroker-registry to the registry. It matches the registry by its
	// IP, the robots' Secrets by its name: each test's pull has one
	// credential only.
	plugin, providerDir := testenv.Build(t, "../cmd/credbroker-credential-provider"), t.TempDir()
	if out, err := exec.Command(plugin, "install", "--bin-dir", providerDir+"/bin", "--config", providerDir+"/credbroker.yaml",
		"--broker", brokerGRPC, "--plaintext", "--registry-token-match-images", registryAddr).CombinedOutput(); err != nil {
		t.Fatalf("install the credential providers: %v\n%s", err, out)
	}
	node := testenv.StartNode(t, "../hack/node.sh",
		"--image-credential-provider-config="+providerDir+"/credbroker.yaml", "--image-credential-provider-bin-dir="+providerDir+"/bin")
	node.TrustRegistry(t, registryAddr)
	kube, ctx := node.Admin, context.Background()
	// What the chart's credentialProvider.nodeRBAC grants: nodes may ask
	// for tokens for the registry's audience.
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "registry-token-audience"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"credbroker-registry"}, Verbs: []string{"request-serviceaccounts-token-audience"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "registry-token-audience"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "registry-token-audience"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fx, _ := startEmulator(t, testenv.Build(t, "./githubemu"), distribution(t, registryBin)...)
	credbroker := testenv.Build(t, "../cmd/credbroker")
	storage := t.TempDir()
	stop := runDistribution(t, registryBin, registryAddr, storage, "")
	aOrg, cOrg := strings.ToLower(fx.PATOwner), strings.ToLower(fx.AppOwner)
	for _, repo := range []string{aOrg + "/app:v1", cOrg + "/app:v1"} {
		script(t, craneBin, "", "../hack/hello-image.sh", host+"/"+repo)
	}
	stop()
	pushImage(t, craneBin, fx.Registry, aOrg+"/app:v1", fx) // on the emulated ghcr.io

	// A third registry, of the platform's neighbours, with basic auth:
	// tenant a's static credential is the only login it takes.
	thirdAddr, thirdStorage, thirdUser, thirdPassword := freeAddr(t), t.TempDir(), "a-puller", "third-"+rand.Text()
	_, thirdPort, _ := net.SplitHostPort(thirdAddr)
	third := "localhost:" + thirdPort
	stop = runDistribution(t, registryBin, thirdAddr, thirdStorage, "")
	script(t, craneBin, "", "../hack/hello-image.sh", third+"/"+aOrg+"/tool:v1")
	stop()
	hash, err := bcrypt.GenerateFromPassword([]byte(thirdPassword), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(thirdUser+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	thirdAuth := fmt.Sprintf("auth:\n  htpasswd:\n    realm: third\n    path: %s\n", htpasswd)
	stopThird := runDistribution(t, registryBin, thirdAddr, thirdStorage, thirdAuth)

	const adminToken, service = "registry-node-admin", "registry.node.internal"
	dir := t.TempDir()
	for name, content := range map[string]string{
		"app.pem":      fx.AppKeyPEM,
		"enc.key":      strings.Repeat("k", 32),
		"robot.key":    strings.Repeat("r", 32),
		"registry.pem": string(testenv.ECKeyPEM(t)),
		"tokens.yaml":  fmt.Sprintf("tokens:\n  - name: backend\n    sha256: %s\n    roles: [admin]\n", auth.TokenHash(adminToken)),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	broker := startBrokerOn(t, credbroker, brokerGRPC, brokerHTTP, "--data-dir", filepath.Join(dir, "data"), "--kubeconfig", node.Kubeconfig,
		"--leader-elect=false", "--github-url", fx.APIURL, "--github-app-id", fmt.Sprint(fx.AppID), "--github-app-key-file", filepath.Join(dir, "app.pem"),
		"--encryption-key-file", filepath.Join(dir, "enc.key"), "--auth-token-file", filepath.Join(dir, "tokens.yaml"),
		"--registry-token-service", service, "--registry-token-key-files", filepath.Join(dir, "registry.pem"),
		"--registry-robot-host", host, "--registry-robot-key-file", filepath.Join(dir, "robot.key"), "--registry-robot-rotation", "1m",
		"--registry-check-interval", "10s")

	// The registry trusts the key set credbroker publishes.
	resp, err := http.Get("http://" + brokerHTTP + registrytoken.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("key set: %d %v", resp.StatusCode, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	runDistribution(t, registryBin, registryAddr, storage, fmt.Sprintf("auth:\n  token:\n    realm: http://localhost:%s%s\n    service: %s\n    issuer: credbroker\n    jwks: %s\n",
		brokerPort, registrytoken.TokenPath, service, filepath.Join(dir, "jwks.json")))

	// Tenant a (a-org, a PAT) may push; tenant c (c-org, an App) may not.
	for _, ns := range []string{"a-ns", "c-ns"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	api := brokerAPI{t: t, url: "http://" + brokerHTTP, token: adminToken}
	for _, body := range []string{
		fmt.Sprintf(`{"id":"a","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"pat":{"token":%q},"namespaces":["a-ns"],"registryPush":true,"registries":[%q]}`,
			fx.PATOwner, fx.PATOwnerID, fx.PAT, fx.Registry),
		fmt.Sprintf(`{"id":"c","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},"namespaces":["c-ns"]}`,
			fx.AppOwner, fx.AppOwnerID, fx.InstallationID),
	} {
		if code, resp := api.call(http.MethodPost, "/v1/tenants", body); code != http.StatusOK {
			t.Fatalf("register tenant: %d %v", code, resp)
		}
	}
	robot := func(ns string) string {
		s, err := kube.CoreV1().Secrets(ns).Get(ctx, "ghcr-secret", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		var cfg struct {
			Auths map[string]struct{ Username string }
		}
		_ = json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg)
		return cfg.Auths[host].Username
	}
	testenv.Eventually(t, time.Minute, testenv.Holds("no robot in the pull Secrets of a-ns and c-ns", func() bool { return robot("a-ns") != "" && robot("c-ns") != "" }))
	firstRobot := robot("a-ns")

	expect := func(t *testing.T, ns, name, image string, pullSecret bool, want string, message ...string) {
		t.Helper()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: new(int64(1)),
				Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways}}}}
		if pullSecret {
			pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "ghcr-secret"}}
		}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		outcome, describe := node.PodOutcome(t, ns, name)
		t.Logf("pod %s/%s (%s): %s\n%s", ns, name, image, outcome, events(describe))
		if outcome != want && (want != "ErrImagePull" || outcome != "ImagePullBackOff") {
			t.Errorf("pod %s/%s: %s, want %s", ns, name, outcome, want)
		}
		for _, m := range message {
			if !strings.Contains(describe, m) {
				t.Errorf("pod %s/%s: the Events do not say %q", ns, name, m)
			}
		}
	}

	t.Run("each namespace's Pods pull their tenant's images with its robot", func(t *testing.T) {
		expect(t, "a-ns", "mine", host+"/"+aOrg+"/app:v1", true, "Running")
		expect(t, "c-ns", "mine", host+"/"+cOrg+"/app:v1", true, "Running")
		if logs, _ := node.Kubectl("-n", "a-ns", "logs", "mine"); !strings.Contains(logs, "hello from "+aOrg+"/app") {
			t.Errorf("the container did not run the image: %q", logs)
		}
	})
	t.Run("another tenant's image is refused by the registry", func(t *testing.T) {
		// The registry's answer to the empty grant, as containerd tells it.
		expect(t, "a-ns", "theirs", host+"/"+cOrg+"/app:v1", true, "ErrImagePull", "insufficient_scope: authorization failed")
	})
	t.Run("a Pod with no pull Secret pulls with its ServiceAccount token, through the kubelet's provider", func(t *testing.T) {
		expect(t, "a-ns", "secretless", registryAddr+"/"+aOrg+"/app:v1", false, "Running")
		expect(t, "a-ns", "secretless-theirs", registryAddr+"/"+cOrg+"/app:v1", false, "ErrImagePull", "insufficient_scope: authorization failed")
		posts := audits(t, broker.Output(), "POST password", "system:serviceaccount:a-ns:default")
		if len(posts) == 0 {
			t.Fatalf("no token was asked for with a-ns's default ServiceAccount:\n%s", broker.Output())
		}
		t.Logf("%d POSTs with a-ns's ServiceAccount token, the first: %s", len(posts), posts[0])
	})
	t.Run("containerd asks for tokens with the OAuth2 POST", func(t *testing.T) {
		posts := audits(t, broker.Output(), "POST password", "credbroker-robot.a-ns")
		if len(posts) == 0 {
			t.Fatalf("no token was asked for with a POST by a-ns's robot:\n%s", broker.Output())
		}
		t.Logf("%d POSTs by a-ns's robot, the first: %s", len(posts), posts[0])
	})
	t.Run("one Secret holds ghcr.io, the in-cluster registry and a static third registry", func(t *testing.T) {
		expires := time.Now().Add(23 * time.Hour).UTC().Format(time.RFC3339)
		if code, resp := api.call(http.MethodPost, "/v1/tenants/a/registryCredentials", fmt.Sprintf(
			`{"host":%q,"username":%q,"password":%q,"owners":[%q],"checkImage":"%s/%s/tool:v1","expireTime":%q}`,
			third, thirdUser, thirdPassword, aOrg, third, aOrg, expires)); code != http.StatusOK {
			t.Fatalf("add the third registry: %d %v", code, resp)
		}
		var config []byte
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			s, err := kube.CoreV1().Secrets("a-ns").Get(ctx, "ghcr-secret", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			config = s.Data[corev1.DockerConfigJsonKey]
			var cfg struct{ Auths map[string]any }
			_ = json.Unmarshal(config, &cfg)
			return cfg.Auths[fx.Registry] != nil && cfg.Auths[host] != nil && cfg.Auths[third] != nil, fmt.Sprintf("a-ns's Secret holds %v", slices.Sorted(maps.Keys(cfg.Auths)))
		})
		for _, image := range []string{fx.Registry + "/" + aOrg + "/app:v1", host + "/" + aOrg + "/app:v1", third + "/" + aOrg + "/tool:v1"} {
			if out, ok := crane(t, craneBin, config, "pull", image, filepath.Join(t.TempDir(), "image.tar")); !ok {
				t.Errorf("crane pull %s with a-ns's Secret: %s", image, out)
			} else {
				t.Logf("crane pulled %s with a-ns's Secret", image)
			}
		}
		expect(t, "a-ns", "third", third+"/"+aOrg+"/tool:v1", true, "Running")
		if s, err := kube.CoreV1().Secrets("c-ns").Get(ctx, "ghcr-secret", metav1.GetOptions{}); err != nil || strings.Contains(string(s.Data[corev1.DockerConfigJsonKey]), third) {
			t.Errorf("c-ns's Secret (%v) holds tenant a's third registry", err)
		}

		// The expiry warning, and the health check.
		events := func(typ string) []map[string]any {
			_, resp := api.call(http.MethodGet, "/v1/events?tenantId=a&types="+typ, "")
			var out []map[string]any
			for _, ev := range resp["events"].([]any) {
				if ev := ev.(map[string]any); ev["registry"] == third {
					out = append(out, ev)
				}
			}
			return out
		}
		testenv.Eventually(t, 30*time.Second, testenv.Holds("no expiry warning for the third registry", func() bool { return len(events("EVENT_TYPE_CREDENTIAL_EXPIRING")) > 0 }))
		t.Logf("expiry warning: %v", events("EVENT_TYPE_CREDENTIAL_EXPIRING")[0]["message"])
		registryState := func() (string, map[string]any) {
			_, st := api.call(http.MethodGet, "/v1/tenants/a/credential", "")
			for _, r := range st["registries"].([]any) {
				if r := r.(map[string]any); r["host"] == third {
					return r["state"].(string), r
				}
			}
			return "", nil
		}
		testenv.Eventually(t, 30*time.Second, testenv.Holds("the third registry is not HEALTHY", func() bool { s, _ := registryState(); return s == "REGISTRY_STATE_HEALTHY" }))
		stopThird()
		testenv.Eventually(t, time.Minute, testenv.Holds("the third registry's failure is not in its status", func() bool { s, _ := registryState(); return s == "REGISTRY_STATE_FAILING" }))
		_, failing := registryState()
		t.Logf("status of the third registry while it is down: %v", failing)
		if reason := failing["error"].(map[string]any)["reason"]; reason != "REASON_REGISTRY_UNREACHABLE" {
			t.Errorf("the failing check names %v, want REASON_REGISTRY_UNREACHABLE", reason)
		}
		// The check records its state before it raises the event: the
		// status can show FAILING a moment before the event log has it.
		testenv.Eventually(t, 10*time.Second, testenv.Holds("no REGISTRY_CHECK_FAILED event for the third registry", func() bool {
			return len(events("EVENT_TYPE_REGISTRY_CHECK_FAILED")) > 0
		}))
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			list, err := kube.CoreV1().Events("a-ns").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, ev := range list.Items {
				if strings.Contains(ev.Message, "the credential for "+third) && strings.Contains(ev.Message, "fails its health check") {
					t.Logf("Event in a-ns: %s %s: %s", ev.Type, ev.Reason, ev.Message)
					return true, ""
				}
			}
			return false, "no Event in a-ns about the third registry"
		})
		runDistribution(t, registryBin, thirdAddr, thirdStorage, thirdAuth)
		testenv.Eventually(t, time.Minute, testenv.Holds("the third registry did not recover", func() bool { s, _ := registryState(); return s == "REGISTRY_STATE_HEALTHY" }))
		if out := broker.Output(); strings.Contains(out, thirdPassword) {
			t.Error("the third registry's password reached credbroker's log")
		}
	})
	t.Run("after the robots rotate, new Pods pull with the new ones", func(t *testing.T) {
		testenv.Eventually(t, 3*time.Minute, testenv.Holds("the robot of a-ns did not rotate", func() bool { return robot("a-ns") != firstRobot }))
		t.Logf("a-ns's robot rotated from %s to %s", firstRobot, robot("a-ns"))
		expect(t, "a-ns", "after-rotation", host+"/"+aOrg+"/app:v1", true, "Running")
	})
	t.Run("a build Pod pushes where its tenant allows and nowhere else", func(t *testing.T) {
		builder := func(ns string) []byte {
			pod := testenv.PodOfServiceAccount(t, kube, ns, "builder", "builder")
			return dockerConfig(host, "builder", testenv.ServiceAccountToken(t, kube, pod, "credbroker-registry", true))
		}
		a, c := builder("a-ns"), builder("c-ns")
		for _, tc := range []struct {
			name     string
			config   []byte
			from, to string
			ok       bool
		}{
			{"a's builder, under its owner", a, aOrg + "/app:v1", aOrg + "/app:built", true},
			{"a's builder, under its namespace", a, aOrg + "/app:v1", "cluster.local/a-ns/tool:v1", true},
			{"a's builder, under c's owner", a, aOrg + "/app:v1", cOrg + "/app:v2", false},
			{"a's builder, under c's namespace", a, aOrg + "/app:v1", "cluster.local/c-ns/tool:v1", false},
			{"c's builder, whose tenant does not push", c, cOrg + "/app:v1", cOrg + "/app:v2", false},
		} {
			out, ok := crane(t, craneBin, tc.config, "copy", host+"/"+tc.from, host+"/"+tc.to)
			if ok != tc.ok {
				t.Errorf("%s: crane copy to %s: ok %v, want %v\n%s", tc.name, tc.to, ok, tc.ok, out)
			} else if !ok {
				t.Logf("%s: %s", tc.name, lastLine(out))
			}
		}
		expect(t, "a-ns", "built", host+"/cluster.local/a-ns/tool:v1", true, "Running")
	})
	if out := broker.Output(); strings.Contains(out, "eyJ") {
		t.Error("a token reached credbroker's log")
	}
}

// audits are credbroker's audit records of registry tokens asked for by
// flow and issued to subject.
func audits(t *testing.T, output, flow, subject string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct{ Msg, Method, Flow, Subject string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "audit" && rec.Method == "RegistryToken" && rec.Flow == flow && rec.Subject == subject {
			out = append(out, sc.Text())
		}
	}
	return out
}
