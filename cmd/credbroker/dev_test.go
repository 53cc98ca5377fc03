package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/credbroker/credbroker/internal/testenv"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// demoTenant is what of a demo tenant a restart must bring back as it was.
type demoTenant struct {
	ID         string
	Registries []string
	ProbeImage string
	PAT        struct{ Fingerprint string }
	CreateTime string
}

// demoTenants lists the tenants dev mode serves.
func demoTenants(t *testing.T, p *process, token string) []demoTenant {
	t.Helper()
	code, body := testenv.REST(t, http.MethodGet, p.httpURL+"/v1/tenants", token, "")
	var list struct{ Tenants []demoTenant }
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil || len(list.Tenants) != 3 {
		t.Fatalf("list tenants: %d %s (%v), want the three demo tenants", code, body, err)
	}
	return list.Tenants
}

// restartDev starts dev mode on data with args, stops it, and starts it
// again on the same data dir: what someone who runs `serve --dev --data-dir
// D` twice does. It returns the tenants the first start served and the
// second start, running.
func restartDev(t *testing.T, data string, args ...string) (first []demoTenant, second *process) {
	t.Helper()
	args = append([]string{"serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", data}, args...)
	p := startBinary(t, nil, args...)
	first = demoTenants(t, p, adminToken(t, data))
	if code := p.Terminate(t); code != 0 {
		t.Fatalf("first start: exit code %d after SIGTERM:\n%s", code, p.Output())
	}
	return first, startBinary(t, nil, args...)
}

func adminToken(t *testing.T, data string) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(token))
}

// TestDevModeRestartsOnItsDataDir: dev mode started a second time on its
// data dir comes back with the demo its tenants were registered with (the
// emulated registry's port, the machine user's PAT) instead of refusing to
// start because "tenant demo exists with different content".
func TestDevModeRestartsOnItsDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	first, p := restartDev(t, data)
	if got := demoTenants(t, p, adminToken(t, data)); !reflect.DeepEqual(got, first) {
		t.Errorf("after the restart the demo tenants are\n%+v\nwant them as registered\n%+v", got, first)
	}
	// The emulator listens where the tenants say: their registry's port.
	_, rest, _ := strings.Cut(p.Output(), "\n  registry ")
	if host := strings.Fields(rest + " ?")[0]; !strings.HasPrefix(first[1].ProbeImage, host+"/") {
		t.Errorf("the second start's registry is %s, the demo tenants name %s", host, first[1].ProbeImage)
	}
}

// TestDevModeRefusesAnotherRegistryPortOnItsDataDir: the data dir's demo
// tenants name the registry's port; a restart asking for another one is
// refused with what to do, not a clash of tenant contents.
func TestDevModeRefusesAnotherRegistryPortOnItsDataDir(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, demoRegistryPortFile), []byte("5301"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag     int
		wantPort int
		wantErr  string
	}{
		{0, 5301, ""},
		{5301, 5301, ""},
		{5302, 0, "--dev-registry-port 5302: the demo tenants of data dir " + data + " name port 5301"},
	} {
		got, err := keptDemo(data, tc.flag)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "new --data-dir") {
				t.Errorf("--dev-registry-port %d: err %v, want %q and the fix", tc.flag, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.RegistryPort != tc.wantPort {
			t.Errorf("--dev-registry-port %d: port %d (%v), want %d", tc.flag, got.RegistryPort, err, tc.wantPort)
		}
	}
}

// TestDevModeRestartedServesTheSameCredential: with a cluster (what make
// run starts), dev mode restarted on its data dir serves the demo tenants'
// credential again: READY for demo-pat, and the kubelet's exchange for a
// Pod of demo-secretless answers with the machine user's PAT, keyed for the
// registry the tenants name.
func TestDevModeRestartedServesTheSameCredential(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ctx := context.Background()
	cp := testenv.Cluster(t, "demo", "demo-pat", "demo-secretless")
	data := t.TempDir()
	first, p := restartDev(t, data, "--kubeconfig", cp.Kubeconfig(t, "credbroker-dev"))
	token := adminToken(t, data)
	if got := demoTenants(t, p, token); !reflect.DeepEqual(got, first) {
		t.Errorf("after the restart the demo tenants are\n%+v\nwant them as registered\n%+v", got, first)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, body := testenv.REST(t, http.MethodGet, p.httpURL+"/v1/tenants/demo-pat/credential", token, "")
		var st struct{ State string }
		_ = json.Unmarshal(body, &st)
		return st.State == "CREDENTIAL_STATE_READY", testenv.Errorf("demo-pat's credential after the restart: %s", body)
	})
	pat, err := os.ReadFile(filepath.Join(data, demoPATFile))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	exchange := credbrokerv1.NewPullCredentialServiceClient(conn)
	sa := testenv.ServiceAccountToken(t, cp.Admin, testenv.PodOfServiceAccount(t, cp.Admin, "demo-secretless", "app", "hello"), "credbroker", true)
	registry := first[0].Registries[0]
	var got *credbrokerv1.ExchangeServiceAccountTokenResponse
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got, err = exchange.ExchangeServiceAccountToken(ctx, &credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: sa, Image: registry + "/octo-org/hello"})
		return err == nil, fmt.Sprint("the demo tenant's Pod got no credential after the restart: ", err)
	})
	if a := got.GetAuth()[registry+"/octo-org"]; got.GetTenantId() != "demo-secretless" || a.GetUsername() != "octo-org-bot" || a.GetPassword() != string(pat) {
		t.Errorf("exchange after the restart: tenant %q, auth for %s/octo-org %v; want demo-secretless with the kept PAT", got.GetTenantId(), registry, got.GetAuth())
	}
}
