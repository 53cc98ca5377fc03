package registrytoken

import (
	"log/slog"
	"net/http"
	"slices"
	"testing"
)

// TestPublicPrefixesCoverWholePathComponents plays an anonymous puller
// against a platform that wrote its public prefix without the slash:
// "platform" opens platform/… and nothing that merely begins with the
// same letters (platformx/private-app, platform-secrets/db).
func TestPublicPrefixesCoverWholePathComponents(t *testing.T) {
	tests := []struct {
		name, repository string
		pulled           bool
	}{
		{"a repository under the prefix", "platform/app", true},
		{"deeper under the prefix", "platform/team/base", true},
		{"a repository named after the prefix", "platform", true},
		{"another owner whose name begins with the prefix", "platformx/private-app", false},
		{"a dash after the prefix", "platform-secrets/db", false},
		{"a dot after the prefix", "platform.internal/db", false},
	}
	for _, written := range []string{"platform", "platform/"} {
		f := newFixture(t, owners{})
		svc, err := New(Config{Service: "reg", Issuer: "credbroker", PublicPrefixes: []string{written}, Clock: f.clock}, f.keys, pods{}, owners{},
			slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		f.svc, f.h = svc, svc.Handler()
		for _, tc := range tests {
			t.Run(written+": "+tc.name, func(t *testing.T) {
				rec := f.get("reg", "", "repository:"+tc.repository+":pull")
				if rec.Code != http.StatusOK {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				got := granted(f.verify(t, body(t, rec)["token"].(string)))
				if want := []string{"repository:" + tc.repository + ":pull"}; slices.Equal(got, want) != tc.pulled {
					t.Errorf("anonymous pull of %s: granted %v, want pulled %v", tc.repository, got, tc.pulled)
				}
			})
		}
	}
}

// TestMalformedPublicPrefixesAreRefusedAtStart: a prefix that is no
// repository path, or that covers the namespaces' own repositories, stops
// the service from starting instead of opening something by accident.
func TestMalformedPublicPrefixesAreRefusedAtStart(t *testing.T) {
	keys, err := NewKeys(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]string{
		"platform":       "platform/",
		"platform/":      "platform/",
		"platform/base/": "platform/base/",
		"base-images":    "base-images/",
		"":               "",
		"/":              "",
		"/platform":      "",
		"Platform/":      "",
		"platform//base": "",
		"platform:v1":    "",
		"platform@sha":   "",
		"plat form/":     "",
		"*":              "",
	} {
		got, err := ParsePublicPrefix(prefix)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("ParsePublicPrefix(%q) = %q, %v; want %q", prefix, got, err, want)
		}
		_, err = New(Config{Service: "reg", PublicPrefixes: []string{prefix}}, keys, pods{}, owners{}, slog.New(slog.DiscardHandler))
		if (err == nil) != (want != "") {
			t.Errorf("New with public prefix %q: %v", prefix, err)
		}
	}
	for _, prefix := range []string{"cluster.local/", "cluster.local", "cluster.local/web/"} {
		if _, err := New(Config{Service: "reg", PublicPrefixes: []string{prefix}}, keys, pods{}, owners{}, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("public prefix %q over the namespaces' repositories was taken", prefix)
		}
	}
}
