package github_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/internal/testenv"
)

// registryBinEnv names the CNCF Distribution registry binary that `make test`
// builds from hack/registry.
const registryBinEnv = testenv.RegistryBinEnv

// realRegistry puts the CNCF Distribution registry behind the emulator's
// registry host (RunDistribution) and returns that host.
func realRegistry(t *testing.T, gh *emulator.Server) string {
	t.Helper()
	testenv.Require(t, registryBinEnv)
	bin := os.Getenv(registryBinEnv)
	dir := t.TempDir()
	stop, err := gh.RunDistribution(context.Background(), bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Logf("registry log:\n%s", log)
		}
	})
	return gh.RegistryHost()
}

// push uploads a one-layer OCI image with a write:packages PAT, the way a
// pushing client does: token, blob uploads, manifest.
func push(t *testing.T, gh *emulator.Server, registry, repo, tag, user, token string) {
	t.Helper()
	q := url.Values{"service": {gh.RegistryService()}, "scope": {"repository:" + repo + ":pull,push"}}
	req, _ := http.NewRequest(http.MethodGet, gh.RegistryRealm()+"?"+q.Encode(), nil)
	req.SetBasicAuth(user, token)
	var tok struct{ Token string }
	mustDo(t, req, http.StatusOK, &tok)

	upload := func(content []byte) string {
		sum := sha256.Sum256(content)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		req, _ := http.NewRequest(http.MethodPost, "http://"+registry+"/v2/"+repo+"/blobs/uploads/", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp := mustDo(t, req, http.StatusAccepted, nil)
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		loc = (&url.URL{Scheme: "http", Host: registry}).ResolveReference(loc)
		lq := loc.Query()
		lq.Set("digest", digest)
		loc.RawQuery = lq.Encode()
		req, _ = http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(content))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/octet-stream")
		mustDo(t, req, http.StatusCreated, nil)
		return digest
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("credbroker test layer " + repo)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": upload(config), "size": len(config)},
		"layers":        []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": upload(layer), "size": len(layer)}},
	})
	req, _ = http.NewRequest(http.MethodPut, "http://"+registry+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(manifest))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	mustDo(t, req, http.StatusCreated, nil)
}

func mustDo(t *testing.T, req *http.Request, want int, into any) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, body, want)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatal(err)
		}
	}
	return resp
}

func TestProbeAgainstARealRegistry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const pusher = "ghp_pusherWRITEpackages0123456789abcdef"
	f.gh.AddPAT(pusher, emulator.IssuedPAT{Owner: emulator.Account{Login: "release-bot", ID: 99, Type: "User"},
		Scopes: []string{"write:packages"}, Orgs: []string{"octo", "acme"}})
	registry := realRegistry(t, f.gh)
	push(t, f.gh, registry, "octo/app", "v1", "release-bot", pusher)
	push(t, f.gh, registry, "acme/api", "v1", "release-bot", pusher)
	f.gh.AddPAT("ghp_revokedREVOKED0123456789abcdefghij", emulator.IssuedPAT{
		Owner: emulator.Account{Login: "octo", ID: 7, Type: "User"}, Scopes: []string{"read:packages"}})
	f.gh.Revoke("ghp_revokedREVOKED0123456789abcdefghij")

	prober := github.NewPullProber(github.PullProberConfig{Timeout: 5 * time.Second, Recheck: f.client.Recheck})
	tests := []struct {
		name  string
		cred  func() broker.Credential
		image string
		want  broker.Reason
	}{
		{"PAT pulls its user's image", patCredential, "octo/app:v1", ""},
		{"PAT denied another owner's image", patCredential, "acme/api:v1", broker.ReasonNoPackageAccess},
		{"PAT asks for a tag that does not exist", patCredential, "octo/app:v2", broker.ReasonImageNotFound},
		{"revoked PAT", func() broker.Credential {
			return broker.Credential{Kind: broker.KindPAT, Username: "octo", Token: "ghp_revokedREVOKED0123456789abcdefghij"}
		}, "octo/app:v1", broker.ReasonTokenRevoked},
		{"App token of acme logs in but is denied", func() broker.Credential {
			cred, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			cred.IssuedAt = cred.IssuedAt.Add(-time.Hour) // past the replication-lag window
			return cred
		}, "acme/api:v1", broker.ReasonAppTokenNotAccepted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := f.record(prober.Probe(ctx, tc.cred(), registry+"/"+tc.image))
			t.Logf("real registry: probe %s → %v", tc.image, err)
			assertOutcome(t, err, tc.want)
			// Distribution's 401 insufficient_scope reaches the prober as
			// ghcr.io's 403 DENIED, through the emulator in front of it.
			var e *github.Error
			if denied := tc.want == broker.ReasonNoPackageAccess || tc.want == broker.ReasonAppTokenNotAccepted; denied && (!errors.As(err, &e) || e.Status != http.StatusForbidden) {
				t.Errorf("a denied pull answered %v, want HTTP 403", err)
			}
		})
	}
}
