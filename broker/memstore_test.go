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

// memEvents is an EventStore and CredentialStore in memory.
type memEvents struct {
	mu      sync.Mutex
	events  []Event
	pending map[string]bool
	creds   map[string][]byte
}

func newMemEvents() *memEvents {
	return &memEvents{pending: map[string]bool{}, creds: map[string][]byte{}}
}

func (m *memEvents) AppendEvent(_ context.Context, ev Event, deliver bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev)
	if deliver {
		m.pending[ev.ID] = true
	}
	return nil
}

func (m *memEvents) EventsAfter(_ context.Context, afterID string, limit int) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, ev := range m.events {
		if ev.ID > afterID && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *memEvents) EventsBefore(_ context.Context, beforeID string, limit int) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, ev := range slices.Backward(m.events) {
		if (beforeID == "" || ev.ID < beforeID) && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *memEvents) PendingEvents(_ context.Context, limit int) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, ev := range m.events {
		if m.pending[ev.ID] && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *memEvents) MarkDelivered(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, id)
	return nil
}

func (m *memEvents) GetCredential(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.creds[key]
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}

func (m *memEvents) PutCredential(_ context.Context, key string, sealed []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creds[key] = sealed
	return nil
}

func (m *memEvents) DeleteCredential(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.creds, key)
	return nil
}

// types lists the events' types in order, as "TYPE tenant" strings.
func (m *memEvents) types() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, ev := range m.events {
		out = append(out, string(ev.Type)+" "+ev.TenantID)
	}
	return out
}

// memInbox is an Inbox in memory that never forgets.
type memInbox struct {
	mu         sync.Mutex
	deliveries []Delivery
	done       map[string]bool
}

func (m *memInbox) AddDelivery(_ context.Context, d Delivery) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.ContainsFunc(m.deliveries, func(s Delivery) bool { return s.Key() == d.Key() }) {
		return false, nil
	}
	m.deliveries = append(m.deliveries, d)
	return true, nil
}

func (m *memInbox) PendingDeliveries(_ context.Context, limit int) ([]Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Delivery
	for _, d := range m.deliveries {
		if !m.done[d.Key()] && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *memInbox) FinishDelivery(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		m.done = map[string]bool{}
	}
	m.done[key] = true
	return nil
}
