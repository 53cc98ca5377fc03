package tenantindex

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/internal/brokertest"

	"k8s.io/utils/clock"
)

// TestTheIndexFollowsTheTenantRegistry: the index the credential provider
// reads on a replica of the embedded store sees a tenant as soon as it is
// created, changed or deleted through Tenants.
func TestTheIndexFollowsTheTenantRegistry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, _ := brokertest.NewTestRegistry(t)
	listed := brokertest.AppTenantFor("listed")
	listed.Namespaces = []string{"web"}
	if _, _, err := reg.Create(ctx, listed); err != nil {
		t.Fatal(err)
	}
	x := New(reg, clock.RealClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if x.Synced() {
		t.Fatal("synced before it ran")
	}
	done := make(chan struct{})
	go func() { x.Run(ctx, time.Hour); close(done) }()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	eventually("never loaded", func() bool { return x.Synced() && len(x.Listing("web")) == 1 })
	selecting := brokertest.AppTenantFor("selecting")
	selecting.NamespaceSelector = "team=web"
	if _, _, err := reg.Create(ctx, selecting); err != nil {
		t.Fatal(err)
	}
	eventually("a new selector tenant unseen", func() bool { return len(x.WithSelector()) == 1 && x.WithSelector()[0].ID == "selecting" })
	if err := reg.Delete(ctx, "listed", ""); err != nil {
		t.Fatal(err)
	}
	eventually("a deleted tenant still listed", func() bool { return len(x.Listing("web")) == 0 })
	cancel()
	<-done
}
