// Package api serves credbroker.v1 over gRPC (and, through the gateway the
// server package runs, REST) from the domain in broker. It owns everything
// that knows the wire: the services, the conversion between proto messages
// and domain types (every enum an explicit table in enums.go, checked
// against the generated descriptors), and the one mapping of domain errors
// to gRPC status codes (errors.go). Nothing in broker imports it.
package api
