package server_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/credbroker/credbroker/broker/exchange"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// peerRecorder is podTokens that notes the caller address the Guard
// passed on.
type peerRecorder struct {
	podTokens
	mu    sync.Mutex
	peers map[string]int
}

func (p *peerRecorder) PodOf(ctx context.Context, token string) (broker.PodIdentity, error) {
	p.mu.Lock()
	p.peers[auth.PeerOf(ctx)]++
	p.mu.Unlock()
	return p.podTokens.PodOf(ctx, token)
}

// The attacker of issue 30, hole 4, at the gRPC port: one address calls
// the exchange as fast as it can. Past its burst it is refused
// RESOURCE_EXHAUSTED before its token is looked at, and the method is
// told the address (for the per-address limit of reviews).
func TestOneAddressCannotTakeTheExchange(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tokens := &peerRecorder{podTokens: podTokens{}, peers: map[string]int{}}
	exchanger := exchange.New(&namespaceOwners{}, exchange.NewPublications(exchange.NewMemoryPublications(), nil), exchange.Config{}, log)
	limit := auth.Limit{PerSecond: 1, Burst: 20}
	in := start(t, t.TempDir(), server.Services{Exchange: api.NewExchangeAPI(tokens, exchanger, log)},
		func(cfg *server.Config, store *boltstore.Store, log *slog.Logger) {
			cfg.Guard = server.NewGuard(server.GuardConfig{Authenticator: auth.Chain{}, Audit: store, PerPeer: limit}, log)
		})
	client := credbrokerv1.NewPullCredentialServiceClient(in.conn)
	codesSeen := map[codes.Code]int{}
	for range 200 {
		_, err := client.ExchangeServiceAccountToken(ctx, &credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: "made-up", Image: "ghcr.io/acme/app"})
		codesSeen[status.Code(err)]++
	}
	if codesSeen[codes.Unauthenticated] > limit.Burst+2 || codesSeen[codes.ResourceExhausted] < 200-limit.Burst-2 {
		t.Errorf("200 calls from one address: %v; want about %d judged (UNAUTHENTICATED) and the rest RESOURCE_EXHAUSTED", codesSeen, limit.Burst)
	}
	tokens.mu.Lock()
	defer tokens.mu.Unlock()
	if len(tokens.peers) != 1 || tokens.peers["127.0.0.1"] == 0 {
		t.Errorf("the method was told the addresses %v, want 127.0.0.1", tokens.peers)
	}
}
