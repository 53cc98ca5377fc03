package broker

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// memStore is a Store in a map, for the package's own tests (broker cannot
// import boltstore, which imports broker).
type memStore struct {
	mu      sync.Mutex
	seq     int
	tenants map[string]Tenant
}

func newMemStore() *memStore { return &memStore{tenants: map[string]Tenant{}} }

func (m *memStore) GetTenant(_ context.Context, id string) (Tenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tenants[id]
	if !ok {
		return Tenant{}, ErrNotFound
	}
	return t, nil
}

func (m *memStore) ListTenants(_ context.Context, after string, limit int) ([]Tenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Tenant
	for _, t := range m.tenants {
		if t.ID > after {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(limit, len(out))], nil
}

func (m *memStore) put(t Tenant) Tenant {
	m.seq++
	t.Version = strconv.Itoa(m.seq)
	m.tenants[t.ID] = t
	return t
}

func (m *memStore) CreateTenant(_ context.Context, t Tenant) (Tenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tenants[t.ID]; ok {
		return Tenant{}, ErrAlreadyExists
	}
	return m.put(t), nil
}

func (m *memStore) UpdateTenant(_ context.Context, t Tenant) (Tenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.tenants[t.ID]
	switch {
	case !ok:
		return Tenant{}, ErrNotFound
	case cur.Version != t.Version:
		return Tenant{}, ErrConflict
	}
	return m.put(t), nil
}

func (m *memStore) DeleteTenant(_ context.Context, id, version string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.tenants[id]
	switch {
	case !ok:
		return ErrNotFound
	case version != "" && cur.Version != version:
		return ErrConflict
	}
	delete(m.tenants, id)
	return nil
}
