package server_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/notify"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testKey is a fixed PAT encryption key for tests.
var testKey = bytes.Repeat([]byte{7}, broker.KeySize)

// GitHub as the tests see it: App 1234 installed on org acme (id 1001) as
// installation 42, and users octo (id 7) and acme-bot (id 8) with classic PATs.
const (
	testAppID   = 1234
	octoPAT     = "ghp_octoREADpackages0123456789abcdefghij"
	acmeBotPAT  = "ghp_acmeBotREADpackages0123456789abcdefg"
	octoUserID  = 7
	acmeOrgID   = 1001
	acmeInstall = 42
)

var appKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	key, _, err := emulator.NewAppKey()
	return key, err
})

// newGitHub starts the emulator with the test fixture and a client for it.
func newGitHub(t testing.TB) (*emulator.Server, *github.Client) {
	t.Helper()
	key, err := appKey()
	if err != nil {
		t.Fatal(err)
	}
	gh := emulator.NewServer()
	t.Cleanup(gh.Close)
	gh.AddApp(testAppID, &key.PublicKey)
	gh.AddInstallation(emulator.AppInstallation{ID: acmeInstall, AppID: testAppID,
		Account:     emulator.Account{Login: "acme", ID: acmeOrgID, Type: "Organization"},
		Permissions: map[string]string{"packages": "read"}})
	gh.AddPAT(octoPAT, emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: octoUserID, Type: "User"},
		Scopes: []string{"read:packages"}})
	gh.AddPAT(acmeBotPAT, emulator.IssuedPAT{Owner: emulator.Account{Login: "acme-bot", ID: 8, Type: "User"},
		Scopes: []string{"read:packages"}, Orgs: []string{"acme"}})
	client, err := github.New(github.Config{BaseURL: gh.URL(), AppID: testAppID, PrivateKey: key, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return gh, client
}

// instance is a running credbroker API on loopback.
type instance struct {
	srv      *server.Server
	gh       *emulator.Server
	github   *github.Client
	registry *broker.Tenants
	creds    *api.CredentialAPI
	notifier *notify.Notifier
	store    *boltstore.Store
	logs     *syncBuffer
	conn     *grpc.ClientConn
	tenants  credbrokerv1.TenantServiceClient
	baseURL  string
	cancel   context.CancelFunc
	done     chan error
}

// option changes the server's configuration before it starts.
type option func(cfg *server.Config, store *boltstore.Store, log *slog.Logger)

// start runs the server over a bbolt store in dataDir until the test ends
// (or stop is called). svc overrides the services; its Tenants defaults to
// the real TenantAPI.
func start(t testing.TB, dataDir string, svc server.Services, opts ...option) *instance {
	t.Helper()
	store, err := boltstore.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := broker.NewSealer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	gh, client := newGitHub(t)
	// The platform grants packages: write, so that asking for more than an
	// installation holds reaches GitHub's check; contents stays refused.
	policy := broker.TenantsConfig{AppPermissions: map[string]string{"packages": "write"}, SoleWriter: true}
	registry := broker.NewTenants(store, sealer, client, clock.RealClock{}, policy)
	if svc.Tenants == nil {
		svc.Tenants = api.NewTenantAPI(registry, log)
	}
	if svc.Images == nil {
		svc.Images = api.NewImageAPI(registry, log)
	}
	creds := api.NewCredentialAPI(registry, log)
	if svc.Credentials == nil {
		svc.Credentials = creds
	}
	notifier := notify.NewNotifier(store, false, clock.RealClock{}, nil, log)
	if svc.Events == nil {
		svc.Events = api.NewEventAPI(store, notifier.Appended, time.Minute, nil, log)
	}
	cfg := server.Config{
		GRPCAddr:        "127.0.0.1:0",
		HTTPAddr:        "127.0.0.1:0",
		ShutdownTimeout: 2 * time.Second,
	}
	for _, opt := range opts {
		opt(&cfg, store, log)
	}
	srv, err := server.New(cfg, svc, store.Ping, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{srv: srv, gh: gh, github: client, registry: registry, creds: creds, notifier: notifier, store: store, logs: logs, cancel: cancel, done: make(chan error, 1),
		baseURL: "http://" + srv.HTTPAddr().String()}
	go func() { in.done <- srv.Run(ctx) }()
	in.conn, err = grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	in.tenants = credbrokerv1.NewTenantServiceClient(in.conn)
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop shuts the server down and waits for Run to return; it is idempotent.
func (in *instance) stop(t testing.TB) {
	t.Helper()
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not shut down")
	}
	_ = in.conn.Close()
	if err := in.store.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
}

// do sends a REST request with a JSON body (if any) and returns the status and
// decoded JSON response.
func (in *instance) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, in.baseURL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		t.Fatalf("%s %s: response is not a JSON object: %s", method, path, raw)
	}
	return resp.StatusCode, out
}
