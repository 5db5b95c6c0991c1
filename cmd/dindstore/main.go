// Command dindstore builds and hands out the filesystems under inner Docker
// daemons' /var/lib/docker: size-capped loop images, host directories, or
// vfs as a last resort, one daemon per cache at a time.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args))
}
