package github

import (
	"maps"
	"testing"
)

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		header, scheme string
		params         map[string]string
	}{
		{`Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"`, "Bearer",
			map[string]string{"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:a/b:pull"}},
		{`Bearer realm="https://r/token",scope="repository:a/b:pull,push",error="insufficient_scope"`, "Bearer",
			map[string]string{"realm": "https://r/token", "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}},
		{`Basic realm="Registry Realm"`, "Basic", map[string]string{"realm": "Registry Realm"}},
		{`Bearer Realm=unquoted, service="s\"q"`, "Bearer", map[string]string{"realm": "unquoted", "service": `s"q`}},
		{``, "", map[string]string{}},
	}
	for _, tc := range tests {
		scheme, params := parseChallenge(tc.header)
		if scheme != tc.scheme || !maps.Equal(params, tc.params) {
			t.Errorf("parseChallenge(%q) = %q %v, want %q %v", tc.header, scheme, params, tc.scheme, tc.params)
		}
	}
}
