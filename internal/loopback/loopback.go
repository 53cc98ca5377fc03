// Package loopback tells whether an address is this machine's. Listeners
// without TLS and registries spoken to in plain HTTP are allowed there only,
// by the rule pull clients (docker, crane) apply.
package loopback

import "net"

// Is reports whether host, with or without a port, is "localhost" or a
// loopback IP.
func Is(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
