package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/inbox"
	"github.com/credbroker/credbroker/broker/internal/brokertest"
)

// installationGitHub answers GET /app/installations/{id} as GitHub would
// now: inst, or 404 when gone.
type installationGitHub struct {
	mu    sync.Mutex
	inst  broker.Installation
	gone  bool
	calls int
}

func (g *installationGitHub) Installation(_ context.Context, id int64) (broker.Installation, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.gone || id != g.inst.ID {
		return broker.Installation{}, &broker.ReasonError{Cause: broker.ReasonInstallationNotFound, Msg: fmt.Sprintf("installation %d not found", id)}
	}
	return g.inst, nil
}

// ValidatePAT takes any PAT as a machine user's with read:packages.
func (g *installationGitHub) ValidatePAT(context.Context, string) (broker.PATOwner, error) {
	return broker.PATOwner{Owner: broker.Owner{Login: "bot", ID: 7, Type: broker.OwnerUser}, Scopes: []string{"read:packages"}}, nil
}

// A signed delivery is a hint, not an order: whoever captured one sends it
// again whenever they like, so the leader acts on what GitHub's API says
// now. A replayed suspend of an installation GitHub reports active stops
// nothing; a replayed rename to a login GitHub does not report changes no
// login; a rename GitHub confirms is applied, with GitHub's login. Both
// for a tenant on the organization's App installation and for one with a
// machine user's PAT for it (whose PAT tells nothing of the organization's
// login).
func TestADeliveryIsActedOnOnlyAsGitHubConfirmsIt(t *testing.T) {
	acme := broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization}
	tests := []struct {
		name       string
		delivery   broker.Delivery
		github     broker.Installation
		gone       bool
		wantReason broker.Reason // the tenant's last error after acting, "" none
		wantLogin  string
	}{
		{"a replayed suspend of an active installation", broker.Delivery{Change: broker.InstallationSuspended}, broker.Installation{Account: acme}, false, "", "acme"},
		{"a suspend GitHub confirms", broker.Delivery{Change: broker.InstallationSuspended}, broker.Installation{Account: acme, Suspended: true}, false, broker.ReasonInstallationSuspended, "acme"},
		{"a replayed deletion of an installation that is still there", broker.Delivery{Change: broker.InstallationDeleted}, broker.Installation{Account: acme}, false, "", "acme"},
		{"a deletion GitHub confirms", broker.Delivery{Change: broker.InstallationDeleted}, broker.Installation{}, true, broker.ReasonInstallationNotFound, "acme"},
		{"a replayed rename to a login GitHub does not report", broker.Delivery{Change: broker.AccountRenamed,
			Account: broker.Owner{Login: "acme-evil", ID: 1, Type: broker.OwnerOrganization}}, broker.Installation{Account: acme}, false, "", "acme"},
		{"a rename naming another account than the installation's", broker.Delivery{Change: broker.AccountRenamed,
			Account: broker.Owner{Login: "evil", ID: 99, Type: broker.OwnerOrganization}}, broker.Installation{Account: broker.Owner{Login: "acme-corp", ID: 1, Type: broker.OwnerOrganization}}, false, "", "acme"},
		{"a rename GitHub confirms", broker.Delivery{Change: broker.AccountRenamed,
			Account: broker.Owner{Login: "acme-corp", ID: 1, Type: broker.OwnerOrganization}}, broker.Installation{Account: broker.Owner{Login: "acme-corp", ID: 1, Type: broker.OwnerOrganization}}, false, "", "acme-corp"},
		{"an old rename, overtaken by a later one: GitHub's login is recorded", broker.Delivery{Change: broker.AccountRenamed,
			Account: broker.Owner{Login: "acme-corp", ID: 1, Type: broker.OwnerOrganization}}, broker.Installation{Account: broker.Owner{Login: "acme-inc", ID: 1, Type: broker.OwnerOrganization}}, false, "", "acme-inc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sealer, err := broker.NewSealer(make([]byte, broker.KeySize))
			if err != nil {
				t.Fatal(err)
			}
			s := newSimulated(t)
			s.reg = broker.NewTenants(brokertest.NewMemStore(), sealer, nil, s.clock, broker.TenantsConfig{})
			for _, tn := range []broker.Tenant{brokertest.AppTenantFor("web"), {ID: "pat", Owner: acme, PAT: &broker.PAT{Token: "ghp_machine"}}} {
				if _, _, err := s.reg.Create(ctx, tn); err != nil {
					t.Fatal(err)
				}
			}
			s.r = s.newRefresher()
			s.step(ctx)
			tc.github.ID = 1
			tc.github.Permissions = broker.DefaultAppPermissions()
			gh := &installationGitHub{inst: tc.github, gone: tc.gone}
			s.r.cfg.GitHub = gh
			d := tc.delivery
			d.ID, d.InstallationID = "d-1", 1
			s.r.Act(ctx, d)
			if gh.calls == 0 {
				t.Error("GitHub's API was not asked")
			}
			st := s.r.Status("web")
			var got broker.Reason
			if st.LastError != nil {
				got = st.LastError.Reason
			}
			if got != tc.wantReason {
				t.Errorf("the tenant's last error: %q, want %q", got, tc.wantReason)
			}
			for _, id := range []string{"web", "pat"} {
				if tn := brokertest.MustGet(t, s.reg, id); tn.Owner.Login != tc.wantLogin {
					t.Errorf("tenant %s: owner login %q, want %q", id, tn.Owner.Login, tc.wantLogin)
				}
			}
		})
	}
}

// A delivery GitHub's API cannot be asked about is not acted on.
func TestADeliveryGitHubCannotConfirmIsNotActedOn(t *testing.T) {
	ctx := context.Background()
	s := newSimulated(t, brokertest.AppTenantFor("web"))
	s.step(ctx)
	s.r.Act(ctx, broker.Delivery{ID: "d-1", InstallationID: 1, Change: broker.InstallationSuspended}) // no GitHub at all
	if st := s.r.Status("web"); st.LastError != nil {
		t.Errorf("an unconfirmed suspend was acted on: %+v", st.LastError)
	}
}

// A captured suspend body sent under three fresh delivery ids is one
// delivery, acted on once.
func TestACapturedDeliveryUnderFreshIDsIsActedOnOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSimulated(t, brokertest.AppTenantFor("web"))
	mem := &brokertest.MemInbox{}
	ds := inbox.NewRunner(mem, s.clock, slog.New(slog.DiscardHandler))
	digest := "sha256:" + fmt.Sprintf("%064x", 42)
	for i, id := range []string{"captured", "fresh-1", "fresh-2", "fresh-3"} {
		added, err := ds.Accept(ctx, broker.Delivery{ID: id, Digest: digest, InstallationID: 1, Change: broker.InstallationSuspended})
		if err != nil || added != (i == 0) {
			t.Fatalf("accept under %s: added=%v %v", id, added, err)
		}
	}
	var acted []string
	done := make(chan error, 1)
	go func() {
		done <- ds.Run(ctx, func(_ context.Context, d broker.Delivery) { acted = append(acted, d.ID); cancel() })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not act")
	}
	if len(acted) != 1 {
		t.Errorf("acted on %v, want the captured delivery once", acted)
	}
}
