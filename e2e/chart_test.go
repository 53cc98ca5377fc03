package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/testenv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

const helmBinEnv = "CREDBROKER_HELM_BIN"

// values a production install would set.
var chartValues = []string{
	"--set", "tls.secretName=credbroker-tls",
	"--set", "tls.clientCASecret.name=credbroker-client-ca",
	"--set", "github.appId=12345", "--set", "github.appKeySecret.name=credbroker-github",
	"--set", "github.webhookSecret.name=credbroker-github-webhook",
	"--set", "encryptionKeySecret.name=credbroker-encryption",
	"--set", "webhook.url=https://backend.platform.svc/credbroker", "--set", "webhook.secret.name=credbroker-webhook",
	"--set", "auth.tokenFileSecret.name=credbroker-tokens",
	"--set", "auth.policy.bindings[0].subject=system:serviceaccount:platform:backend",
	"--set", "auth.policy.bindings[0].roles[0]=admin",
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(os.Getenv(helmBinEnv), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		err = errors.New(strings.TrimSpace(errOut.String() + "\n" + out.String()))
	}
	return out.String(), err
}

// decode splits rendered manifests into typed objects.
func decode(t *testing.T, manifests string) []any {
	t.Helper()
	var objs []any
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || bytes.Equal(bytes.TrimSpace(doc), []byte("---")) {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("rendered document does not decode: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
}

func rules(objs []any) (cluster, namespaced []rbacv1.PolicyRule) {
	for _, o := range objs {
		switch r := o.(type) {
		case *rbacv1.ClusterRole:
			cluster = r.Rules
		case *rbacv1.Role:
			namespaced = r.Rules
		}
	}
	return cluster, namespaced
}

func TestHelmChart(t *testing.T) {
	if os.Getenv(helmBinEnv) == "" || os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s or KUBEBUILDER_ASSETS is not set: run the suite with make test", helmBinEnv)
		}
		t.Skipf("%s not set (make test sets it)", helmBinEnv)
	}
	chart := "../charts/credbroker"
	if out, err := helm(t, append([]string{"lint", "--strict", chart}, chartValues...)...); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	if _, err := helm(t, "template", "credbroker", chart); err == nil || !strings.Contains(err.Error(), "set tls.secretName") {
		t.Errorf("rendering without TLS: %v, want a refusal naming tls.secretName", err)
	}
	manifests, err := helm(t, append([]string{"template", "credbroker", chart, "--namespace", "credbroker"}, chartValues...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, manifests)

	// The chart grants what k8ssync/rbac.yaml grants, which is what the
	// integration tests run the Syncer, the store and leader election as.
	reference, err := os.ReadFile("../k8ssync/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantCluster, wantNamespaced := rules(decode(t, string(reference)))
	gotCluster, gotNamespaced := rules(objs)
	if !reflect.DeepEqual(gotCluster, wantCluster) || !reflect.DeepEqual(gotNamespaced, wantNamespaced) {
		t.Errorf("chart RBAC differs from k8ssync/rbac.yaml:\n chart %+v\n       %+v\n  want %+v\n       %+v", gotCluster, gotNamespaced, wantCluster, wantNamespaced)
	}

	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, reflect.TypeOf(o).Elem().Name())
		if d, ok := o.(interface{ GetName() string }); ok && d.GetName() == "" {
			t.Errorf("a %T without a name", o)
		}
	}
	t.Logf("rendered: %v", kinds)
	for _, o := range objs {
		if pod := podSpecOf(o); pod != nil {
			c := pod.Containers[0]
			sc := c.SecurityContext
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
				sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("the credbroker container is not locked down: %+v %+v", pod.SecurityContext, sc)
			}
			args := strings.Join(c.Args, " ")
			for _, want := range []string{"--store=kubernetes", "--leader-elect=true", "--tls-cert-file=", "--auth-token-file=", "--auth-policy-file=", "--webhook-url="} {
				if !strings.Contains(args, want) {
					t.Errorf("args %q lack %s", args, want)
				}
			}
		}
	}

	// The API server accepts every object (server-side dry run).
	kcFile := testenv.Cluster(t, "credbroker").Kubeconfig(t, "credbroker-e2e")
	apply := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), "--kubeconfig", kcFile, "apply", "--dry-run=server", "-f", "-")
	apply.Stdin = strings.NewReader(manifests)
	out, err := apply.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
	}
	accepted := strings.Count(string(out), "(server dry run)")
	t.Logf("kubectl apply --dry-run=server accepted %d objects", accepted)
	if accepted != len(objs) {
		t.Errorf("%d of %d objects accepted:\n%s", accepted, len(objs), out)
	}

	// The optional ServiceMonitor renders when asked for (its CRD is not in
	// a bare API server, so it is not applied).
	withMonitor, err := helm(t, append([]string{"template", "credbroker", chart, "--set", "serviceMonitor.enabled=true"}, chartValues...)...)
	if err != nil || !strings.Contains(withMonitor, "kind: ServiceMonitor") {
		t.Errorf("serviceMonitor.enabled: %v", err)
	}
}

func podSpecOf(o any) *corev1.PodSpec {
	if d, ok := o.(*appsv1.Deployment); ok {
		return &d.Spec.Template.Spec
	}
	return nil
}
