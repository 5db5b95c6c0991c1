//go:build !linux

package proctree

import (
	"context"
	"os"
	"syscall"
)

// New is not supported off Linux.
func New(string) (*Group, error) { return nil, ErrNotSupported }

// Open is not supported off Linux.
func Open(string) (*Group, error) { return nil, ErrNotSupported }

// Dir is not supported off Linux.
func (g *Group) Dir() (*os.File, error) { return nil, ErrNotSupported }

// Members is not supported off Linux.
func (g *Group) Members() ([]int, error) { return nil, ErrNotSupported }

// Signal is not supported off Linux.
func (g *Group) Signal(syscall.Signal) error { return ErrNotSupported }

// Kill is not supported off Linux.
func (g *Group) Kill(context.Context) (int, error) { return 0, ErrNotSupported }

// Remove is not supported off Linux.
func (g *Group) Remove() error { return ErrNotSupported }

// KillAll is not supported off Linux.
func KillAll(context.Context, []int) error { return ErrNotSupported }

// PathFor is not supported off Linux.
func PathFor(string) (string, error) { return "", ErrNotSupported }
