// Package server exposes credbroker's API: gRPC (with health and reflection)
// on one listener, and on another the REST gateway plus /healthz, /readyz,
// /metrics, /openapi.json and the further HTTP endpoints the command hands
// it (GitHub's webhook deliveries, the admission Reviewer, the registry
// token service), which authenticate on their own.
//
// Two listeners rather than one h2c port: gRPC clients and HTTP/1.1 clients
// (curl, probes, Prometheus) get a plain server each, and TLS and mTLS are
// configured once for both. The gateway calls the services in process
// (server.go), behind the same interceptors as a gRPC call, so every REST
// call is guarded alike and server streaming works over REST.
//
// The Guard in front of every call is in files by concern: guard.go
// authenticates (auth.Chain), authorizes by the access table
// (api.Methods), bounds deadlines and open streams; forward.go hands the
// REST caller's certificate and address to it; limits.go keeps per-caller
// token buckets; audit.go writes the audit trail.
package server
