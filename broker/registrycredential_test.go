package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
)

// registryWithHosts is sealing Tenants that know the in-cluster
// registry and a ghcr.io mirror, holding tenant "web" (owner acme).
func registryWithHosts(t *testing.T) (*broker.Tenants, *boltstore.Store) {
	t.Helper()
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	sealer, _ := broker.NewSealer(bytes.Repeat([]byte{3}, broker.KeySize))
	rules, err := broker.NewImageRules(nil, []string{"ghcr-mirror.example.com=ghcr.io"})
	if err != nil {
		t.Fatal(err)
	}
	reg := broker.NewTenants(store, sealer, nil, clock.RealClock{}, broker.TenantsConfig{Images: rules,
		Hosts: broker.RegistryHosts{Internal: "registry.cluster.local:5000"}})
	if _, _, err := reg.Create(context.Background(), broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: 7}, Registries: []string{"ghcr.io", "containers.ghe.example.com"}}); err != nil {
		t.Fatal(err)
	}
	return reg, store
}

func TestARegistryCredentialIsRefusedNamingTheField(t *testing.T) {
	ctx := context.Background()
	reg, _ := registryWithHosts(t)
	good := broker.RegistryCredential{Host: "quay.io", Username: "acme+robot", Password: "s3cret", Owners: []string{"acme"}}
	if _, err := reg.AddRegistryCredential(ctx, "web", "", good); err != nil {
		t.Fatal(err)
	}
	with := func(edit func(*broker.RegistryCredential)) broker.RegistryCredential {
		c := good
		c.Host = "registry.example.com"
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name, field string
		cred        broker.RegistryCredential
	}{
		{"not a registry host", "registry_credentials[1].host", with(func(c *broker.RegistryCredential) { c.Host = "https://quay.io" })},
		{"a host with a path", "registry_credentials[1].host", with(func(c *broker.RegistryCredential) { c.Host = "quay.io/acme" })},
		{"a duplicate", "registry_credentials[1].host", with(func(c *broker.RegistryCredential) { c.Host = "QUAY.io" })},
		{"ghcr.io, which the GitHub source covers", "registry_credentials[1].host", with(func(c *broker.RegistryCredential) { c.Host = "ghcr.io" })},
		{"the GitHub Enterprise container host", "registry_credentials[1].host", with(func(c *broker.RegistryCredential) { c.Host = "containers.ghe.example.com" })},
		{"the in-cluster registry, which robots cover", "registry_credentials[1].host", with(func(c *broker.RegistryCredential) { c.Host = "registry.cluster.local:5000" })},
		{"no username", "registry_credentials[1].username", with(func(c *broker.RegistryCredential) { c.Username = "" })},
		{"a username with a colon", "registry_credentials[1].username", with(func(c *broker.RegistryCredential) { c.Username = "a:b" })},
		{"no password", "registry_credentials[1].password", with(func(c *broker.RegistryCredential) { c.Password = "" })},
		{"a password with a newline", "registry_credentials[1].password", with(func(c *broker.RegistryCredential) { c.Password = "a\nb" })},
		{"an owner that is no path component", "registry_credentials[1].owners[0]", with(func(c *broker.RegistryCredential) { c.Owners = []string{"Acme"} })},
		{"an owner with a slash", "registry_credentials[1].owners[0]", with(func(c *broker.RegistryCredential) { c.Owners = []string{"acme/app"} })},
		{"owners on a mirror, whose images are judged as ghcr.io's", "registry_credentials[1].owners[0]", with(func(c *broker.RegistryCredential) {
			c.Host = "ghcr-mirror.example.com"
		})},
		{"a check image on another registry", "registry_credentials[1].check_image", with(func(c *broker.RegistryCredential) { c.CheckImage = "ghcr.io/acme/app:1" })},
		{"a check image that is no reference", "registry_credentials[1].check_image", with(func(c *broker.RegistryCredential) { c.CheckImage = "registry.example.com/Acme" })},
		{"an expiry that has passed", "expire_time", with(func(c *broker.RegistryCredential) { c.ExpiresAt = time.Now().Add(-time.Minute) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reg.AddRegistryCredential(ctx, "web", "", tc.cred)
			var invalid *broker.InvalidError
			if !errors.As(err, &invalid) || invalid.Violations[0].Field != tc.field {
				t.Fatalf("got %v, want a violation of %s", err, tc.field)
			}
			if strings.Contains(err.Error(), tc.cred.Password) && tc.cred.Password != "" {
				t.Errorf("the error quotes the password: %v", err)
			}
			if cur, _ := reg.Get(ctx, "web"); len(cur.RegistryCredentials) != 1 {
				t.Errorf("a refused credential was stored: %v", cur.RegistryCredentials)
			}
		})
	}
	if _, err := reg.RotateRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "docker.io", Password: "x"}); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("rotating a registry the tenant has no credential for: %v, want ErrNotFound", err)
	}
	if _, err := reg.RemoveRegistryCredential(ctx, "web", "", "docker.io"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("removing a registry the tenant has no credential for: %v, want ErrNotFound", err)
	}
	mirror := good
	mirror.Host, mirror.Owners = "ghcr-mirror.example.com", nil
	if _, err := reg.AddRegistryCredential(ctx, "web", "", mirror); err != nil {
		t.Errorf("a mirror's credential without owners: %v", err)
	}
}

func TestARegistryPasswordIsStoredSealedAndRotates(t *testing.T) {
	ctx := context.Background()
	reg, store := registryWithHosts(t)
	expires := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	if _, err := reg.AddRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "quay.io", Username: "acme+robot", Password: "first-s3cret",
		Owners: []string{"acme"}, CheckImage: "quay.io/acme/base:1", ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	stored, err := store.GetTenant(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(stored)
	c := stored.RegistryCredentials[0]
	switch {
	case bytes.Contains(raw, []byte("first-s3cret")):
		t.Fatalf("the stored tenant holds the password in plaintext: %s", raw)
	case c.Password != "" || len(c.Sealed) == 0 || c.Fingerprint != broker.Fingerprint("first-s3cret"):
		t.Fatalf("stored %+v, want it sealed with the fingerprint of the password", c)
	case !c.ExpiresAt.Equal(expires):
		t.Errorf("expiry %s, want %s", c.ExpiresAt, expires)
	}

	rotated, err := reg.RotateRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "quay.io", Password: "second-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	c = rotated.RegistryCredentials[0]
	if c.Fingerprint != broker.Fingerprint("second-s3cret") || c.Username != "acme+robot" || !c.ExpiresAt.IsZero() ||
		c.CheckImage != "quay.io/acme/base:1" || len(c.Owners) != 1 {
		t.Errorf("after rotating: %+v, want the new fingerprint, no expiry, the rest kept", c)
	}
	// An update of the tenant keeps its registries.
	updated, err := reg.Update(ctx, "web", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.ProbeImage = "ghcr.io/acme/app:1"
		return t, nil
	})
	if err != nil || len(updated.RegistryCredentials) != 1 || updated.RegistryCredentials[0].Fingerprint != c.Fingerprint {
		t.Errorf("after an update: %v, %+v", err, updated.RegistryCredentials)
	}
}

func TestImagesOfAStaticRegistryAreTheTenantsUnderItsOwnersOnly(t *testing.T) {
	ctx := context.Background()
	reg, _ := registryWithHosts(t)
	web, err := reg.AddRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "quay.io", Username: "r", Password: "p", Owners: []string{"acme", "acme-tools"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		image  string
		reason broker.ImageReason
	}{
		{"quay.io/acme/app:1", broker.ImageAllowed},
		{"quay.io/acme-tools/lint@sha256:" + strings.Repeat("a", 64), broker.ImageAllowed},
		{"quay.io/other/app:1", broker.ImageWrongOwner},
		{"quay.io/app:1", broker.ImageInvalidReference},
		{"docker.io/acme/app:1", broker.ImageWrongRegistry},
		{"ghcr.io/acme/app:1", broker.ImageAllowed},
	} {
		if v := reg.ImageRules().Validate(web, tc.image); v.Reason != tc.reason {
			t.Errorf("%s: %s (%s), want %s", tc.image, v.Reason, v.Message, tc.reason)
		}
	}
	scopes := reg.ImageRules().Scopes(web)
	for _, want := range []string{"quay.io/acme", "quay.io/acme-tools", "ghcr.io/acme", "ghcr-mirror.example.com/acme"} {
		if !strings.Contains(" "+strings.Join(scopes, " ")+" ", " "+want+" ") {
			t.Errorf("scopes %v lack %s", scopes, want)
		}
	}
}
