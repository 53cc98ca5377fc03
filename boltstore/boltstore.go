// Package boltstore keeps credbroker's state in an embedded bbolt file: the
// default for a single replica without a Kubernetes cluster.
package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/credbroker/credbroker/broker"
)

// FileName is the database file inside the data directory.
const FileName = "credbroker.db"

var (
	tenantsBucket     = []byte("tenants")
	credentialsBucket = []byte("credentials")
	eventsBucket      = []byte("events")
	outboxBucket      = []byte("outbox")
	auditBucket       = []byte("audit")
)

// DefaultMaxEvents bounds the event log: past it the oldest delivered
// events go.
const DefaultMaxEvents = 10000

// Store is a broker.Store in a bbolt file.
type Store struct {
	db *bolt.DB
	// broken is set when a transaction met a damaged page: bbolt may then
	// hold its locks from the panicked transaction, so every later call
	// fails at once with this error, and Close leaves the file to the exit.
	broken atomic.Pointer[error]
	// MaxEvents is how many events the log keeps (more while undelivered
	// ones wait); DefaultMaxEvents unless changed before use. The audit
	// trail keeps as many records.
	MaxEvents int
	// MaxDeliveries is how many GitHub deliveries the inbox remembers;
	// DefaultMaxDeliveries when zero.
	MaxDeliveries int
	// audit holds the audit records waiting for their commit.
	audit auditQueue
}

// record is the stored form of a tenant. Version travels inside the value
// because broker.Tenant does not serialise it.
type record struct {
	Version uint64        `json:"version"`
	Tenant  broker.Tenant `json:"tenant"`
}

// ErrCorrupt means the database file is damaged: bbolt found a page that is
// not what it should be.
var ErrCorrupt = errors.New("the database file is corrupt")

// Open opens (creating if needed) the database in dataDir and checks every
// page of it. A second process opening the same file waits up to a few
// seconds for the lock and then fails, instead of blocking forever. A
// damaged file is an error that names it and the way out (ErrCorrupt),
// never a panic: bbolt panics on a bad page at the first read that meets
// it, which would otherwise be later, inside the refresher.
func Open(dataDir string) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	db, err := openChecked(path)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, MaxEvents: DefaultMaxEvents}
	err = s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{tenantsBucket, credentialsBucket, eventsBucket, outboxBucket, auditBucket, deliveriesBucket, deliveryIDsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return s, nil
}

// openChecked opens path and runs bbolt's consistency check over it.
func openChecked(path string) (db *bolt.DB, err error) {
	corrupt := func(why any) error {
		return fmt.Errorf("%w: %s: %v; restore it from a backup, or move it aside to start empty (tenants must then be registered again)",
			ErrCorrupt, path, why)
	}
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, corrupt(r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	switch {
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, corrupt(err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var problems []error
	err = db.View(func(tx *bolt.Tx) error {
		for problem := range tx.Check() { // drained to the end: Check's goroutine waits on every send
			if len(problems) < 3 {
				problems = append(problems, problem)
			}
		}
		return nil
	})
	if err == nil && len(problems) > 0 {
		err = corrupt(errors.Join(problems...))
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// view and update are bbolt's View and Update with its panics on a damaged
// page turned into ErrCorrupt: a store call fails, the process lives (and
// its readiness check, Ping, fails from then on).
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	if broken := s.broken.Load(); broken != nil {
		return *broken
	}
	defer s.recoverCorrupt(&err)
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	if broken := s.broken.Load(); broken != nil {
		return *broken
	}
	defer s.recoverCorrupt(&err)
	return s.db.Update(fn)
}

func (s *Store) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: %v; restore it from a backup, or move it aside to start empty", ErrCorrupt, s.db.Path(), r)
		s.broken.Store(err)
	}
}

// Close releases the file (not after damage: see Store.broken).
func (s *Store) Close() error {
	if s.broken.Load() != nil {
		return nil // bbolt's locks may be held by the panicked transaction
	}
	return s.db.Close()
}

// Ping reports whether the database can serve a read.
func (s *Store) Ping(context.Context) error {
	return s.view(func(*bolt.Tx) error { return nil })
}

// GetTenant implements broker.Store.
func (s *Store) GetTenant(_ context.Context, id string) (broker.Tenant, error) {
	var t broker.Tenant
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(tenantsBucket).Get([]byte(id))
		if v == nil {
			return broker.ErrNotFound
		}
		var err error
		t, err = decode(v)
		return err
	})
	return t, err
}

// ListTenants implements broker.Store.
func (s *Store) ListTenants(_ context.Context, afterID string, limit int) ([]broker.Tenant, error) {
	var out []broker.Tenant
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(tenantsBucket).Cursor()
		k, v := seekAfter(c, afterID)
		var err error
		out, err = scan(k, v, c.Next, limit, decode)
		return err
	})
	return out, err
}

// CreateTenant implements broker.Store.
func (s *Store) CreateTenant(_ context.Context, t broker.Tenant) (broker.Tenant, error) {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(tenantsBucket)
		if b.Get([]byte(t.ID)) != nil {
			return broker.ErrAlreadyExists
		}
		return put(b, &t)
	})
	return t, err
}

// UpdateTenant implements broker.Store.
func (s *Store) UpdateTenant(_ context.Context, t broker.Tenant) (broker.Tenant, error) {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(tenantsBucket)
		v := b.Get([]byte(t.ID))
		if v == nil {
			return broker.ErrNotFound
		}
		cur, err := decode(v)
		if err != nil {
			return err
		}
		if cur.Version != t.Version {
			return broker.ErrConflict
		}
		return put(b, &t)
	})
	return t, err
}

// DeleteTenant implements broker.Store.
func (s *Store) DeleteTenant(_ context.Context, id, version string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(tenantsBucket)
		v := b.Get([]byte(id))
		if v == nil {
			return broker.ErrNotFound
		}
		if version != "" {
			cur, err := decode(v)
			if err != nil {
				return err
			}
			if cur.Version != version {
				return broker.ErrConflict
			}
		}
		return b.Delete([]byte(id))
	})
}

// put stores t under a fresh version taken from the bucket's sequence, so
// versions never repeat, even across a delete and re-create.
func put(b *bolt.Bucket, t *broker.Tenant) error {
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	t.Version = strconv.FormatUint(seq, 10)
	v, err := json.Marshal(record{Version: seq, Tenant: *t})
	if err != nil {
		return fmt.Errorf("encode tenant %q: %w", t.ID, err)
	}
	return b.Put([]byte(t.ID), v)
}

func decode(v []byte) (broker.Tenant, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return broker.Tenant{}, fmt.Errorf("decode tenant: %w", err)
	}
	if r.Tenant.ID == "" {
		return broker.Tenant{}, errors.New("decode tenant: record has no id")
	}
	r.Tenant.Version = strconv.FormatUint(r.Version, 10)
	return r.Tenant, nil
}

// GetCredential implements broker.CredentialStore.
func (s *Store) GetCredential(_ context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(credentialsBucket).Get([]byte(key))
		if v == nil {
			return broker.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// PutCredential implements broker.CredentialStore.
func (s *Store) PutCredential(_ context.Context, key string, sealed []byte) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(credentialsBucket).Put([]byte(key), sealed) })
}

// DeleteCredential implements broker.CredentialStore.
func (s *Store) DeleteCredential(_ context.Context, key string) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(credentialsBucket).Delete([]byte(key)) })
}

// AppendEvent implements broker.EventStore. Event ids sort by time, so the
// bucket's key order is the log's order.
func (s *Store) AppendEvent(_ context.Context, ev broker.Event, deliver bool) error {
	v, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	return s.update(func(tx *bolt.Tx) error {
		events := tx.Bucket(eventsBucket)
		if err := events.Put([]byte(ev.ID), v); err != nil {
			return err
		}
		if deliver {
			if err := tx.Bucket(outboxBucket).Put([]byte(ev.ID), nil); err != nil {
				return err
			}
		}
		// The bucket's sequence counts its events.
		n, err := events.NextSequence()
		if err != nil || n <= uint64(s.MaxEvents) {
			return err
		}
		return trim(events, tx.Bucket(outboxBucket), n-uint64(s.MaxEvents))
	})
}

// trim deletes up to n of the oldest events that are not waiting for
// delivery.
func trim(events, outbox *bolt.Bucket, n uint64) error {
	c := events.Cursor()
	deleted := uint64(0)
	for k, _ := c.First(); k != nil && deleted < n; {
		if outbox.Get(k) != nil {
			k, _ = c.Next()
			continue
		}
		key := bytes.Clone(k) // k points into a page the Delete may change
		if err := c.Delete(); err != nil {
			return err
		}
		deleted++
		// After a Delete the cursor may stand before the next key or on it.
		k, _ = c.Seek(key)
	}
	return events.SetSequence(events.Sequence() - deleted)
}

// EventsAfter implements broker.EventStore.
func (s *Store) EventsAfter(_ context.Context, afterID string, limit int) ([]broker.Event, error) {
	var out []broker.Event
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		k, v := seekAfter(c, afterID)
		var err error
		out, err = scan(k, v, c.Next, limit, decodeEvent)
		return err
	})
	return out, err
}

// EventsBefore implements broker.EventStore.
func (s *Store) EventsBefore(_ context.Context, beforeID string, limit int) ([]broker.Event, error) {
	var out []broker.Event
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		// Seek lands on the first key >= beforeID: the one before it is the
		// newest older event. Without beforeID, or past the end, the last is.
		var k, v []byte
		if beforeID != "" {
			k, _ = c.Seek([]byte(beforeID))
		}
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		var err error
		out, err = scan(k, v, c.Prev, limit, decodeEvent)
		return err
	})
	return out, err
}

// PendingEvents implements broker.EventStore.
func (s *Store) PendingEvents(_ context.Context, limit int) ([]broker.Event, error) {
	var out []broker.Event
	err := s.view(func(tx *bolt.Tx) error {
		events := tx.Bucket(eventsBucket)
		c := tx.Bucket(outboxBucket).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			ev, err := decodeEvent(events.Get(k))
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// MarkDelivered implements broker.EventStore.
func (s *Store) MarkDelivered(_ context.Context, id string) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(outboxBucket).Delete([]byte(id)) })
}

// seekAfter positions c on the first key after key.
func seekAfter(c *bolt.Cursor, key string) ([]byte, []byte) {
	k, v := c.Seek([]byte(key))
	if k != nil && string(k) == key {
		return c.Next()
	}
	return k, v
}

// scan decodes up to limit values, from k, v on, stepping with next.
func scan[T any](k, v []byte, next func() ([]byte, []byte), limit int, decode func([]byte) (T, error)) ([]T, error) {
	var out []T
	for ; k != nil && len(out) < limit; k, v = next() {
		item, err := decode(v)
		if err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

func decodeEvent(v []byte) (broker.Event, error) {
	var ev broker.Event
	if err := json.Unmarshal(v, &ev); err != nil {
		return broker.Event{}, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}
