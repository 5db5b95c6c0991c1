// Package overlay probes whether a directory can hold an overlay2 graph
// driver, the way dockerd decides it: a real overlay mount with two lower
// directories in a scratch directory below it, and a d_type check of the
// filesystem. It answers with the kernel's own reason when the answer is no,
// so that callers (package volumes) can refuse a backing filesystem before an
// inner daemon silently falls back to vfs.
package overlay
