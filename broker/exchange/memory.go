package exchange

import (
	"context"
	"maps"
	"slices"
	"sync"
)

// MemoryPublications is a PublicationStore for one replica: dev mode, the
// embedded store, tests.
type MemoryPublications struct {
	mu   sync.RWMutex
	pubs map[string]memoryPublication
}

type memoryPublication struct {
	fingerprint string
	sealed      []byte
}

// NewMemoryPublications returns an empty store.
func NewMemoryPublications() *MemoryPublications {
	return &MemoryPublications{pubs: map[string]memoryPublication{}}
}

// PutPublication implements PublicationStore.
func (m *MemoryPublications) PutPublication(_ context.Context, tenantID, fingerprint string, sealed []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pubs[tenantID] = memoryPublication{fingerprint: fingerprint, sealed: slices.Clone(sealed)}
	return nil
}

// DeletePublication implements PublicationStore.
func (m *MemoryPublications) DeletePublication(_ context.Context, tenantID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pubs, tenantID)
	return nil
}

// Publication implements PublicationStore.
func (m *MemoryPublications) Publication(tenantID string) (string, []byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.pubs[tenantID]
	return p.fingerprint, p.sealed, ok
}

// Synced implements PublicationStore: memory is all there is.
func (m *MemoryPublications) Synced() bool { return true }

// PublishedTenants implements PublicationStore.
func (m *MemoryPublications) PublishedTenants() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.pubs))
}
