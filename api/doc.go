// Package api serves credbroker.v1 over gRPC (and, through the gateway the
// server package runs, REST) from the domain in broker and its runtimes
// (refresh.Refresher, exchange.Exchanger, notify's event log). It owns
// everything that knows the wire:
//
//   - the services: TenantAPI (tenants and their registry credentials),
//     ImageAPI, CredentialAPI (answered by the Refresher of the term this
//     replica leads, attached with Attach), EventAPI (the event log, with
//     watches that tail it: eventtail.go) and ExchangeAPI (the credential
//     provider's exchange of a Pod's token);
//   - the access table Methods: per full method name, the auth.Rule the
//     server's Guard applies (access, tenant, audit, limit), and
//     WithCaller, how the Guard tells the services whether the caller is
//     an admin;
//   - the conversion between proto messages and domain types (every enum
//     an explicit table in enums.go, checked against the generated
//     descriptors);
//   - the one mapping of domain errors to gRPC status codes (errors.go).
//
// Nothing in broker, nor under it, imports it.
package api
