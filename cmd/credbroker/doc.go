// Command credbroker runs the credential broker.
//
//	credbroker serve [flags]
//
// Every flag can also be set through the environment as CREDBROKER_<FLAG>,
// upper-cased with '-' as '_' (--grpc-addr is CREDBROKER_GRPC_ADDR); a flag on
// the command line wins.
//
// The command is wiring, in files by seam: config.go reads flags and the
// environment into a serveConfig and checks it; wiring.go has a constructor
// per part (authenticators, TLS, clients, store, sealer, GitHub); parts.go
// opens what every replica serves from; exchange.go sets up the credential
// provider exchange, the registry token service and the admission webhook;
// lead.go what the leader runs; main.go puts them in order and serves the
// API; dev.go and banner.go are dev mode.
package main
