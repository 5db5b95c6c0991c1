// Command dindstore builds and hands out the filesystems under inner Docker
// daemons' /var/lib/docker: size-capped loop images, host directories, or
// vfs as a last resort, one daemon per cache at a time.
//
// The command is a thin layer over packages cache and volumes: one file per
// command group (create.go, run.go, ls.go, lifecycle.go), the exit statuses
// in app.go.
package main
