// Package integration holds dindstore's end-to-end tests: as root, a real
// dockerd is started by `dindstore run` on the mount it makes, runs a
// container from a locally imported busybox image, and is stopped again; the
// tests then check that nothing is left mounted or attached. Without root or
// without dockerd the tests skip and say why.
package integration
