package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/internal/testenv"
)

// On a real node, credbroker is installed from its chart with its own
// image, and the suite works only through the installed broker: Pods whose
// kubelet and containerd pull through the Secrets it syncs.
func TestTheChartOnARealNode(t *testing.T) {
	registryBin, craneBin := requirePeers(t)
	testenv.Require(t, helmBinEnv)
	node := testenv.StartNode(t, "../hack/node.sh")
	kube := node.Admin
	ctx := context.Background()

	// GitHub and ghcr.io, where the Pods reach this machine; the node's
	// containerd speaks plain HTTP to that registry, as the broker does.
	fx, control := startEmulator(t, testenv.Build(t, "./githubemu"), append(distribution(t, registryBin), "-host", node.HostIP)...)
	node.TrustRegistry(t, fx.Registry)
	pusher := dockerConfigDir(t, dockerConfig(fx.Registry, "pusher", fx.PusherPAT))
	for _, repo := range []string{"a-org/app:v1", "b-org/app:v1", "c-org/app:v1"} {
		script(t, craneBin, pusher, "../hack/hello-image.sh", fx.Registry+"/"+repo)
	}
	repo := node.Registry + "/credbroker/credbroker"
	image := repo + ":e2e"
	script(t, craneBin, "", "../hack/image.sh", image)

	be := &backend{secret: []byte("node-webhook-secret")}
	receiver := serveOn(t, node.HostIP, be)

	const adminToken = "node-admin-token"
	for _, ns := range []string{"credbroker", "a-ns", "c-ns"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]map[string]string{
		"credbroker-github":     {"private-key.pem": fx.AppKeyPEM},
		"credbroker-encryption": {"key": strings.Repeat("n", 32)},
		"credbroker-webhook":    {"secret": string(be.secret)},
		"credbroker-tokens":     {"tokens.yaml": fmt.Sprintf("tokens:\n  - name: backend\n    sha256: %s\n    roles: [admin]\n", auth.TokenHash(adminToken))},
	} {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "credbroker"}, StringData: data}
		if _, err := kube.CoreV1().Secrets("credbroker").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := helm(t, "install", "credbroker", "../charts/credbroker", "--kubeconfig", node.Kubeconfig, "--namespace", "credbroker",
		"--wait", "--timeout", "3m",
		"--set", "image.repository="+repo, "--set", "image.tag=e2e", "--set", "image.pullPolicy=Always",
		"--set", "insecure=true", "--set", "github.url="+fx.APIURL, "--set", fmt.Sprint("github.appId=", fx.AppID),
		"--set", "github.appKeySecret.name=credbroker-github", "--set", "encryptionKeySecret.name=credbroker-encryption",
		"--set", "webhook.url="+receiver, "--set", "webhook.secret.name=credbroker-webhook",
		"--set", "auth.tokenFileSecret.name=credbroker-tokens", "--set", "plainHTTPRegistries[0]="+fx.Registry,
		"--set", "patRecheck=15s")
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, brokerPods(node))
	}
	t.Logf("helm install: %s", firstLine(out))
	pods := brokerPods(node)
	t.Logf("credbroker from its chart, image %s:\n%s", image, pods)
	if n := strings.Count(pods, "Running"); n != 2 {
		t.Fatalf("%d replicas running, want 2", n)
	}

	// Credential status is answered by the leader (docs/api.md): talk to it.
	var leader string
	testenv.Eventually(t, time.Minute, testenv.Holds("no replica holds the Lease", func() bool {
		lease, err := kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
		if err == nil && lease.Spec.HolderIdentity != nil {
			leader = *lease.Spec.HolderIdentity
		}
		return leader != ""
	}))
	api := brokerAPI{t: t, url: portForward(t, node, "pod/"+leader), token: adminToken}
	control("token-lifetime?duration=60s")
	control("accept-app-tokens?accept=true")
	for _, body := range []string{
		fmt.Sprintf(`{"id":"a","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"pat":{"token":%q},
			"namespaces":["a-ns"],"registries":[%q],"probeImage":"%s/a-org/app:v1","patchServiceAccounts":true}`,
			fx.PATOwner, fx.PATOwnerID, fx.PAT, fx.Registry, fx.Registry),
		fmt.Sprintf(`{"id":"c","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},
			"namespaces":["c-ns"],"registries":[%q],"probeImage":"%s/c-org/app:v1"}`,
			fx.AppOwner, fx.AppOwnerID, fx.InstallationID, fx.Registry, fx.Registry),
	} {
		if code, resp := api.call(http.MethodPost, "/v1/tenants", body); code != http.StatusOK {
			t.Fatalf("register tenant: %d %v", code, resp)
		}
	}
	secret := func(ns string) string {
		s, err := kube.CoreV1().Secrets(ns).Get(ctx, "ghcr-secret", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return string(s.Data[corev1.DockerConfigJsonKey])
	}
	testenv.Eventually(t, time.Minute, testenv.Holds("no pull Secret in a-ns and c-ns", func() bool { return secret("a-ns") != "" && secret("c-ns") != "" }))

	// expect creates a Pod (pulling always, so that every Pod pulls with its
	// own credentials) and checks how its pull ends, logging the Events.
	expect := func(t *testing.T, ns, name, image string, pullSecret bool, want string, message ...string) time.Time {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64(1)),
				Containers:                    []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways}},
			},
		}
		if pullSecret {
			pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "ghcr-secret"}}
		}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		outcome, describe := node.PodOutcome(t, ns, name)
		at := time.Now()
		t.Logf("pod %s/%s (%s): %s\n%s", ns, name, image, outcome, events(describe))
		if outcome != want && (want != "ErrImagePull" || outcome != "ImagePullBackOff") {
			t.Errorf("pod %s/%s: %s, want %s", ns, name, outcome, want)
		}
		for _, m := range message {
			if !strings.Contains(describe, m) {
				t.Errorf("pod %s/%s: the Events do not say %q", ns, name, m)
			}
		}
		return at
	}

	t.Run("a Pod pulls its tenant's private image through the synced Secret", func(t *testing.T) {
		expect(t, "a-ns", "mine", fx.Registry+"/a-org/app:v1", true, "Running", "Successfully pulled image")
		if logs, _ := node.Kubectl("-n", "a-ns", "logs", "mine"); !strings.Contains(logs, "hello from a-org/app") {
			t.Errorf("the container did not run the image: %q", logs)
		}
	})
	t.Run("a Pod naming another owner's image is refused by the registry", func(t *testing.T) {
		expect(t, "a-ns", "theirs", fx.Registry+"/b-org/app:v1", true, "ErrImagePull", "[manifests v1]: 403 Forbidden")
	})
	t.Run("a Pod without imagePullSecrets pulls through its ServiceAccount", func(t *testing.T) {
		testenv.Eventually(t, 30*time.Second, testenv.Holds("the default ServiceAccount of a-ns was not given the Secret", func() bool {
			sa, err := kube.CoreV1().ServiceAccounts("a-ns").Get(ctx, "default", metav1.GetOptions{})
			return err == nil && slices.Contains(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: "ghcr-secret"})
		}))
		expect(t, "a-ns", "via-sa", fx.Registry+"/a-org/app:v1", false, "Running", "Successfully pulled image")
	})
	t.Run("a revoked PAT: the backend hears first, then new Pods fail", func(t *testing.T) {
		emulatorControl(t, fx, "revoke?token="+fx.PAT)
		revoked := time.Now()
		testenv.Eventually(t, time.Minute, testenv.Holds("CREDENTIAL_REVOKED did not reach the backend", func() bool {
			return be.has("EVENT_TYPE_CREDENTIAL_REVOKED", "a")
		}))
		heard, _ := be.received("EVENT_TYPE_CREDENTIAL_REVOKED", "a")
		t.Logf("the backend heard CREDENTIAL_REVOKED %v after GitHub revoked the PAT (found by the broker's own recheck)", heard.Sub(revoked).Round(time.Second))
		failed := expect(t, "a-ns", "after-revocation", fx.Registry+"/a-org/app:v1", true, "ErrImagePull", "failed to fetch oauth token", "403 Forbidden")
		if !heard.Before(failed) {
			t.Errorf("the backend heard at %v, after the first failure at %v", heard, failed)
		}
		api := api
		api.t = t
		st := api.status("a")
		lastErr, _ := st["lastError"].(map[string]any)
		t.Logf("tenant a: %v, %v", st["state"], lastErr["reason"])
		if st["state"] != "CREDENTIAL_STATE_FAILED" || lastErr["reason"] != "REASON_TOKEN_REVOKED" {
			t.Errorf("tenant a after the revocation: %v", st)
		}
	})
	t.Run("Pods created after two rotations of minute-long tokens pull", func(t *testing.T) {
		first := secret("c-ns")
		for i := 1; i <= 2; i++ {
			before := secret("c-ns")
			testenv.Eventually(t, 90*time.Second, testenv.Holds("the Secret of c-ns was not rotated", func() bool { return secret("c-ns") != before }))
			t.Logf("rotation %d landed at %s", i, time.Now().Format(time.TimeOnly))
		}
		if secret("c-ns") == first {
			t.Fatal("the Secret did not change")
		}
		expect(t, "c-ns", "after-rotations", fx.Registry+"/c-org/app:v1", true, "Running", "Successfully pulled image")
	})
	t.Run("the leader's Pod deleted: the other replica takes over and rotates", func(t *testing.T) {
		lease, err := kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		leader := *lease.Spec.HolderIdentity
		if err := kube.CoreV1().Pods("credbroker").Delete(ctx, leader, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		testenv.Eventually(t, time.Minute, testenv.Holds("nobody took the Lease over", func() bool {
			lease, err := kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
			return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != leader && *lease.Spec.HolderIdentity != ""
		}))
		lease, _ = kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
		t.Logf("leader %s deleted; %s held the Lease %v later", leader, *lease.Spec.HolderIdentity, time.Since(deleted).Round(time.Second))
		before := secret("c-ns")
		testenv.Eventually(t, 90*time.Second, testenv.Holds("no rotation after the takeover", func() bool { return secret("c-ns") != before }))
		t.Logf("the new leader rotated c-ns's Secret %v after the deletion", time.Since(deleted).Round(time.Second))
		expect(t, "c-ns", "after-takeover", fx.Registry+"/c-org/app:v1", true, "Running", "Successfully pulled image")
	})
	t.Run("a bound namespace deleted finishes deleting", func(t *testing.T) {
		if err := kube.CoreV1().Namespaces().Delete(ctx, "c-ns", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		node.WaitGone(t, "c-ns", 2*time.Minute)
		t.Logf("c-ns, bound to tenant c with its Secret and Pods, was gone after %v", time.Since(start).Round(time.Second))
	})
}

// script runs one of hack/'s image scripts with crane and a DOCKER_CONFIG.
func script(t *testing.T, craneBin, dockerConfigDir, path string, args ...string) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "CRANE="+craneBin)
	if dockerConfigDir != "" {
		cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+dockerConfigDir)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", path, args, err, out)
	}
}

// serveOn serves h on host until the test ends and returns its URL.
func serveOn(t *testing.T, host string, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)

// portForward reaches one of the installed broker's Pods through kubectl
// port-forward (there is no kube-proxy on the node) and returns its URL.
func portForward(t *testing.T, node *testenv.Node, pod string) string {
	t.Helper()
	cmd := node.KubectlCommand(context.Background(), "-n", "credbroker", "port-forward", pod, ":8080")
	p := testenv.Start(t, "kubectl port-forward", cmd)
	line := p.WaitLine(t, 30*time.Second, "the forwarded port", forwarding.MatchString)
	return "http://127.0.0.1:" + forwarding.FindStringSubmatch(line)[1]
}

func brokerPods(node *testenv.Node) string {
	out, _ := node.Kubectl("-n", "credbroker", "get", "pods", "-o", "wide")
	return out
}

// events is the Events section of a `kubectl describe`.
func events(describe string) string {
	if i := strings.Index(describe, "Events:"); i >= 0 {
		return describe[i:]
	}
	return describe
}
