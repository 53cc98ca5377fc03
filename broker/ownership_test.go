package broker

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var digest = "sha256:" + strings.Repeat("ab", 32)

func ownershipTenant() Tenant {
	return Tenant{ID: "web", Owner: Owner{Login: "Acme", ID: 1, Type: OwnerOrganization},
		Registries: []string{"ghcr.io", "registry.local:5000"}, AllowedOwners: []string{"acme-shared"}}
}

func TestValidateImage(t *testing.T) {
	tests := []struct {
		image string
		want  ImageReason
	}{
		// Allowed: the owner (any case of the login), tags, digests, both, granted owners, deep paths.
		{"ghcr.io/acme/api", ImageAllowed},
		{"ghcr.io/acme/api:1.2.3", ImageAllowed},
		{"ghcr.io/acme/api@" + digest, ImageAllowed},
		{"ghcr.io/acme/api:1.2@" + digest, ImageAllowed},
		{"ghcr.io/acme/team/sub/api:latest", ImageAllowed},
		{"ghcr.io/acme-shared/base:1", ImageAllowed},
		{"GHCR.IO/acme/api", ImageAllowed},
		{"registry.local:5000/acme/api", ImageAllowed},
		{"ghcr.io/acme/a", ImageAllowed},
		{"ghcr.io/acme/api_v2.x-y", ImageAllowed},
		// Another owner, however close.
		{"ghcr.io/evil/api", ImageWrongOwner},
		{"ghcr.io/acme-evil/api", ImageWrongOwner},
		{"ghcr.io/acmee/api", ImageWrongOwner},
		{"ghcr.io/acm/api", ImageWrongOwner},
		{"ghcr.io/evil/acme/api", ImageWrongOwner},
		{"ghcr.io/evil/acme", ImageWrongOwner},
		{"ghcr.io/acme-shared-not/x", ImageWrongOwner},
		{"ghcr.io/_/acme", ImageInvalidReference},
		// Another registry: look-alikes, ports, schemes, subdomains.
		{"ghcr.io.evil.com/acme/api", ImageWrongRegistry},
		{"evil.com/ghcr.io/acme/api", ImageWrongRegistry},
		{"ghcr.io:443/acme/api", ImageWrongRegistry},
		{"ghcr.io:5000/acme/api", ImageWrongRegistry},
		{"registry.local/acme/api", ImageWrongRegistry},
		{"registry.local:5001/acme/api", ImageWrongRegistry},
		{"www.ghcr.io/acme/api", ImageWrongRegistry},
		{"docker.io/acme/api", ImageWrongRegistry},
		{"index.docker.io/acme/api", ImageWrongRegistry},
		{"quay.io/acme/api", ImageWrongRegistry},
		{"localhost/acme/api", ImageWrongRegistry},
		{"localhost:5000/acme/api", ImageWrongRegistry},
		{"127.0.0.1:5000/acme/api", ImageWrongRegistry},
		// No registry named: Docker Hub.
		{"acme/api", ImageImplicitDockerHub},
		{"api", ImageImplicitDockerHub},
		{"ubuntu:24.04", ImageImplicitDockerHub},
		{"library/ubuntu@" + digest, ImageImplicitDockerHub},
		{"ghcr/acme/api", ImageImplicitDockerHub},
		// Not references at all, or nothing under an owner.
		{"", ImageInvalidReference},
		{"ghcr.io/Acme/api", ImageInvalidReference},
		{"ghcr.io/acme/API", ImageInvalidReference},
		{"ghcr.io/acme/../evil/api", ImageInvalidReference},
		{"ghcr.io/acme//api", ImageInvalidReference},
		{"ghcr.io//acme/api", ImageInvalidReference},
		{"ghcr.io/acme/api:", ImageInvalidReference},
		{"ghcr.io/acme/api@sha256:short", ImageInvalidReference},
		{"ghcr.io/acme/api:tag with space", ImageInvalidReference},
		{" ghcr.io/acme/api", ImageInvalidReference},
		{"https://ghcr.io/acme/api", ImageInvalidReference},
		{"ghcr.io/acme", ImageInvalidReference},
		{"ghcr.io/", ImageInvalidReference},
		{"ghcr.io/acme/api:" + strings.Repeat("t", 129), ImageInvalidReference},
		{"ghcr.io/-acme/api", ImageInvalidReference},
	}
	if len(tests) < 40 {
		t.Fatalf("only %d references", len(tests))
	}
	tn := ownershipTenant()
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			v := ValidateImage(tn, tc.image)
			if v.Reason != tc.want || v.Allowed != (tc.want == ImageAllowed) {
				t.Errorf("%q: %v %s (%s), want %s", tc.image, v.Allowed, v.Reason, v.Message, tc.want)
			}
			if v.Message == "" {
				t.Error("verdict without a message")
			}
		})
	}
}

func TestValidatePodJudgesEveryContainer(t *testing.T) {
	allowed, verdicts := ValidatePod(ownershipTenant(), []Container{
		{Name: "app", Kind: ContainerRegular, Image: "ghcr.io/acme/api:1"},
		{Name: "setup", Kind: ContainerInit, Image: "ghcr.io/acme/setup:1"},
		{Name: "debug", Kind: ContainerEphemeral, Image: "busybox"},
	})
	if allowed || len(verdicts) != 3 {
		t.Fatalf("allowed %v with %d verdicts", allowed, len(verdicts))
	}
	if !verdicts[0].Allowed || !verdicts[1].Allowed || verdicts[2].Reason != ImageImplicitDockerHub || verdicts[2].Kind != ContainerEphemeral {
		t.Errorf("verdicts %+v", verdicts)
	}
	if ok, _ := ValidatePod(ownershipTenant(), []Container{{Name: "a", Image: "ghcr.io/acme/a"}}); !ok {
		t.Error("a pod of allowed images was denied")
	}
}

// FuzzValidateImage: no input panics, and no allowed image belongs to
// another owner or registry. The oracle splits the raw string itself rather
// than trusting the reference parser that ValidateImage uses.
func FuzzValidateImage(f *testing.F) {
	for _, seed := range []string{"ghcr.io/acme/api:1", "ghcr.io/acme-shared/x@" + digest, "ghcr.io.evil.com/acme/a",
		"GHCR.io/acme/a", "registry.local:5000/acme/x", "acme/api", "ghcr.io/evil/acme", "ghcr.io/acme/../x", ""} {
		f.Add(seed)
	}
	tn := ownershipTenant()
	f.Fuzz(func(t *testing.T, image string) {
		v := ValidateImage(tn, image)
		if v.Message == "" || v.Allowed != (v.Reason == ImageAllowed) {
			t.Fatalf("%q: inconsistent verdict %+v", image, v)
		}
		if !v.Allowed {
			return
		}
		host, rest, _ := strings.Cut(image, "/")
		owner, _, _ := strings.Cut(rest, "/")
		ownerOK := strings.EqualFold(owner, tn.Owner.Login) || slicesContainsFold(tn.AllowedOwners, owner)
		if !utf8.ValidString(image) || !slicesContainsFold(tn.Registries, host) || !ownerOK {
			t.Fatalf("%q allowed, but its host is %q and its owner %q", image, host, owner)
		}
	})
}
