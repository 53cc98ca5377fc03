package k8ssync

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
)

// rotatingRobots hands out a robot per namespace whose password changes at
// each rotate, and says the next rotation is a moment away.
type rotatingRobots struct {
	mu         sync.Mutex
	generation int
}

func (r *rotatingRobots) Robot(ns string) broker.RegistryAuth {
	r.mu.Lock()
	defer r.mu.Unlock()
	return broker.RegistryAuth{Host: "registry.internal:5000", Username: "credbroker-robot." + ns, Password: fmt.Sprintf("pw-%s-%d", ns, r.generation)}
}

func (r *rotatingRobots) NextRotation() time.Time { return time.Now().Add(500 * time.Millisecond) }

func (r *rotatingRobots) rotate() {
	r.mu.Lock()
	r.generation++
	r.mu.Unlock()
}

// The pull Secret carries the tenant's credential for its registries, its
// further registries' credentials, and the namespace's own robot for the
// in-cluster registry, and the robot's next credential after it rotates.
func TestPullSecretsCarryTheNamespacesRobotAndTheTenantsRegistries(t *testing.T) {
	requireCluster(t)
	label := unique("robot")
	a, b := label+"-a", label+"-b"
	createNamespace(t, a, nil)
	createNamespace(t, b, nil)
	robots := &rotatingRobots{}
	s := startSyncer(t, Config{Robots: robots})
	cred := credential("token-" + label)
	quay := broker.RegistryAuth{Host: "quay.io", Username: "acme+robot", Password: "quay-" + label}
	publish(t, s, tenant(label, func(t *broker.Tenant) { t.Namespaces = []string{a, b} }), cred, quay)
	auths := func(ns string) map[string]struct{ Username, Password string } {
		sec, ok := getSecret(t, ns, "ghcr-secret")
		if !ok {
			return nil
		}
		var cfg struct {
			Auths map[string]struct{ Username, Password string }
		}
		if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Auths
	}
	for _, ns := range []string{a, b} {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			got := auths(ns)
			return got["ghcr.io"].Password == cred.Token && got["registry.internal:5000"].Password == "pw-"+ns+"-0" &&
					got["quay.io"].Username == quay.Username && got["quay.io"].Password == quay.Password,
				fmt.Sprintf("%s holds %v", ns, got)
		})
	}
	robots.rotate()
	for _, ns := range []string{a, b} {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			got := auths(ns)
			return got["registry.internal:5000"].Password == "pw-"+ns+"-1" && got["ghcr.io"].Password == cred.Token,
				fmt.Sprintf("%s holds %v after the rotation", ns, got)
		})
	}
	// The tenant's registry removed, it leaves the Secrets.
	publish(t, s, tenant(label, func(t *broker.Tenant) { t.Namespaces = []string{a, b} }), cred)
	for _, ns := range []string{a, b} {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			got := auths(ns)
			_, has := got["quay.io"]
			return !has && got["ghcr.io"].Password == cred.Token, fmt.Sprintf("%s holds %v after quay.io was removed", ns, got)
		})
	}
}
