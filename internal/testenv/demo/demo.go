// Package demo starts dev mode's demo GitHub with a client and a tenant
// registry for tests of the broker's runtime. It is apart from testenv,
// which the broker's own tests import, because it imports the broker.
package demo

import (
	"testing"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
)

// Env is what a test of the broker's runtime starts from: dev mode's demo
// GitHub (the emulator and its fixture), a client of it, and a tenant
// registry over a fresh bbolt store. Everything is closed when the test ends.
type Env struct {
	GitHub   *emulator.Server
	Fixture  emulator.Demo
	Client   *github.Client
	Store    *boltstore.Store
	Registry *broker.Tenants
}

// Start starts a Demo.
func Start(t testing.TB) *Env {
	t.Helper()
	gh, fixture, err := emulator.NewDemo()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	client, err := github.New(github.Config{BaseURL: gh.URL(), AppID: fixture.AppID, PrivateKey: fixture.AppKey})
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return &Env{GitHub: gh, Fixture: fixture, Client: client, Store: store,
		Registry: broker.NewTenants(store, nil, client, clock.RealClock{}, broker.TenantsConfig{})}
}
