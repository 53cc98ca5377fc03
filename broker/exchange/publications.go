package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/credbroker/credbroker/broker"
)

// publication is what a PublicationStore holds for a tenant, sealed: the
// credential and the owner it was proved for, so that a tenant moved to
// another owner gets nothing until its credential is proved again.
type publication struct {
	Credential broker.Credential `json:"credential"`
	OwnerID    int64             `json:"ownerID"`
	// fingerprint is the credential's, computed once when it is opened:
	// the exchange answers with it at every pull.
	fingerprint string
}

func publicationAD(tenantID string) []byte { return []byte("credbroker/publications/" + tenantID) }

// Publications seals what the leader publishes into a PublicationStore and
// opens it for the exchange, keeping what it opened (by fingerprint) so
// that a warm exchange costs no decryption.
type Publications struct {
	store  broker.PublicationStore
	sealer *broker.Sealer

	mu     sync.Mutex
	opened map[string]publication // by tenant id
	// passwords are the tenants' registry credentials the exchange opened,
	// by tenant id and host.
	passwords map[string]map[string]openedPassword
}

// openedPassword is a registry credential's password and the fingerprint
// it was opened for.
type openedPassword struct {
	fingerprint, password string
}

// NewPublications returns Publications over store. A nil sealer stores the
// credential unsealed: only for a store that never leaves the process.
func NewPublications(store broker.PublicationStore, sealer *broker.Sealer) *Publications {
	return &Publications{store: store, sealer: sealer, opened: map[string]publication{}, passwords: map[string]map[string]openedPassword{}}
}

// Put records cred as t's credential, unless it is already; a tenant the
// provider does not serve has none.
func (p *Publications) Put(ctx context.Context, t broker.Tenant, cred broker.Credential) error {
	if p == nil {
		return nil
	}
	if !t.ServesProvider() {
		if _, _, ok := p.store.Publication(t.ID); ok {
			return p.Remove(ctx, t.ID)
		}
		return nil
	}
	fp := cred.Fingerprint()
	if stored, _, ok := p.store.Publication(t.ID); ok && stored == fp {
		if cur, err := p.open(t.ID); err == nil && cur.OwnerID == t.Owner.ID &&
			cur.Credential.Username == cred.Username && cur.Credential.ExpiresAt.Equal(cred.ExpiresAt) {
			return nil
		}
	}
	plain, err := json.Marshal(publication{Credential: cred, OwnerID: t.Owner.ID})
	if err != nil {
		return fmt.Errorf("encode publication: %w", err)
	}
	sealed := plain
	if p.sealer != nil {
		if sealed, err = p.sealer.SealAs(publicationAD(t.ID), string(plain)); err != nil {
			return fmt.Errorf("seal publication: %w", err)
		}
	}
	return p.store.PutPublication(ctx, t.ID, fp, sealed)
}

// Remove withdraws a tenant's publication.
func (p *Publications) Remove(ctx context.Context, tenantID string) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	delete(p.opened, tenantID)
	delete(p.passwords, tenantID)
	p.mu.Unlock()
	return p.store.DeletePublication(ctx, tenantID)
}

// KeepOnly removes the publications of tenants not in live.
func (p *Publications) KeepOnly(ctx context.Context, live map[string]bool, log *slog.Logger) {
	if p == nil {
		return
	}
	for _, id := range p.store.PublishedTenants() {
		if !live[id] {
			if err := p.Remove(ctx, id); err != nil {
				log.WarnContext(ctx, "remove publication of a tenant that is gone", slog.String("tenant", id), slog.Any("error", err))
			}
		}
	}
}

// errNotPublished is a tenant with nothing published.
var errNotPublished = errors.New("nothing published")

// open returns a tenant's publication, decrypting only what it has not
// seen before.
func (p *Publications) open(tenantID string) (publication, error) {
	if !p.store.Synced() {
		return publication{}, fmt.Errorf("%w: the publications are not loaded", broker.ErrUnavailable)
	}
	fp, sealed, ok := p.store.Publication(tenantID)
	if !ok {
		return publication{}, errNotPublished
	}
	p.mu.Lock()
	cur, seen := p.opened[tenantID]
	p.mu.Unlock()
	if seen && cur.fingerprint == fp {
		return cur, nil
	}
	plain := string(sealed)
	if p.sealer != nil {
		var err error
		if plain, err = p.sealer.OpenAs(publicationAD(tenantID), sealed); err != nil {
			return publication{}, fmt.Errorf("open the publication of tenant %s: %w", tenantID, err)
		}
	}
	var pub publication
	if err := json.Unmarshal([]byte(plain), &pub); err != nil {
		return publication{}, fmt.Errorf("decode the publication of tenant %s: %w", tenantID, err)
	}
	pub.fingerprint = pub.Credential.Fingerprint()
	p.mu.Lock()
	p.opened[tenantID] = pub
	p.mu.Unlock()
	return pub, nil
}

// registryPassword opens the password of a tenant's registry credential
// for the exchange, with the key Tenants sealed it with, decrypting
// only what it has not opened before (by fingerprint).
func (p *Publications) registryPassword(tenantID string, c broker.RegistryCredential) (string, error) {
	host := strings.ToLower(c.Host)
	p.mu.Lock()
	cur, seen := p.passwords[tenantID][host]
	p.mu.Unlock()
	if seen && c.Fingerprint != "" && cur.fingerprint == c.Fingerprint {
		return cur.password, nil
	}
	password, err := broker.NewSecrets(p.sealer).RegistryPassword(tenantID, c)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	if p.passwords[tenantID] == nil {
		p.passwords[tenantID] = map[string]openedPassword{}
	}
	p.passwords[tenantID][host] = openedPassword{fingerprint: broker.Fingerprint(password), password: password}
	p.mu.Unlock()
	return password, nil
}
