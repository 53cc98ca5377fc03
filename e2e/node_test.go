package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/auth/authtest"
	"github.com/credbroker/credbroker/internal/testenv"
)

// On a real node, credbroker is installed from its chart with its own
// image, and the suite works only through the installed broker: Pods whose
// kubelet and containerd pull through the Secrets it syncs.
func TestTheChartOnARealNode(t *testing.T) {
	registryBin, craneBin := requirePeers(t)
	testenv.Require(t, helmBinEnv)

	// The kubelet reads its credential provider config at start, and the
	// config names the registry (host and port) and the broker: both are
	// chosen first. The plugin reaches a broker replica through kubectl
	// port-forward on brokerAddr (the node has no kube-proxy).
	hostIP := testenv.NodeHostIP(t, "../hack/node.sh")
	_, registryPort, _ := net.SplitHostPort(freeAddr(t))
	brokerAddr := freeAddr(t)
	plugin := testenv.Build(t, "../cmd/credbroker-credential-provider")
	providerDir := t.TempDir()
	// credbroker serves TLS with a certificate for 127.0.0.1 (where the
	// port-forward listens), of a CA the plugin is given.
	ca := authtest.NewCA(t)
	serverCert := ca.Server(t)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	installArgs := []string{"--broker", brokerAddr, "--ca-file", caFile, "--max-cache", "20s", "--match-images", net.JoinHostPort(hostIP, registryPort)}
	if out, err := exec.Command(plugin, append([]string{"install", "--bin-dir", providerDir + "/bin", "--config", providerDir + "/credbroker.yaml"}, installArgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("install the credential provider: %v\n%s", err, out)
	}
	// The test's build and the image's are now the same bytes (testenv.Build
	// builds as hack/image.sh does): the DaemonSet's install shows as a new
	// file in the plugin's place.
	testInstall, err := os.Stat(providerDir + "/bin/credbroker-credential-provider")
	if err != nil {
		t.Fatal(err)
	}
	node := testenv.StartNode(t, "../hack/node.sh",
		"--image-credential-provider-config="+providerDir+"/credbroker.yaml", "--image-credential-provider-bin-dir="+providerDir+"/bin")
	kube := node.Admin
	ctx := context.Background()

	// GitHub and ghcr.io, where the Pods reach this machine; the node's
	// containerd speaks plain HTTP to that registry, as the broker does.
	fx, control := startEmulator(t, testenv.Build(t, "./githubemu"), append(distribution(t, registryBin), "-host", node.HostIP, "-registry-port", registryPort)...)
	node.TrustRegistry(t, fx.Registry)
	pusher := dockerConfigDir(t, dockerConfig(fx.Registry, "pusher", fx.PusherPAT))
	for _, repo := range []string{"a-org/app:v1", "b-org/app:v1", "c-org/app:v1"} {
		script(t, craneBin, pusher, "../hack/hello-image.sh", fx.Registry+"/"+repo)
	}
	repo := node.Registry + "/credbroker/credbroker"
	image := repo + ":e2e"
	buildImage(t, craneBin, "", image)

	be := &backend{secret: []byte("node-webhook-secret")}
	receiver := serveOn(t, node.HostIP, be)

	const adminToken = "node-admin-token"
	for _, ns := range []string{"credbroker", "a-ns", "c-ns", "p-ns", "u-ns"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().ConfigMaps("credbroker").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "credbroker-ca"},
		Data: map[string]string{"ca.crt": string(caPEM)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string]string{
		"credbroker-tls": {
			corev1.TLSCertKey:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverCert.Certificate[0]})),
			corev1.TLSPrivateKeyKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		},
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
		"--set", "tls.secretName=credbroker-tls", "--set", "github.url="+fx.APIURL, "--set", fmt.Sprint("github.appId=", fx.AppID),
		// The App's JWTs name it by its client ID, as GitHub recommends.
		"--set", "github.appClientId="+fx.AppClientID,
		"--set", "github.appKeySecret.name=credbroker-github", "--set", "encryptionKeySecret.name=credbroker-encryption",
		"--set", "webhook.url="+receiver, "--set", "webhook.secret.name=credbroker-webhook",
		"--set", "auth.tokenFileSecret.name=credbroker-tokens", "--set", "plainHTTPRegistries[0]="+fx.Registry,
		"--set", "patRecheck=15s", "--set", "credentialProvider.maxCache=20s",
		// The chart's DaemonSet installs the plugin on the node as the
		// platform would, over the copy installed above with the same
		// arguments (the kubelet read that config at its start): from then
		// on the kubelet runs the image's plugin.
		"--set", "credentialProvider.daemonSet.enabled=true", "--set", "credentialProvider.daemonSet.broker="+brokerAddr,
		"--set", "credentialProvider.daemonSet.binDir="+providerDir+"/bin", "--set", "credentialProvider.daemonSet.config="+providerDir+"/credbroker.yaml",
		"--set", "credentialProvider.daemonSet.caConfigMap=credbroker-ca",
		"--set", "credentialProvider.daemonSet.matchImages[0]="+net.JoinHostPort(hostIP, registryPort),
		// The admission policy's dry run, the rollout's first step: Pods of
		// other owners' images are admitted with a warning (and then show
		// what the registry and the credential provider make of them),
		// until a subtest enforces it.
		"--set", "admission.policy.validationActions={Warn,Audit}")
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, brokerPods(node))
	}
	t.Logf("helm install: %s", firstLine(out))
	pods := brokerPods(node)
	t.Logf("credbroker from its chart, image %s:\n%s", image, pods)
	if n := strings.Count(pods, "Running"); n != 3 {
		t.Fatalf("%d Pods running, want 2 replicas and the credential provider's DaemonSet", n)
	}
	want, _ := os.ReadFile(providerDir + "/credbroker.yaml")
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the DaemonSet installed no plugin", func() bool {
		installed, err := os.Stat(providerDir + "/bin/credbroker-credential-provider")
		return err == nil && installed.Size() > 0 && (!os.SameFile(installed, testInstall) || installed.ModTime().After(testInstall.ModTime()))
	}))
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the DaemonSet did not say it installed", func() bool {
		logs, _ := node.Kubectl("-n", "credbroker", "logs", "ds/credbroker-credential-provider")
		return strings.Contains(logs, "installed")
	}))
	if got, _ := os.ReadFile(providerDir + "/credbroker.yaml"); !bytes.Equal(got, want) {
		t.Errorf("the DaemonSet wrote another config:\n%s\nwant\n%s", got, want)
	}
	t.Logf("the DaemonSet installed its plugin and this config:\n%s", want)

	// Credential status is answered by the leader (docs/api.md): talk to it.
	var leader string
	testenv.Eventually(t, time.Minute, testenv.Holds("no replica holds the Lease", func() bool {
		lease, err := kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
		if err == nil && lease.Spec.HolderIdentity != nil {
			leader = *lease.Spec.HolderIdentity
		}
		return leader != ""
	}))
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}}}
	api := brokerAPI{t: t, url: "https://" + portForward(t, node, "pod/"+leader, ":8080"), token: adminToken, client: tlsClient}
	// The plugin talks to the replica that does not lead: every replica
	// answers the exchange.
	var follower string
	for _, line := range strings.Split(pods, "\n") {
		if name, _, _ := strings.Cut(line, " "); strings.HasPrefix(name, "credbroker-") && !strings.Contains(name, "credential-provider") && name != leader {
			follower = name
		}
	}
	if follower == "" {
		t.Fatalf("no follower among\n%s", pods)
	}
	_, brokerPort, _ := net.SplitHostPort(brokerAddr)
	portForward(t, node, "pod/"+follower, brokerPort+":9090")
	control("token-lifetime?duration=60s")
	control("accept-app-tokens?accept=true")
	for _, body := range []string{
		fmt.Sprintf(`{"id":"a","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"pat":{"token":%q},
			"namespaces":["a-ns"],"registries":[%q],"probeImage":"%s/a-org/app:v1","patchServiceAccounts":true}`,
			fx.PATOwner, fx.PATOwnerID, fx.PAT, fx.Registry, fx.Registry),
		fmt.Sprintf(`{"id":"c","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},
			"namespaces":["c-ns"],"registries":[%q],"probeImage":"%s/c-org/app:v1"}`,
			fx.AppOwner, fx.AppOwnerID, fx.InstallationID, fx.Registry, fx.Registry),
		fmt.Sprintf(`{"id":"p","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},
			"namespaces":["p-ns"],"registries":[%q],"probeImage":"%s/c-org/app:v1","pullMode":"PULL_MODE_PROVIDER"}`,
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
	// own credentials) and checks how its pull ends, logging the Events and
	// the warnings of its admission; a message starting with "!" must not
	// be among them.
	warned, warnings := testenv.WarnedClient(t, node.Config)
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
		warnings.Take()
		if _, err := warned.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		admitted := warnings.Take()
		outcome, describe := node.PodOutcome(t, ns, name)
		if len(admitted) > 0 {
			t.Logf("pod %s/%s admitted with a warning: %s", ns, name, strings.Join(admitted, " | "))
			describe = "Admission warnings: " + strings.Join(admitted, " | ") + "\n" + describe
		}
		at := time.Now()
		t.Logf("pod %s/%s (%s): %s\n%s", ns, name, image, outcome, events(describe))
		if outcome != want && (want != "ErrImagePull" || outcome != "ImagePullBackOff") {
			t.Errorf("pod %s/%s: %s, want %s", ns, name, outcome, want)
		}
		for _, m := range message {
			if unwanted, ok := strings.CutPrefix(m, "!"); ok {
				if strings.Contains(describe, unwanted) {
					t.Errorf("pod %s/%s: the Events say %q", ns, name, unwanted)
				}
				continue
			}
			if !strings.Contains(describe, m) {
				t.Errorf("pod %s/%s: the Events do not say %q", ns, name, m)
			}
		}
		return at
	}

	t.Run("a Pod pulls its tenant's private image through the synced Secret", func(t *testing.T) {
		// The node's credential provider is asked too, and has nothing to
		// add for a tenant in pull mode SECRET: no warning on the Pod.
		expect(t, "a-ns", "mine", fx.Registry+"/a-org/app:v1", true, "Running", "Successfully pulled image", "!CredentialDenied", "!Admission warnings")
		if logs, _ := node.Kubectl("-n", "a-ns", "logs", "mine"); !strings.Contains(logs, "hello from a-org/app") {
			t.Errorf("the container did not run the image: %q", logs)
		}
	})
	t.Run("a Pod naming another owner's image is refused by the registry", func(t *testing.T) {
		expect(t, "a-ns", "theirs", fx.Registry+"/b-org/app:v1", true, "ErrImagePull", "[manifests v1]: 403 Forbidden",
			"ValidatingAdmissionPolicy 'credbroker-image-ownership'", "/b-org/app:v1 (WRONG_OWNER)")
	})
	t.Run("a Pod without imagePullSecrets pulls through its ServiceAccount", func(t *testing.T) {
		testenv.Eventually(t, 30*time.Second, testenv.Holds("the default ServiceAccount of a-ns was not given the Secret", func() bool {
			sa, err := kube.CoreV1().ServiceAccounts("a-ns").Get(ctx, "default", metav1.GetOptions{})
			return err == nil && slices.Contains(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: "ghcr-secret"})
		}))
		expect(t, "a-ns", "via-sa", fx.Registry+"/a-org/app:v1", false, "Running", "Successfully pulled image", "!CredentialDenied")
	})
	kubeletSays := func(t *testing.T, what string) {
		t.Helper()
		log, _ := os.ReadFile(node.Dir + "/logs/kubelet.log")
		var lines []string
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "credbroker-credential-provider: no credential") && strings.Contains(line, what) {
				lines = append(lines, line)
			}
		}
		if len(lines) == 0 {
			t.Errorf("the kubelet log has no plugin line saying %q", what)
			return
		}
		t.Logf("kubelet log: %s", lines[len(lines)-1])
	}
	t.Run("secretless: a PROVIDER tenant's Pod pulls with no Secret and no imagePullSecrets", func(t *testing.T) {
		testenv.Eventually(t, time.Minute, testenv.Holds("tenant p is not ready", func() bool {
			return api.status("p")["state"] == "CREDENTIAL_STATE_READY"
		}))
		if s := secret("p-ns"); s != "" {
			t.Fatalf("p-ns holds a pull Secret: %s", s)
		}
		expect(t, "p-ns", "secretless", fx.Registry+"/c-org/app:v1", false, "Running", "Successfully pulled image")
		if logs, _ := node.Kubectl("-n", "p-ns", "logs", "secretless"); !strings.Contains(logs, "hello from c-org/app") {
			t.Errorf("the container did not run the image: %q", logs)
		}
	})
	t.Run("the node logs in as at ghcr.io: its POST refused 405, then GET with a stateless installation token", func(t *testing.T) {
		requests := emulatorTokenRequests(t, fx)
		for _, want := range []struct {
			login     string
			stateless bool
		}{{"pat", false}, {"installation", true}} {
			how, ok := fellBackToGET(requests, want.login, want.stateless)
			if !ok {
				t.Errorf("no fallback from POST 405 to GET for a %s login (stateless %v): %s", want.login, want.stateless, how)
				continue
			}
			t.Logf("%s login: %s", want.login, how)
		}
		var cfg struct {
			Auths map[string]struct{ Password, Auth string }
		}
		if err := json.Unmarshal([]byte(secret("c-ns")), &cfg); err != nil {
			t.Fatal(err)
		}
		entry := cfg.Auths[fx.Registry]
		if !statelessToken.MatchString(entry.Password) {
			t.Errorf("c-ns's pull Secret holds a %d-character password not of the stateless shape", len(entry.Password))
		}
		t.Logf("c-ns's pull Secret: a %d-character stateless installation token, auth %d bytes", len(entry.Password), len(entry.Auth))
	})
	t.Run("secretless: another owner's image gets no credential", func(t *testing.T) {
		expect(t, "p-ns", "secretless-theirs", fx.Registry+"/b-org/app:v1", false, "ErrImagePull", "IMAGE_NOT_ALLOWED", "pull access denied", "(WRONG_OWNER)")
		kubeletSays(t, "IMAGE_NOT_ALLOWED")
	})
	t.Run("secretless: a Pod of an unbound namespace gets no credential", func(t *testing.T) {
		expect(t, "u-ns", "unbound", fx.Registry+"/c-org/app:v1", false, "ErrImagePull", "NAMESPACE_NOT_BOUND", "pull access denied", "!Admission warnings")
		kubeletSays(t, "NAMESPACE_NOT_BOUND")
	})
	t.Run("the policy enforced: another owner's image is refused at the API server", func(t *testing.T) {
		// The rollout's second step, as helm upgrade with
		// admission.policy.validationActions={Deny} makes it.
		if _, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Patch(ctx, "credbroker-image-ownership", types.MergePatchType,
			[]byte(`{"spec":{"validationActions":["Deny"]}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{"a-ns", "p-ns"} {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "enforced"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: fx.Registry + "/b-org/app:v1"}}}}
			var err error
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				_, err = kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "(WRONG_OWNER)"), fmt.Sprintf("%s: %v", ns, err)
			})
			t.Logf("%s: %v", ns, err)
		}
		if _, err := kube.CoreV1().Pods("u-ns").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "free"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("an unbound namespace: %v", err)
		}
	})
	t.Run("secretless: the exchange checks the token with the API server", func(t *testing.T) {
		pod, err := kube.CoreV1().Pods("p-ns").Get(ctx, "secretless", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		token := func(audience string, bound bool) string {
			return testenv.ServiceAccountToken(t, kube, pod, audience, bound)
		}
		image := fx.Registry + "/c-org/app"
		for _, tc := range []struct {
			name, token string
			exit        int
			says        string
		}{
			{"a Pod-bound token for credbroker", token("credbroker", true), 0, `"` + strings.ToLower(fx.Registry) + `/c-org"`},
			{"a token for another audience", token("vault", true), 1, "Unauthenticated"},
			{"a token bound to no Pod", token("credbroker", false), 1, "bound to no Pod"},
		} {
			req := fmt.Sprintf(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":%q,"serviceAccountToken":%q}`, image, tc.token)
			cmd := exec.Command(plugin)
			cmd.Env = append(os.Environ(), "CREDBROKER_BROKER="+brokerAddr, "CREDBROKER_CA_FILE="+caFile)
			cmd.Stdin = strings.NewReader(req)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			exit := cmd.ProcessState.ExitCode()
			t.Logf("%s: exit %d %s", tc.name, exit, strings.TrimSpace(stderr.String()))
			if exit != tc.exit || !strings.Contains(stdout.String()+stderr.String(), tc.says) || (exit != 0 && stdout.Len() > 0) {
				t.Errorf("%s: exit %d (%v), stdout %q, stderr %q; want exit %d saying %q", tc.name, exit, err, stdout.String(), stderr.String(), tc.exit, tc.says)
			}
		}
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
		expect(t, "p-ns", "secretless-after-rotations", fx.Registry+"/c-org/app:v1", false, "Running", "Successfully pulled image")
	})
	t.Run("secretless: a deleted tenant's Pods stop pulling within the cache duration", func(t *testing.T) {
		if code, resp := api.call(http.MethodDelete, "/v1/tenants/p", ""); code != http.StatusOK {
			t.Fatalf("delete tenant p: %d %v", code, resp)
		}
		deleted := time.Now()
		failed := expect(t, "p-ns", "secretless-after-deletion", fx.Registry+"/c-org/app:v1", false, "ErrImagePull", "NAMESPACE_NOT_BOUND", "pull access denied")
		t.Logf("the first Pod after tenant p's deletion failed to pull %v later (cache duration at most 20s)", failed.Sub(deleted).Round(time.Second))
		if failed.Sub(deleted) > 20*time.Second+time.Minute {
			t.Errorf("pulls went on %v after the deletion", failed.Sub(deleted))
		}
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
	scriptWith(t, nil, craneBin, dockerConfigDir, path, args...)
}

// buildImage builds credbroker's image (hack/image.sh) from the binaries the
// tests run, and pushes it to ref.
func buildImage(t *testing.T, craneBin, dockerConfigDir, ref string) {
	t.Helper()
	scriptWith(t, []string{testenv.ImageBinaries(t)}, craneBin, dockerConfigDir, "../hack/image.sh", ref)
}

func scriptWith(t *testing.T, env []string, craneBin, dockerConfigDir, path string, args ...string) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(append(os.Environ(), env...), "CRANE="+craneBin)
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

// statelessToken is GitHub's stateless installation token: ghs_<app id>_<JWT>.
var statelessToken = regexp.MustCompile(`^ghs_[0-9]+_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)

// portForward reaches one of the installed broker's Pods through kubectl
// port-forward (there is no kube-proxy on the node) and returns the local
// address; ports is kubectl's [LOCAL]:REMOTE.
func portForward(t *testing.T, node *testenv.Node, pod, ports string) string {
	t.Helper()
	cmd := node.KubectlCommand(context.Background(), "-n", "credbroker", "port-forward", pod, ports)
	p := testenv.Start(t, "kubectl port-forward", cmd)
	line := p.WaitLine(t, 30*time.Second, "the forwarded port", forwarding.MatchString)
	return "127.0.0.1:" + forwarding.FindStringSubmatch(line)[1]
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
