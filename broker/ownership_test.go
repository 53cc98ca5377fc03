package broker

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/credbroker/credbroker/internal/testenv"
)

var digest = "sha256:" + strings.Repeat("ab", 32)

// ownershipTenant is the tenant of testenv.ImageReferences.
func ownershipTenant() Tenant {
	return Tenant{ID: "web", Owner: Owner{Login: testenv.ImageTenantOwner, ID: 1, Type: OwnerOrganization},
		Registries: testenv.ImageTenantRegistries, AllowedOwners: testenv.ImageTenantGranted}
}

// ownershipRules are the platform's rules of testenv.ImageReferences.
func ownershipRules(t *testing.T) ImageRules {
	t.Helper()
	rules, err := NewImageRules(testenv.ImagePublicScopes, testenv.ImageMirrors)
	if err != nil {
		t.Fatal(err)
	}
	rules.InCluster = InClusterRegistry{Host: testenv.ImageInClusterHost, NamespacePrefix: testenv.ImageInClusterNamespacePrefix,
		PublicPrefixes: testenv.ImageInClusterPublicPrefixes}
	return rules
}

// ownershipNamespace is the namespace testenv.ImageReferences are judged in.
const ownershipNamespace = "shop"

func TestValidateImage(t *testing.T) {
	tn := ownershipTenant()
	rules := ownershipRules(t)
	for _, tc := range testenv.ImageReferences(ownershipNamespace) {
		t.Run(tc.Image, func(t *testing.T) {
			v := rules.ValidateIn(tn, ownershipNamespace, tc.Image)
			if string(v.Reason) != tc.Reason || v.Allowed != (v.Reason == ImageAllowed) {
				t.Errorf("%q: %v %s (%s), want %s", tc.Image, v.Allowed, v.Reason, v.Message, tc.Reason)
			}
			if v.Message == "" {
				t.Error("verdict without a message")
			}
		})
	}
}

func TestImageScopesAreWhatValidateImageAllows(t *testing.T) {
	tn := ownershipTenant()
	want := []string{"ghcr.io/acme", "ghcr.io/acme-shared", "registry.local:5000/acme", "registry.local:5000/acme-shared"}
	if got := tn.ImageScopes(); !slices.Equal(got, want) {
		t.Fatalf("scopes %q, want %q", got, want)
	}
	for _, scope := range want {
		if v := ValidateImage(tn, scope+"/app:1"); !v.Allowed {
			t.Errorf("%s/app:1 is denied: %s", scope, v.Message)
		}
	}
}

// A namespace's scopes on the in-cluster registry are what the token
// service lets it pull there, each by whole path components; the tenant
// as a whole (Validate, the exchange) gets none of them, since they are a
// namespace's.
func TestTheInClusterRegistryIsANamespaces(t *testing.T) {
	tn, rules := ownershipTenant(), ownershipRules(t)
	h := testenv.ImageInClusterHost
	want := []string{h + "/acme", h + "/acme-shared", h + "/cluster.local/shop", h + "/mesh/sidecars", h + "/platform", h + "/vendor/team/tools"}
	got := slices.DeleteFunc(rules.ScopesIn(tn, "shop"), func(s string) bool { return !strings.HasPrefix(s, h+"/") })
	if !slices.Equal(got, want) {
		t.Errorf("in-cluster scopes of shop %q, want %q", got, want)
	}
	for _, image := range []string{h + "/cluster.local/shop/app", h + "/acme/app", h + "/platform/base"} {
		if v := rules.Validate(tn, image); v.Allowed || v.Reason != ImageWrongRegistry {
			t.Errorf("%s for the tenant as a whole: %v %s, want WRONG_REGISTRY", image, v.Allowed, v.Reason)
		}
		if rules.IsPublic(tn, image) {
			t.Errorf("%s is public to the exchange", image)
		}
	}
	if v := rules.ValidateIn(tn, "web", h+"/cluster.local/shop/app"); v.Allowed {
		t.Errorf("namespace web may run shop's image: %s", v.Message)
	}
	if v := (ImageRules{}).ValidateIn(tn, "shop", h+"/cluster.local/shop/app"); v.Allowed {
		t.Errorf("without an in-cluster registry: %s", v.Message)
	}
}

func TestParseImageScope(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"docker.io/istio", "docker.io/istio"},
		{"GHCR.io/Platform-Base", "ghcr.io/platform-base"},
		{"registry.local:5000/platform", "registry.local:5000/platform"},
		{"index.docker.io/istio", ""},
		{"ghcr.io", ""},
		{"ghcr.io/", ""},
		{"ghcr.io/a/b", ""},
		{"istio", ""},
		{"https://ghcr.io/x", ""},
	} {
		got, err := ParseImageScope(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ParseImageScope(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestValidatePodJudgesEveryContainer(t *testing.T) {
	allowed, verdicts := ValidatePod(ImageRules{}, ownershipTenant(), []Container{
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
	if ok, _ := ValidatePod(ImageRules{}, ownershipTenant(), []Container{{Name: "a", Image: "ghcr.io/acme/a"}}); !ok {
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
		ownerOK := strings.EqualFold(owner, tn.Owner.Login) || SlicesContainsFold(tn.AllowedOwners, owner)
		if !utf8.ValidString(image) || !SlicesContainsFold(tn.Registries, host) || !ownerOK {
			t.Fatalf("%q allowed, but its host is %q and its owner %q", image, host, owner)
		}
	})
}

func TestMirrors(t *testing.T) {
	for text, want := range map[string]string{
		"ghcr-mirror.example.com=ghcr.io":     "ghcr-mirror.example.com=ghcr.io",
		"Mirror.Example.com/GHCR.io=ghcr.io":  "mirror.example.com/ghcr.io=ghcr.io",
		"mirror.example.com:5000/a/b=quay.io": "mirror.example.com:5000/a/b=quay.io",
		"mirror.example.com/ghcr.io":          "",
		"mirror.example.com=ghcr.io/acme":     "",
		"ghcr.io=ghcr.io":                     "",
		"mirror/ghcr.io=ghcr.io":              "", // "mirror" is not a registry host
		"mirror.example.com/a//b=ghcr.io":     "",
	} {
		m, err := ParseMirror(text)
		if got := m.Prefix + "=" + m.Upstream; (err == nil && got != want) || (err != nil) != (want == "") {
			t.Errorf("ParseMirror(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
	rules, tn := ownershipRules(t), ownershipTenant()
	for image, public := range map[string]bool{
		"mirror.example.com/docker.io/istio/proxyv2": true,
		"docker.io/istio/proxyv2":                    true,
		"ghcr-mirror.example.com/acme/api":           false,
		"mirror.example.com/ghcr.io/acme/api":        false,
		"mirror.example.com/docker.io/evil/x":        false,
	} {
		if got := rules.IsPublic(tn, image); got != public {
			t.Errorf("IsPublic(%s) = %v, want %v", image, got, public)
		}
	}
}
