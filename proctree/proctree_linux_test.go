//go:build linux

package proctree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/dindstore/dindstore/internal/testutil"
)

// TestGroupEndsWholeTree starts a command into a group; the command starts
// a grandchild and a daemon that leaves the session (setsid) and outlives
// it. Kill ends all of them, and Remove removes the group.
func TestGroupEndsWholeTree(t *testing.T) {
	testutil.RequiresRoot(t)
	g, err := New(fmt.Sprintf("test.%d.%d", os.Getpid(), time.Now().UnixNano()))
	if errors.Is(err, ErrNotSupported) {
		t.Skip("skipping: no writable cgroup v2 hierarchy here")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = g.Kill(context.Background()); _ = g.Remove() })
	dir, err := g.Dir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "sleep 600 & setsid sleep 600 & exit 0")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dir.Close()
	var members []int
	for deadline := time.Now().Add(5 * time.Second); len(members) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if members, err = g.Members(); err != nil {
			t.Fatal(err)
		}
	}
	if len(members) != 2 {
		t.Fatalf("members after the command exited: %v, want its 2 orphans", members)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := g.Kill(ctx); err != nil || n != 2 {
		t.Fatalf("Kill = %d, %v; want 2", n, err)
	}
	for _, pid := range members {
		if alive(pid) {
			t.Errorf("pid %d survived Kill", pid)
		}
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Path); !os.IsNotExist(err) {
		t.Errorf("group %s still there: %v", g.Path, err)
	}
}
