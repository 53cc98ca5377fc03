// Command registry is the CNCF Distribution registry (v3) with only what
// credbroker's tests need — filesystem and in-memory storage, token and
// htpasswd auth (a third-party registry's basic auth) —
// so it builds in a fraction of the full binary's time. Its flags and config
// file are the upstream registry's: `registry serve config.yml`.
package main

import (
	"os"

	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func main() {
	if err := registry.RootCmd.Execute(); err != nil {
		os.Exit(1)
	}
}
