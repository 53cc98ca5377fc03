package github_test

import (
	"context"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
)

func patCredential() broker.Credential {
	return broker.Credential{Kind: broker.KindPAT, Username: "octo", Token: patToken}
}

func TestProbeAgainstTheEmulatedRegistry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup prepares the emulator and returns the credential and image.
		setup func(t *testing.T, f *fixture) (broker.Credential, string)
		want  broker.Reason // "" means the pull is allowed
	}{
		{"PAT pulls its user's image", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AddImage("octo/app", "v1")
			return patCredential(), f.gh.RegistryHost() + "/octo/app:v1"
		}, ""},
		{"PAT pulls an org image by digest", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AddPAT(patToken, emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: 7, Type: "User"},
				Scopes: []string{"read:packages"}, Orgs: []string{"acme"}})
			digest := f.gh.AddImage("acme/api", "v2")
			return patCredential(), f.gh.RegistryHost() + "/acme/api@" + digest
		}, ""},
		{"PAT denied another owner's image", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AddImage("evil/app", "v1")
			return patCredential(), f.gh.RegistryHost() + "/evil/app:v1"
		}, broker.ReasonNoPackageAccess},
		{"PAT without a packages scope", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AddPAT(patToken, emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: 7, Type: "User"}, Scopes: []string{"repo"}})
			f.gh.AddImage("octo/app", "v1")
			return patCredential(), f.gh.RegistryHost() + "/octo/app:v1"
		}, broker.ReasonNoPackageAccess},
		{"revoked PAT: ghcr.io's 403 DENIED at login, GitHub says revoked", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.Revoke(patToken)
			f.gh.AddImage("octo/app", "v1")
			return patCredential(), f.gh.RegistryHost() + "/octo/app:v1"
		}, broker.ReasonTokenRevoked},
		{"expired App token: 403 DENIED at login, GitHub says bad credentials", func(t *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AddImage("acme/api", "v1")
			cred := mintOld(t, f)
			f.clock.Step(2 * time.Hour)
			return cred, f.gh.RegistryHost() + "/acme/api:v1"
		}, broker.ReasonTokenRevoked},
		{"App token logs in but is denied, as on ghcr.io", func(t *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AddImage("acme/api", "v1")
			return mintOld(t, f), f.gh.RegistryHost() + "/acme/api:v1"
		}, broker.ReasonAppTokenNotAccepted},
		{"App token pulls where the registry accepts App tokens", func(t *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AcceptAppTokens(true)
			f.gh.AddImage("acme/api", "v1")
			return mintOld(t, f), f.gh.RegistryHost() + "/acme/api:v1"
		}, ""},
		{"a multi-arch image: the probe asks for an index, as pull clients do", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			f.gh.AddMultiArchImage("octo/multi", "v1")
			return patCredential(), f.gh.RegistryHost() + "/octo/multi:v1"
		}, ""},
		{"image that does not exist", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			return patCredential(), f.gh.RegistryHost() + "/octo/missing:v1"
		}, broker.ReasonImageNotFound},
		{"registry unreachable", func(_ *testing.T, f *fixture) (broker.Credential, string) {
			host := f.gh.RegistryHost()
			f.gh.Registry.Close()
			return patCredential(), host + "/octo/app:v1"
		}, broker.ReasonRegistryUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			cred, image := tc.setup(t, f)
			prober := github.NewPullProber(github.PullProberConfig{Clock: f.clock, Timeout: 5 * time.Second, Recheck: f.client.Recheck})
			assertOutcome(t, f.record(prober.Probe(ctx, cred, image)), tc.want)
		})
	}
}

// mintOld mints an App token and moves the clock past the replication-lag
// window, so the probe's answer is final at once.
func mintOld(t *testing.T, f *fixture) broker.Credential {
	t.Helper()
	cred, err := f.client.MintInstallationToken(context.Background(), installationID, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Step(time.Minute)
	return cred
}

func TestProbeRetriesAFreshTokenThroughReplicationLag(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.gh.AcceptAppTokens(true)
	f.gh.AddImage("acme/api", "v1")
	f.gh.SetReplicationLag(3 * time.Second)
	cred, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	sleep := func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		f.clock.Step(d)
		return nil
	}
	prober := github.NewPullProber(github.PullProberConfig{Clock: f.clock, Sleep: sleep, Recheck: f.client.Recheck})
	if err := prober.Probe(ctx, cred, f.gh.RegistryHost()+"/acme/api:v1"); err != nil {
		t.Fatalf("probe of a lagging fresh token: %v", err)
	}
	if len(slept) != 2 || slept[0] != time.Second || slept[1] != 2*time.Second {
		t.Errorf("waited %v, want [1s 2s] (the lag is 3s)", slept)
	}

	// Once the retries (1+2+4 s) are spent, the refusal counts.
	f.gh.SetReplicationLag(time.Minute)
	cred, err = f.client.MintInstallationToken(ctx, installationID, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	slept = nil
	err = f.record(prober.Probe(ctx, cred, f.gh.RegistryHost()+"/acme/api:v1"))
	assertReason(t, err, broker.ReasonTokenRevoked)
	if len(slept) != 3 {
		t.Errorf("waited %v, want 3 retries", slept)
	}

	// A token that is not fresh gets no retries.
	f.clock.Step(time.Minute)
	f.gh.Revoke(cred.Token)
	slept = nil
	_ = f.record(prober.Probe(ctx, cred, f.gh.RegistryHost()+"/acme/api:v1"))
	if len(slept) != 0 {
		t.Errorf("an old token was retried: %v", slept)
	}
}

// Login is "docker login": a token with no scope from the realm, which a
// credential the registry takes gets and one it does not is refused.
func TestLoginAgainstTheEmulatedRegistry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture) string // returns the registry host
		want  broker.Reason
	}{
		{"a PAT the registry takes", func(f *fixture) string { return f.gh.RegistryHost() }, ""},
		{"a revoked PAT", func(f *fixture) string { f.gh.Revoke(patToken); return f.gh.RegistryHost() }, broker.ReasonTokenRevoked},
		{"a registry that is down", func(f *fixture) string {
			host := f.gh.RegistryHost()
			f.gh.Registry.Close()
			return host
		}, broker.ReasonRegistryUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			host := tc.setup(f)
			prober := github.NewPullProber(github.PullProberConfig{Clock: f.clock, Timeout: 5 * time.Second})
			assertOutcome(t, prober.Login(context.Background(), patCredential(), host), tc.want)
		})
	}
}
