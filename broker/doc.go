// Package broker is credbroker's domain vocabulary and rules, and the ports
// every adapter plugs into.
//
// The root holds what the adapters speak: the Tenant and its validation
// (tenant.go, validate.go, registrycredential.go), the Credential and its
// failure Reasons (credential.go), the errors callers branch on (store.go),
// Events and conditions (event.go), credential and sync statuses
// (status.go, sync.go), image ownership (ownership.go), where tenants may
// be bound and who holds a contested namespace (scope.go), registration's
// claim checks (claims.go) and GitHub's word on a credential (verify.go), the credential provider's words (pull.go: PodIdentity,
// PullGrant, denials), the Sealer, the SecretPayload a pull Secret carries
// (payload.go), GitHub deliveries (delivery.go), audit records (audit.go),
// Metrics, and Tenants, the tenant registry (tenants.go): the one door
// through which a tenant is created, changed and read. Its sealed PAT and
// registry passwords are opened through one door too, Secrets
// (secrets.go: PAT, RegistryPassword, RegistryAuths), which Tenants hands
// out. ports.go declares every
// interface the domain consumes (Store, CredentialStore, EventStore,
// AuditStore, Inbox, Source, GitHub, Prober, Sink, SyncReporter,
// RegistryChecker, PublicationStore, NamespaceOwners, …).
//
// The runtimes that work on this vocabulary have rooms of their own:
//
//   - broker/refresh: the leader's Refresher (renew, store, probe, publish
//     to the Sink) and SyncConditions, the Sink's reporter.
//   - broker/notify: the Notifier (conditions → events) and the Outbox that
//     delivers the event log to the backend's webhook.
//   - broker/exchange: the Exchanger that answers the credential provider,
//     and the sealed Publications it answers from.
//   - broker/registryhealth: the Monitor that checks tenants' further
//     registry credentials.
//   - broker/inbox: the Runner that stores GitHub's deliveries on any
//     replica and has the leader act on them.
//   - broker/tenantindex: an in-memory Index of the tenants by namespace,
//     for the exchange over a store without a watch.
//   - broker/storetest: the store contracts as tests, run by every store.
//   - broker/internal/kit: what the runtimes share (backoff, change sets,
//     guarded calls, a signal, expiry warnings); broker/internal/brokertest:
//     their shared test fakes.
//
// The import rule: the adapters (k8ssync, boltstore, github, admission,
// registrytoken, auth, server) import only this root, never a sub-package
// (their tests may run broker/storetest), and only api, leader and
// cmd/credbroker wire the runtimes; go list -f '{{.Imports}}' shows it, and
// the compiler keeps broker/internal to the broker's own packages. The root
// imports neither gRPC, the generated API, client-go nor go-github, so every
// rule here is testable without a server, a cluster or GitHub.
package broker
