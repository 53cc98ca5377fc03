package k8ssync

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"

	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/broker"
)

// replica is one credbroker process: it syncs only while it leads.
type replica struct {
	cancel context.CancelFunc
	done   chan error
	syncer atomic.Pointer[Syncer]
}

func startReplica(t *testing.T, identity, lease string, tn broker.Tenant, cred broker.Credential) *replica {
	t.Helper()
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{cancel: cancel, done: make(chan error, 1)}
	log := slog.New(slog.DiscardHandler)
	cfg := LeaderConfig{Namespace: "credbroker", Name: lease, Identity: identity,
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 250 * time.Millisecond}
	go func() {
		r.done <- RunAsLeader(ctx, client, cfg, log, func(ctx context.Context) {
			s, err := New(client, Config{}, log)
			if err != nil {
				t.Error(err)
				return
			}
			if err := s.Publish(ctx, tn, payloadOf(tn, cred)); err != nil {
				t.Error(err)
			}
			r.syncer.Store(s)
			if err := s.Run(ctx); err != nil {
				t.Error(err)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("RunAsLeader: %v", err)
		}
	})
	return r
}

func TestOnlyTheLeaderSyncsAndASuccessorTakesOver(t *testing.T) {
	requireCluster(t)
	ns, lease := unique("leader"), unique("lease")
	createNamespace(t, ns, nil)
	tn := tenant("leader", func(t *broker.Tenant) { t.Namespaces = []string{ns} })
	credA, credB := credential("ghp_replicaA000000000000000000000000000"), credential("ghp_replicaB000000000000000000000000000")
	a := startReplica(t, "replica-a", lease, tn, credA)
	b := startReplica(t, "replica-b", lease, tn, credB)

	var leader, follower *replica
	var leaderCred, followerCred broker.Credential
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		switch {
		case a.syncer.Load() != nil:
			leader, follower, leaderCred, followerCred = a, b, credA, credB
		case b.syncer.Load() != nil:
			leader, follower, leaderCred, followerCred = b, a, credB, credA
		}
		return leader != nil, "nobody leads"
	})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, leaderCred) })
	if follower.syncer.Load() != nil {
		t.Fatal("both replicas sync")
	}
	// The Secret is visible a moment before the writer counts the write.
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		w := leader.syncer.Load().Writes()
		return w == 1, fmt.Sprintf("leader wrote %d times, want 1", w)
	})

	stopped := time.Now()
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Fatal(err)
	}
	leader.done <- nil // for the cleanup
	testenv.Eventually(t, 10*time.Second, func() (bool, string) { return follower.syncer.Load() != nil, "the follower did not take over" })
	t.Logf("takeover %v after the leader stopped (lease duration 4s)", time.Since(stopped).Round(time.Millisecond))
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, followerCred) })
}
