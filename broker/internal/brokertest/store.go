package brokertest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/credbroker/credbroker/broker"
)

// MemStore is a Store in a map, for the package's own tests (broker cannot
// import boltstore, which imports broker).
type MemStore struct {
	Mu      sync.Mutex
	seq     int
	tenants map[string]broker.Tenant
}

func NewMemStore() *MemStore { return &MemStore{tenants: map[string]broker.Tenant{}} }

func (m *MemStore) GetTenant(_ context.Context, id string) (broker.Tenant, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	t, ok := m.tenants[id]
	if !ok {
		return broker.Tenant{}, broker.ErrNotFound
	}
	return t, nil
}

func (m *MemStore) ListTenants(_ context.Context, after string, limit int) ([]broker.Tenant, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []broker.Tenant
	for _, t := range m.tenants {
		if t.ID > after {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b broker.Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(limit, len(out))], nil
}

func (m *MemStore) put(t broker.Tenant) broker.Tenant {
	m.seq++
	t.Version = strconv.Itoa(m.seq)
	m.tenants[t.ID] = t
	return t
}

func (m *MemStore) CreateTenant(_ context.Context, t broker.Tenant) (broker.Tenant, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	if _, ok := m.tenants[t.ID]; ok {
		return broker.Tenant{}, broker.ErrAlreadyExists
	}
	return m.put(t), nil
}

func (m *MemStore) UpdateTenant(_ context.Context, t broker.Tenant) (broker.Tenant, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	cur, ok := m.tenants[t.ID]
	switch {
	case !ok:
		return broker.Tenant{}, broker.ErrNotFound
	case cur.Version != t.Version:
		return broker.Tenant{}, broker.ErrConflict
	}
	return m.put(t), nil
}

func (m *MemStore) DeleteTenant(_ context.Context, id, version string) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	cur, ok := m.tenants[id]
	switch {
	case !ok:
		return broker.ErrNotFound
	case version != "" && cur.Version != version:
		return broker.ErrConflict
	}
	delete(m.tenants, id)
	return nil
}

// MemEvents is an EventStore and CredentialStore in memory.
type MemEvents struct {
	Mu      sync.Mutex
	Events  []broker.Event
	pending map[string]bool
	Creds   map[string][]byte
}

func NewMemEvents() *MemEvents {
	return &MemEvents{pending: map[string]bool{}, Creds: map[string][]byte{}}
}

func (m *MemEvents) AppendEvent(_ context.Context, ev broker.Event, deliver bool) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	m.Events = append(m.Events, ev)
	if deliver {
		m.pending[ev.ID] = true
	}
	return nil
}

func (m *MemEvents) EventsAfter(_ context.Context, afterID string, limit int) ([]broker.Event, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []broker.Event
	for _, ev := range m.Events {
		if ev.ID > afterID && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *MemEvents) EventsBefore(_ context.Context, beforeID string, limit int) ([]broker.Event, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []broker.Event
	for _, ev := range slices.Backward(m.Events) {
		if (beforeID == "" || ev.ID < beforeID) && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *MemEvents) PendingEvents(_ context.Context, limit int) ([]broker.Event, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []broker.Event
	for _, ev := range m.Events {
		if m.pending[ev.ID] && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *MemEvents) MarkDelivered(_ context.Context, id string) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	delete(m.pending, id)
	return nil
}

func (m *MemEvents) GetCredential(_ context.Context, key string) ([]byte, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	v, ok := m.Creds[key]
	if !ok {
		return nil, broker.ErrNotFound
	}
	return v, nil
}

func (m *MemEvents) PutCredential(_ context.Context, key string, sealed []byte) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	m.Creds[key] = sealed
	return nil
}

func (m *MemEvents) DeleteCredential(_ context.Context, key string) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	delete(m.Creds, key)
	return nil
}

// Types lists the events' types in order, as "TYPE tenant" strings.
func (m *MemEvents) Types() []string {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []string
	for _, ev := range m.Events {
		out = append(out, string(ev.Type)+" "+ev.TenantID)
	}
	return out
}

// MemInbox is an Inbox in memory that never forgets.
type MemInbox struct {
	Mu         sync.Mutex
	deliveries []broker.Delivery
	done       map[string]bool
}

func (m *MemInbox) AddDelivery(_ context.Context, d broker.Delivery) (bool, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	if slices.ContainsFunc(m.deliveries, func(s broker.Delivery) bool { return s.Key() == d.Key() }) {
		return false, nil
	}
	m.deliveries = append(m.deliveries, d)
	return true, nil
}

func (m *MemInbox) PendingDeliveries(_ context.Context, limit int) ([]broker.Delivery, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []broker.Delivery
	for _, d := range m.deliveries {
		if !m.done[d.Key()] && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *MemInbox) FinishDelivery(_ context.Context, key string) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	if m.done == nil {
		m.done = map[string]bool{}
	}
	m.done[key] = true
	return nil
}
