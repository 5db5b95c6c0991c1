// Package procscan finds the processes that use a filesystem: those whose
// mount namespace still holds one of its mounts, and those with a working
// directory, root, executable or open file on it (or the block device itself
// open). It reads /proc only and changes nothing.
//
// dindstore asks it before it attaches an image again: a filesystem that a
// process in another mount namespace still holds keeps its loop device bound
// even after every mount dindstore can see is gone.
package procscan
