package k8ssync

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/broker"
)

// Store keeps tenants in credbroker's own namespace, one Secret each, so that
// every replica sees the same tenants. A Secret rather than a custom
// resource: a tenant holds a sealed PAT, and Secrets are the kind clusters
// encrypt at rest and guard with RBAC; nothing has to be installed before
// credbroker starts; and the resourceVersion gives optimistic concurrency.
type Store struct {
	client kubernetes.Interface // the writer's: its writes and the trims
	// reads is the client of callers' reads of tenants (Lookup before the
	// tenant cache has synced, GetTenant, ListTenants, /readyz's Ping): one
	// with a budget of its own, so that a caller reading at its allowed
	// rate never spends the client-side limiter the Syncer writes with.
	reads     kubernetes.Interface
	namespace string
	// MaxEvents is how many events the log keeps (more while undelivered
	// ones wait); DefaultMaxEvents unless changed before use. The audit
	// trail keeps as many records.
	MaxEvents int
	// MaxDeliveries is how many GitHub deliveries the inbox remembers;
	// DefaultMaxDeliveries when zero.
	MaxDeliveries int

	appends      atomic.Int64 // events appended, to trim the log every so often
	auditAppends atomic.Int64 // audit records appended, likewise
}

// trimDue counts an append and says whether this one trims: every tenth of
// MaxEvents, since a trim lists the whole log.
func (s *Store) trimDue(appends *atomic.Int64) bool {
	return appends.Add(1)%int64(max(s.MaxEvents/10, 1)) == 0
}

// Tenant Secrets: a type and a label of their own, so that neither the
// Syncer nor anyone listing pull Secrets mistakes them for one.
const (
	tenantSecretPrefix = "credbroker-tenant-"
	tenantSecretType   = corev1.SecretType("credbroker.io/tenant")
	labelStoredTenant  = "credbroker.io/stored-tenant"
	tenantKey          = "tenant.json"
	// annotationWriteID changes with every write. The API server keeps the
	// resourceVersion of an update that changes nothing, and a Store must
	// give every write a new version, or a stale etag would still match.
	annotationWriteID = "credbroker.io/write-id"
)

var storedTenantSelector = LabelManagedBy + "=" + ManagedByValue + "," + labelStoredTenant

// NewStore returns a Store in namespace that reads and writes with client
// (Clients.Store splits them).
func NewStore(client kubernetes.Interface, namespace string) *Store {
	return &Store{client: client, reads: client, namespace: namespace, MaxEvents: DefaultMaxEvents}
}

func (s *Store) secrets() interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Secret, error)
	List(context.Context, metav1.ListOptions) (*corev1.SecretList, error)
	Create(context.Context, *corev1.Secret, metav1.CreateOptions) (*corev1.Secret, error)
	Update(context.Context, *corev1.Secret, metav1.UpdateOptions) (*corev1.Secret, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
} {
	return s.client.CoreV1().Secrets(s.namespace)
}

// readSecrets are the store's Secrets as callers read them.
func (s *Store) readSecrets() interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Secret, error)
	List(context.Context, metav1.ListOptions) (*corev1.SecretList, error)
} {
	return s.reads.CoreV1().Secrets(s.namespace)
}

// Ping reports whether the API server answers for the store's namespace.
// Anyone may ask /readyz, which calls it: it reads with the callers' client.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.readSecrets().List(ctx, metav1.ListOptions{LabelSelector: storedTenantSelector, Limit: 1})
	return err
}

// GetTenant implements broker.Store.
func (s *Store) GetTenant(ctx context.Context, id string) (broker.Tenant, error) {
	sec, err := s.readSecrets().Get(ctx, tenantSecretPrefix+id, metav1.GetOptions{})
	if err != nil {
		return broker.Tenant{}, storeError(err)
	}
	return decodeTenant(sec)
}

// ListTenants implements broker.Store. Secret names sort like tenant ids, as
// they share a prefix.
func (s *Store) ListTenants(ctx context.Context, afterID string, limit int) ([]broker.Tenant, error) {
	var out []broker.Tenant
	opts := metav1.ListOptions{LabelSelector: storedTenantSelector, Limit: 500}
	for {
		page, err := s.readSecrets().List(ctx, opts)
		if err != nil {
			return nil, storeError(err)
		}
		for i := range page.Items {
			t, err := decodeTenant(&page.Items[i])
			if err != nil {
				return nil, err
			}
			if t.ID > afterID {
				out = append(out, t)
			}
		}
		if opts.Continue = page.Continue; opts.Continue == "" {
			break
		}
	}
	slices.SortFunc(out, func(a, b broker.Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(limit, len(out))], nil
}

// CreateTenant implements broker.Store.
func (s *Store) CreateTenant(ctx context.Context, t broker.Tenant) (broker.Tenant, error) {
	sec, err := encodeTenant(s.namespace, t)
	if err != nil {
		return broker.Tenant{}, err
	}
	created, err := s.secrets().Create(ctx, sec, metav1.CreateOptions{FieldManager: Component})
	if err != nil {
		return broker.Tenant{}, storeError(err)
	}
	t.Version = created.ResourceVersion
	return t, nil
}

// UpdateTenant implements broker.Store: the write carries t.Version as the
// resourceVersion, so the API server refuses it if the tenant changed.
func (s *Store) UpdateTenant(ctx context.Context, t broker.Tenant) (broker.Tenant, error) {
	sec, err := encodeTenant(s.namespace, t)
	if err != nil {
		return broker.Tenant{}, err
	}
	sec.ResourceVersion = t.Version
	updated, err := s.secrets().Update(ctx, sec, metav1.UpdateOptions{FieldManager: Component})
	if err != nil {
		return broker.Tenant{}, storeError(err)
	}
	t.Version = updated.ResourceVersion
	return t, nil
}

// DeleteTenant implements broker.Store.
func (s *Store) DeleteTenant(ctx context.Context, id, version string) error {
	opts := metav1.DeleteOptions{}
	if version != "" {
		opts.Preconditions = &metav1.Preconditions{ResourceVersion: &version}
	}
	return storeError(s.secrets().Delete(ctx, tenantSecretPrefix+id, opts))
}

func encodeTenant(namespace string, t broker.Tenant) (*corev1.Secret, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode tenant %q: %w", t.ID, err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        tenantSecretPrefix + t.ID,
			Namespace:   namespace,
			Labels:      map[string]string{LabelManagedBy: ManagedByValue, labelStoredTenant: t.ID},
			Annotations: map[string]string{annotationWriteID: rand.Text()},
		},
		Type: tenantSecretType,
		Data: map[string][]byte{tenantKey: data},
	}, nil
}

func decodeTenant(sec *corev1.Secret) (broker.Tenant, error) {
	var t broker.Tenant
	if err := json.Unmarshal(sec.Data[tenantKey], &t); err != nil || t.ID == "" {
		return broker.Tenant{}, fmt.Errorf("decode tenant Secret %s/%s: not a tenant", sec.Namespace, sec.Name)
	}
	t.Version = sec.ResourceVersion
	return t, nil
}

// storeError maps API errors onto the broker's.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return broker.ErrNotFound
	case apierrors.IsAlreadyExists(err):
		return broker.ErrAlreadyExists
	case apierrors.IsConflict(err):
		return broker.ErrConflict
	}
	return err
}

var _ broker.Store = (*Store)(nil)
