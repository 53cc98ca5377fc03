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
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credbroker/credbroker/broker"
)

// FileName is the database file inside the data directory.
const FileName = "credbroker.db"

var tenantsBucket = []byte("tenants")

// Store is a broker.Store in a bbolt file.
type Store struct {
	db *bolt.DB
}

// record is the stored form of a tenant. Version travels inside the value
// because broker.Tenant does not serialise it.
type record struct {
	Version uint64        `json:"version"`
	Tenant  broker.Tenant `json:"tenant"`
}

// Open opens (creating if needed) the database in dataDir. A second process
// opening the same file waits up to a few seconds for the lock and then
// fails, instead of blocking forever.
func Open(dataDir string) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(tenantsBucket)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the database can serve a read.
func (s *Store) Ping(context.Context) error {
	return s.db.View(func(*bolt.Tx) error { return nil })
}

// GetTenant implements broker.Store.
func (s *Store) GetTenant(_ context.Context, id string) (broker.Tenant, error) {
	var t broker.Tenant
	err := s.db.View(func(tx *bolt.Tx) error {
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
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(tenantsBucket).Cursor()
		k, v := c.Seek([]byte(afterID))
		if k != nil && bytes.Equal(k, []byte(afterID)) {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			t, err := decode(v)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// CreateTenant implements broker.Store.
func (s *Store) CreateTenant(_ context.Context, t broker.Tenant) (broker.Tenant, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
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
	err := s.db.Update(func(tx *bolt.Tx) error {
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
	return s.db.Update(func(tx *bolt.Tx) error {
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
