package broker

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/utils/clock"
)

// Tenants is the tenant registry: it validates tenants, checks their
// credential with GitHub, seals their PATs and registry passwords and keeps
// them in a Store, and hands out the one door through which they are
// opened again (Secrets). It is safe for concurrent use.
type Tenants struct {
	store  Store
	sealer *Sealer // nil when no encryption key is configured
	github GitHub
	clock  clock.PassiveClock
	cfg    TenantsConfig

	mu          sync.Mutex
	subscribers map[int]func(tenantID string)
	nextSub     int

	// lookedUp holds the tenants Read read, for a SoleWriter: each write
	// counts in writes and then drops its tenant, and a read that a write
	// may have overtaken is dropped too.
	lookedUp sync.Map // tenant id → Tenant
	writes   atomic.Uint64
}

// Subscribe calls fn after every change to a tenant made through these
// Tenants, until the returned function is called. fn must not block.
func (r *Tenants) Subscribe(fn func(tenantID string)) (unsubscribe func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subscribers == nil {
		r.subscribers = map[int]func(string){}
	}
	id := r.nextSub
	r.nextSub++
	r.subscribers[id] = fn
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.subscribers, id)
	}
}

func (r *Tenants) changed(tenantID string) {
	r.writes.Add(1)
	r.lookedUp.Delete(tenantID)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fn := range r.subscribers {
		fn(tenantID)
	}
}

// TenantsConfig is what the platform lets tenants ask for, and what
// Tenants checks claims against.
type TenantsConfig struct {
	// Cache, if set, answers Lookup from memory (an informer), so that
	// the request-time checks of image ownership cost the store nothing.
	Cache TenantCache
	// Namespaces, if set (with a cluster), lets registration refuse a
	// selector that matches a namespace another tenant holds now.
	Namespaces Namespaces
	// AppPermissions are the most an App tenant may request for its
	// installation tokens, by permission; DefaultAppPermissions when nil.
	// Least privilege: a tenant that could ask for contents: write could
	// have the broker mint it a token that pushes code.
	AppPermissions map[string]string
	// Scope is where tenants may be bound.
	Scope NamespaceScope
	// Images has the platform's public scopes, for the answers to "may
	// this tenant run this image?".
	Images ImageRules
	// Hosts are the registries credbroker logs in to itself, which no
	// tenant's static credential may name.
	Hosts RegistryHosts
	// SoleWriter says that every write to the store goes through these
	// Tenants (the embedded store is one process's): Lookup then answers
	// from memory without a Cache, kept exact by their own writes.
	SoleWriter bool
}

// NewTenants returns Tenants over store. sealer may be nil: tenants with a
// PAT or a registry credential are then refused with ErrNoEncryptionKey. clk dates tenants.
func NewTenants(store Store, sealer *Sealer, github GitHub, clk clock.PassiveClock, cfg TenantsConfig) *Tenants {
	if cfg.AppPermissions == nil {
		cfg.AppPermissions = DefaultAppPermissions()
	}
	return &Tenants{store: store, sealer: sealer, github: github, clock: clk, cfg: cfg}
}

// ImageRules are the platform's image rules the registry was given.
func (r *Tenants) ImageRules() ImageRules { return r.cfg.Images }

// Scope returns where tenants may be bound.
func (r *Tenants) Scope() NamespaceScope { return r.cfg.Scope }

// check validates t and holds it to the policy: the App permissions the
// platform grants, and where tenants may be bound. before is the stored
// tenant t updates, nil for a new one: a selector it already had is kept
// even outside the prefix (it binds no new namespace, and refusing it would
// block every other change to the tenant); a new or changed one must be
// under the prefix.
func (r *Tenants) check(t Tenant, before *Tenant, requireToken bool) error {
	err := t.validate(requireToken)
	var vs violations
	var perms map[string]string
	if t.App != nil {
		perms = t.App.Permissions
	}
	for _, name := range slices.Sorted(maps.Keys(perms)) {
		level, most := perms[name], r.cfg.AppPermissions[name]
		if permissionLevels[level] > permissionLevels[most] {
			vs.add("github_app.permissions", "%s: %q is more than this broker grants (%s); ask the platform for it", name, level, describePermissions(r.cfg.AppPermissions))
		}
	}
	for i, ns := range t.Namespaces {
		if why := r.cfg.Scope.Refusal(ns); why != "" {
			vs.add(fmt.Sprintf("namespaces[%d]", i), "%s", why)
		}
	}
	if before == nil || before.NamespaceSelector != t.NamespaceSelector {
		if keys := r.cfg.Scope.UnprotectedKeys(t); len(keys) > 0 {
			vs.add("namespace_selector", "%s", r.cfg.Scope.SelectorFix(keys))
		}
	}
	validateRegistryCredentials(&vs, t, r.cfg.Hosts, r.cfg.Images.Mirrors)
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		vs = append(invalid.Violations, vs...)
	}
	if err := vs.err(); err != nil {
		return err
	}
	return err
}

// Create registers t. Creating a tenant that exists with the same content is
// not an error: it returns the stored tenant and created=false, so clients
// can retry a create safely. Other content under the same id fails with
// ErrAlreadyExists.
func (r *Tenants) Create(ctx context.Context, t Tenant) (_ Tenant, created bool, _ error) {
	t = t.WithDefaults()
	if err := r.check(t, nil, true); err != nil {
		return Tenant{}, false, err
	}
	token := ""
	if t.PAT != nil {
		token = t.PAT.Token
	}
	// A taken id is answered from the store alone: a retried create must not
	// depend on GitHub answering again, and a clash is a clash whatever
	// GitHub would say about the new credential.
	existing, err := r.store.GetTenant(ctx, t.ID)
	switch {
	case err == nil:
		return r.existingOr(existing, t, token)
	case !errors.Is(err, ErrNotFound):
		return Tenant{}, false, fmt.Errorf("create tenant %q: %w", t.ID, err)
	}
	if err := r.checkClaims(ctx, t, nil); err != nil {
		return Tenant{}, false, err
	}
	if err := r.verify(ctx, &t, token); err != nil {
		return Tenant{}, false, err
	}
	if t.PAT != nil {
		if t.PAT, err = r.seal(t.ID, token); err != nil {
			return Tenant{}, false, err
		}
	}
	if t.RegistryCredentials, err = r.sealRegistryCredentials(t.ID, t.RegistryCredentials); err != nil {
		return Tenant{}, false, err
	}
	now := r.clock.Now().UTC()
	t.CreateTime, t.UpdateTime = now, now
	stored, err := r.store.CreateTenant(ctx, t)
	if errors.Is(err, ErrAlreadyExists) { // lost a race with another create
		if existing, err = r.store.GetTenant(ctx, t.ID); err != nil {
			return Tenant{}, false, fmt.Errorf("create tenant %q: %w", t.ID, err)
		}
		return r.existingOr(existing, t, token)
	}
	if err != nil {
		return Tenant{}, false, fmt.Errorf("create tenant %q: %w", t.ID, err)
	}
	r.changed(t.ID)
	return stored, true, nil
}

// existingOr returns the stored tenant when it is what the create asks for,
// and ErrAlreadyExists otherwise.
func (r *Tenants) existingOr(existing, want Tenant, token string) (Tenant, bool, error) {
	if sameSpec(existing, want) && r.samePAT(existing, token) {
		return existing, false, nil
	}
	return Tenant{}, false, fmt.Errorf("tenant %q exists with different content: %w", want.ID, ErrAlreadyExists)
}

// Get returns the tenant with the given id.
func (r *Tenants) Get(ctx context.Context, id string) (Tenant, error) {
	t, err := r.store.GetTenant(ctx, id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", id, err)
	}
	return t, nil
}

// List returns up to limit tenants with ids after afterID, and the id to
// continue after, which is empty on the last page.
func (r *Tenants) List(ctx context.Context, afterID string, limit int) (_ []Tenant, next string, _ error) {
	limit = max(limit, 1)
	page, err := r.store.ListTenants(ctx, afterID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	if len(page) > limit {
		page = page[:limit]
		next = page[limit-1].ID
	}
	return page, next, nil
}

// maxUpdateAttempts bounds retries of an unconditional update that keeps
// losing races with other writers.
const maxUpdateAttempts = 5

// Update applies mutate to the stored tenant and writes the result. A PAT
// whose Token is empty keeps the stored PAT. With a non-empty etag the update
// fails with ErrConflict unless the tenant is still at that version; without
// one, a concurrent change is re-read and mutate applied again.
func (r *Tenants) Update(ctx context.Context, id, etag string, mutate func(Tenant) (Tenant, error)) (Tenant, error) {
	for range maxUpdateAttempts {
		cur, err := r.Get(ctx, id)
		if err != nil {
			return Tenant{}, err
		}
		if etag != "" && cur.Version != etag {
			return Tenant{}, fmt.Errorf("update tenant %q at etag %q: %w", id, etag, ErrConflict)
		}
		next, err := mutate(cur)
		if err != nil {
			return Tenant{}, err
		}
		next = next.WithDefaults()
		next.ID, next.Version, next.CreateTime = cur.ID, cur.Version, cur.CreateTime
		next.UpdateTime = r.clock.Now().UTC()
		if next.PAT != nil && next.PAT.Token == "" && cur.PAT != nil {
			next.PAT = cur.PAT
		}
		if err := r.check(next, &cur, next.PAT != nil && next.PAT.Sealed == nil); err != nil {
			return Tenant{}, err
		}
		if !slices.Equal(cur.Namespaces, next.Namespaces) || cur.NamespaceSelector != next.NamespaceSelector {
			if err := r.checkClaims(ctx, next, &cur); err != nil {
				return Tenant{}, err
			}
		}
		if credentialChanged(cur, next) {
			token := ""
			if next.PAT != nil {
				if token = next.PAT.Token; token == "" {
					if token, err = r.Secrets().PAT(cur); err != nil {
						return Tenant{}, err
					}
				}
			}
			if err := r.verify(ctx, &next, token); err != nil {
				return Tenant{}, err
			}
		}
		if next.PAT != nil && next.PAT.Token != "" {
			if next.PAT, err = r.seal(id, next.PAT.Token); err != nil {
				return Tenant{}, err
			}
		}
		if next.RegistryCredentials, err = r.sealRegistryCredentials(id, next.RegistryCredentials); err != nil {
			return Tenant{}, err
		}
		stored, err := r.store.UpdateTenant(ctx, next)
		if errors.Is(err, ErrConflict) && etag == "" {
			continue
		}
		if err != nil {
			return Tenant{}, fmt.Errorf("update tenant %q: %w", id, err)
		}
		r.changed(id)
		return stored, nil
	}
	return Tenant{}, fmt.Errorf("update tenant %q: gave up after %d concurrent changes: %w", id, maxUpdateAttempts, ErrConflict)
}

// Delete removes the tenant; a non-empty etag must match its version.
func (r *Tenants) Delete(ctx context.Context, id, etag string) error {
	if err := r.store.DeleteTenant(ctx, id, etag); err != nil {
		return fmt.Errorf("delete tenant %q: %w", id, err)
	}
	r.changed(id)
	return nil
}

// Lookup returns a tenant for a read that may lag a write by the watch's
// delay (the image ownership checks): from the cache when there is one,
// else as Read.
func (r *Tenants) Lookup(ctx context.Context, id string) (Tenant, error) {
	if r.cfg.Cache != nil {
		if t, ok, err := r.cfg.Cache.CachedTenant(id); ok {
			if err != nil {
				return Tenant{}, fmt.Errorf("tenant %q: %w", id, err)
			}
			return t, nil
		}
	}
	return r.Read(ctx, id)
}

// Read returns the tenant as Get does, for a caller that only reads it. A
// SoleWriter answers from memory, exact because each of its writes drops
// what it changes: no store read and decode per call (an eighth of a REST
// GetTenant's CPU). The tenant may be shared: it must not be modified.
func (r *Tenants) Read(ctx context.Context, id string) (Tenant, error) {
	if !r.cfg.SoleWriter {
		return r.Get(ctx, id)
	}
	if t, ok := r.lookedUp.Load(id); ok {
		return t.(Tenant), nil
	}
	before := r.writes.Load()
	t, err := r.Get(ctx, id)
	if err == nil {
		r.lookedUp.Store(id, t)
		if r.writes.Load() != before { // a write may have come between
			r.lookedUp.Delete(id)
		}
	}
	return t, err
}

// RenameOwner records an account's new login (same numeric id) in every
// tenant it owns, as GitHub's installation_target "renamed" event reports
// it: the image ownership rules follow the account, not its old name. It
// returns the tenants it changed.
func (r *Tenants) RenameOwner(ctx context.Context, account Owner) ([]string, error) {
	var owned []string
	err := r.Each(ctx, func(t Tenant) error {
		if t.Owner.ID == account.ID && t.Owner.Type == account.Type && t.Owner.Login != account.Login {
			owned = append(owned, t.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range owned {
		_, err := r.Update(ctx, id, "", func(t Tenant) (Tenant, error) {
			if t.Owner.ID == account.ID {
				t.Owner.Login = account.Login
			}
			return t, nil
		})
		if err != nil {
			return nil, fmt.Errorf("rename the owner of tenant %q: %w", id, err)
		}
	}
	return owned, nil
}

// Secrets is the door to the tenants' sealed values, with this registry's
// key.
func (r *Tenants) Secrets() Secrets { return NewSecrets(r.sealer) }

// Each calls fn for every tenant in id order, a page at a time, and stops
// at the first error.
func (r *Tenants) Each(ctx context.Context, fn func(Tenant) error) error {
	after := ""
	for {
		page, next, err := r.List(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, t := range page {
			if err := fn(t); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// CheckSealed opens every stored PAT once, so that a missing or wrong key is
// a clear error at startup rather than a refresh failure hours later.
func (r *Tenants) CheckSealed(ctx context.Context) error {
	return r.Each(ctx, func(t Tenant) error {
		if t.PAT == nil {
			return nil
		}
		_, err := r.Secrets().PAT(t)
		return err
	})
}

func (r *Tenants) seal(tenantID, token string) (*PAT, error) {
	if r.sealer == nil {
		return nil, fmt.Errorf("tenant %q: %w", tenantID, ErrNoEncryptionKey)
	}
	sealed, err := r.sealer.Seal(tenantID, token)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", tenantID, err)
	}
	return &PAT{Sealed: sealed, Fingerprint: Fingerprint(token)}, nil
}

// samePAT reports whether stored holds the PAT token (or neither has one),
// comparing in constant time.
func (r *Tenants) samePAT(stored Tenant, token string) bool {
	if stored.PAT == nil {
		return token == ""
	}
	got, err := r.Secrets().PAT(stored)
	return err == nil && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}
