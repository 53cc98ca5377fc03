package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credbroker/credbroker/github/githubtest"
)

// TestServeSyncsIntoACluster runs the binary the way a cluster deployment
// does — Kubernetes tenant store, leader election, GitHub App — against a
// real kube-apiserver, and checks that registering a tenant over REST puts
// its pull Secret into its namespace and the tenant into the store.
func TestServeSyncsIntoACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with make test")
		}
		t.Skip("KUBEBUILDER_ASSETS not set")
	}
	ctx := context.Background()
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
	for _, ns := range []string{"credbroker", "shop"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	user, err := env.AddUser(envtest.User{Name: "credbroker-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfigFile, keyFile := filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "app.pem")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	gh := githubtest.NewServer()
	defer gh.Close()
	key, keyPEM, err := githubtest.NewAppKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	gh.AddApp(77, &key.PublicKey)
	gh.AddInstallation(githubtest.Installation{ID: 5, AppID: 77, Account: githubtest.Account{Login: "shop-org", ID: 500, Type: "Organization"},
		Permissions: map[string]string{"packages": "read"}})

	p := startBinary(t, nil, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--kubeconfig", kubeconfigFile, "--store", "kubernetes", "--namespace", "credbroker", "--identity", "replica-1",
		"--github-url", gh.URL(), "--github-app-id", "77", "--github-app-key-file", keyFile)
	resp, err := http.Post(p.httpURL+"/v1/tenants", "application/json", strings.NewReader(
		`{"id":"shop","owner":{"login":"shop-org","id":500,"type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":5},"namespaces":["shop"]}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create tenant: %d\n%s", resp.StatusCode, p.output())
	}

	deadline := time.Now().Add(30 * time.Second)
	var secret *corev1.Secret
	for secret == nil {
		if s, err := kube.CoreV1().Secrets("shop").Get(ctx, "ghcr-secret", metav1.GetOptions{}); err == nil {
			secret = s
		} else if time.Now().After(deadline) {
			t.Fatalf("no pull Secret in namespace shop: %v\n%s", err, p.output())
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if secret.Type != corev1.SecretTypeDockerConfigJson || !strings.Contains(string(secret.Data[corev1.DockerConfigJsonKey]), `"x-access-token"`) {
		t.Errorf("pull Secret: type %s, data %d bytes", secret.Type, len(secret.Data[corev1.DockerConfigJsonKey]))
	}
	if _, err := kube.CoreV1().Secrets("credbroker").Get(ctx, "credbroker-tenant-shop", metav1.GetOptions{}); err != nil {
		t.Errorf("tenant not in the Kubernetes store: %v", err)
	}
	if _, err := kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{}); err != nil {
		t.Errorf("no leader Lease: %v", err)
	}
	if code := p.terminate(t); code != 0 {
		t.Errorf("exit %d\n%s", code, p.output())
	}
	for _, tok := range gh.Tokens() {
		if strings.Contains(p.output(), tok) {
			t.Error("an installation token reached the log")
		}
	}
}
