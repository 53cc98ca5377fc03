package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// nodeUnavailable is hack/node.sh's exit code when this machine cannot
// run a node (not root, or containerd, runc or the CNI plugins missing).
const nodeUnavailable = 3

// Node is a single-node cluster started by hack/node.sh: a control plane
// with controllers and a scheduler, and a kubelet whose containerd pulls
// the images of Pods for real.
type Node struct {
	// Kubeconfig is cluster-admin's; Config and Admin are its client
	// configuration and a client with it.
	Kubeconfig string
	Config     *rest.Config
	Admin      kubernetes.Interface
	// HostIP is where Pods reach this machine: a peer that Pods call (a
	// registry, GitHub, the backend) listens there.
	HostIP string
	// Registry is the node's own plain-HTTP registry on loopback, for
	// images nobody needs credentials for (credbroker's).
	Registry string
	// Dir holds the node's state and logs (logs/kubelet.log).
	Dir    string
	script string
	env    []string
}

// StartNode starts a node with hack/node.sh (script is its path from the
// test's package) in slot 1, apart from dev mode's slot 0, and stops it
// when the test ends. Where no node can run, it goes through Missing.
func StartNode(t testing.TB, script string, kubeletArgs ...string) *Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	n := &Node{Dir: dir, script: script, env: append(os.Environ(), "NODE_SLOT=1", "NODE_DIR="+dir, "NODE_KUBELET_ARGS="+strings.Join(kubeletArgs, " "))}
	var stderr bytes.Buffer
	cmd := exec.Command(script, "start")
	cmd.Env, cmd.Stderr = n.env, &stderr
	out, err := cmd.Output()
	t.Cleanup(func() {
		if msg, err := n.run("stop"); err != nil {
			t.Errorf("hack/node.sh stop: %v\n%s", err, msg)
		}
	})
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) && exit.ExitCode() == nodeUnavailable {
		Missing(t, "what a node needs (root, containerd, runc, the CNI plugins)",
			"run the tests as root with them installed (.ci/run installs them); hack/node.sh says:\n"+stderr.String())
	}
	if err != nil {
		t.Fatalf("hack/node.sh start: %v\n%s", err, stderr.String())
	}
	t.Logf("%s", strings.TrimSpace(lastLine(stderr.String())))
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	n.Kubeconfig, n.HostIP, n.Registry = vars["KUBECONFIG"], vars["NODE_HOST_IP"], vars["NODE_REGISTRY"]
	if n.Config, err = clientcmd.BuildConfigFromFlags("", n.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	if n.Admin, err = kubernetes.NewForConfig(n.Config); err != nil {
		t.Fatal(err)
	}
	return n
}

// NodeHostIP is the address at which the Pods of StartNode's node will
// reach this machine, known before the node starts (its kubelet's
// configuration may have to name it).
func NodeHostIP(t testing.TB, script string) string {
	t.Helper()
	cmd := exec.Command(script, "env")
	cmd.Env = append(os.Environ(), "NODE_SLOT=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s env: %v", script, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "NODE_HOST_IP="); ok {
			return v
		}
	}
	t.Fatalf("%s env names no NODE_HOST_IP:\n%s", script, out)
	return ""
}

// TrustRegistry lets the node's containerd pull from host over plain HTTP.
func (n *Node) TrustRegistry(t testing.TB, host string) {
	t.Helper()
	if out, err := n.run("trust-registry", host); err != nil {
		t.Fatalf("hack/node.sh trust-registry: %v\n%s", err, out)
	}
}

func (n *Node) run(args ...string) (string, error) {
	cmd := exec.Command(n.script, args...)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// KubectlCommand is kubectl (from AssetsEnv) with args, as cluster-admin.
func (n *Node) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(os.Getenv(AssetsEnv), "kubectl"), append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
}

// Kubectl runs kubectl as cluster-admin and returns its combined output.
func (n *Node) Kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.KubectlCommand(ctx, args...).CombinedOutput()
	return string(out), err
}

// PodOutcome waits for the first container of a Pod to run or to fail to
// pull its image, and returns which ("Running", "ErrImagePull",
// "ImagePullBackOff") with the Pod's `kubectl describe`.
func (n *Node) PodOutcome(t testing.TB, namespace, name string) (outcome, describe string) {
	t.Helper()
	Eventually(t, 2*time.Minute, func() (bool, string) {
		pod, err := n.Admin.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		outcome = podOutcome(pod)
		return outcome != "", Errorf("pod %s/%s neither ran nor failed to pull: %v", namespace, name, pod.Status)
	})
	// The kubelet records the pull's Event just after the state changes.
	time.Sleep(time.Second)
	describe, err := n.Kubectl("-n", namespace, "describe", "pod", name)
	if err != nil {
		t.Fatalf("kubectl describe pod: %v\n%s", err, describe)
	}
	return outcome, describe
}

func podOutcome(pod *corev1.Pod) string {
	for _, c := range pod.Status.ContainerStatuses {
		switch {
		case c.State.Running != nil:
			return "Running"
		case c.State.Waiting != nil && (c.State.Waiting.Reason == "ErrImagePull" || c.State.Waiting.Reason == "ImagePullBackOff"):
			return c.State.Waiting.Reason
		}
	}
	return ""
}

// WaitGone waits until a namespace is deleted for good: every finalizer done.
func (n *Node) WaitGone(t testing.TB, namespace string, within time.Duration) {
	t.Helper()
	Eventually(t, within, func() (bool, string) {
		ns, err := n.Admin.CoreV1().Namespaces().Get(context.Background(), namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, Errorf("namespace %s is still %s: %v", namespace, ns.Status.Phase, ns.Status.Conditions)
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
