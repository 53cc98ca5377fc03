// Command hello is the one program of the images that hack/node.sh, dev
// mode and the end-to-end suite run on a real node: the node's sandbox
// (pause) image and the tenants' workload images. It says hello, so that
// `kubectl logs` shows which image ran, and then waits for SIGTERM as a
// pause container does.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println("hello from", os.Args[1])
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
