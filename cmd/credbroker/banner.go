package main

import (
	"fmt"
	"io"

	"github.com/credbroker/credbroker/server"
)

// Dev mode's banner, in the order it is printed.

// printBanner says what dev mode runs and how to call it: the listeners and
// the demo, then, with a cluster, its Secrets, a pull with one (with a real
// registry) and Pods on its node. node is the name of a node of the
// cluster, or "" when it has none (Pods would wait for one).
func (d *devMode) printBanner(w io.Writer, srv *server.Server, cfg serveConfig, node string) {
	d.printServing(w, srv, cfg)
	if cfg.kubeconfig == "" {
		return
	}
	printSecrets(w, cfg.kubeconfig)
	if !d.realRegistry {
		return
	}
	printPull(w, d.demo.Image)
	if node == "" {
		_, _ = fmt.Fprint(w, "The cluster has no node: a Pod would wait for one (make run starts a node where it can).\n\n")
		return
	}
	printRun(w, d.demo.Image, node, srv.GRPCAddr().String())
}

// printServing says where dev mode listens, what it keeps where, the
// emulated GitHub and registry, and calls to make against the demo tenants.
func (d *devMode) printServing(w io.Writer, srv *server.Server, cfg serveConfig) {
	demo, adminToken := d.demo, d.adminToken
	registry := "(the emulator's own: it answers manifest requests but serves no blobs; --dev-registry-bin serves real ones)"
	if d.realRegistry {
		registry = fmt.Sprintf("(CNCF Distribution behind the emulator's realm, as ghcr.io is; images in %s/registry)", cfg.dataDir)
	}
	grpcAddr, httpAddr, dataDir := srv.GRPCAddr().String(), srv.HTTPAddr().String(), cfg.dataDir
	_, _ = fmt.Fprintf(w, `
credbroker is running in DEV MODE: loopback only, throw-away data, generated keys. Never use it in production.

  gRPC     %[1]s   (reflection on; health: grpc.health.v1.Health)
  HTTP     http://%[2]s   (REST, /healthz, /readyz, /metrics with the token, /openapi.json)
  data     %[3]s
  token    %[12]s   (admin; also in %[3]s/admin.token: every API call needs it)
  GitHub   %[4]s   (emulator: App %[5]d installed on %[6]s (id %[7]d) as installation %[8]d;
           a classic PAT of machine user %[9]s in %[3]s/demo-pat)
  registry %[10]s   %[13]s

Three demo tenants of %[6]s are registered, each proving its credential on the emulated
registry's image before anything is published: "demo" with the App installation (refused, as
ghcr.io refuses App tokens private pulls), "demo-pat" with the machine user's classic PAT, and
"demo-secretless" with the same PAT in pull mode PROVIDER (no Secret, see below):

  export CREDBROKER_TOKEN=$(cat %[3]s/admin.token)
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/tenants
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/tenants/demo-pat/credential  # READY (with a cluster)
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/tenants/demo/credential      # FAILED: APP_TOKEN_NOT_ACCEPTED
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/events                       # the PROBE_FAILED event
  curl -sN -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/events:watch               # follow events as they happen
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" -X POST http://%[2]s/v1/tenants/demo-pat/images:validate -d '{"image":"%[11]s"}'
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" -X POST http://%[2]s/v1/tenants/demo-pat/images:validate -d '{"image":"ghcr.io/evil/app"}'
  # an installation on someone else's account is refused, with the reason:
  curl -s -X POST http://%[2]s/v1/tenants -H "Authorization: Bearer $CREDBROKER_TOKEN" -d '{
    "id": "thief", "owner": {"login": "acme", "id": 5, "type": "OWNER_TYPE_ORGANIZATION"},
    "githubApp": {"installationId": %[8]d}}'

  grpcurl -plaintext %[1]s list
  grpcurl -plaintext -H "authorization: Bearer $CREDBROKER_TOKEN" -d '{"id":"demo-pat"}' %[1]s credbroker.v1.TenantService/GetTenant

`, grpcAddr, httpAddr, dataDir, d.emulator.URL(), demo.AppID, demo.Org.Login, demo.Org.ID,
		demo.InstallationID, demo.MachineUser.Login, d.emulator.RegistryHost(), demo.Image, adminToken, registry)
}

// printSecrets shows the Secrets synced into the cluster of kubeconfig.
func printSecrets(w io.Writer, kubeconfig string) {
	_, _ = fmt.Fprintf(w, `Secrets are synced into the cluster of %[1]s; watch them appear:

  export KUBECONFIG=%[1]s
  kubectl get secrets -A -l app.kubernetes.io/managed-by=credbroker
  kubectl -n demo-pat get secret ghcr-secret -o jsonpath='{.metadata.annotations}'
  kubectl -n demo-pat get events

`, kubeconfig)
}

// printPull shows a pull of the demo image with exactly a synced Secret.
func printPull(w io.Writer, image string) {
	_, _ = fmt.Fprintf(w, `Pull the demo image as a pull client would, with exactly the synced Secret:

  d=$(mktemp -d) && kubectl -n demo-pat get secret ghcr-secret -o jsonpath='{.data.\.dockerconfigjson}' | base64 -d > $d/config.json
  DOCKER_CONFIG=$d bin/crane pull %[1]s $d/hello.tar && ls -l $d/hello.tar
  skopeo inspect --tls-verify=false --authfile $d/config.json docker://%[1]s   # if skopeo is installed

`, image)
}

// printRun shows Pods running the demo image on node: with the synced
// Secret, and secretless through the credential provider's exchange at
// grpcAddr.
func printRun(w io.Writer, image, node, grpcAddr string) {
	_, _ = fmt.Fprintf(w, `Run it on node %[2]s: the kubelet's containerd pulls with the synced Secret, and the Pod runs:

  kubectl -n demo-pat run hello --image=%[1]s --overrides='{"spec":{"imagePullSecrets":[{"name":"ghcr-secret"}]}}'
  kubectl -n demo-pat get pod hello   # Running
  kubectl -n demo-pat logs hello      # hello from octo-org/hello
  kubectl -n demo-pat describe pod hello | grep -A9 ^Events

Secretless: tenant "demo-secretless" (pull mode PROVIDER) has no Secret in its namespace. The node
make run starts runs credbroker's credential provider, which trades each Pod's ServiceAccount token
at %[3]s for the tenant's credential (another cluster's nodes: docs/secretless.md):

  kubectl -n demo-secretless get secrets     # no ghcr-secret
  kubectl -n demo-secretless run hello --image=%[1]s
  kubectl -n demo-secretless get pod hello   # Running, with no imagePullSecrets
  kubectl -n default run stray --image=%[1]s
  kubectl -n default describe pod stray | grep CredentialDenied   # default is bound to no tenant

`, image, node, grpcAddr)
}
