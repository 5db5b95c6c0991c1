package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dindstore/dindstore/volumes"
)

// newRoot opens a fresh root in the test's temp dir. Whatever a failing
// test leaves mounted below it is unmounted at cleanup (before the temp
// dir goes).
func newRoot(t *testing.T) *Root {
	t.Helper()
	return newRootAt(t, filepath.Join(t.TempDir(), "root"))
}

// newRootAt opens (and makes) a root at path; what is mounted in it is
// unmounted at cleanup.
func newRootAt(t *testing.T, path string) *Root {
	t.Helper()
	r, err := OpenRoot(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mounts, _ := filepath.Glob(filepath.Join(r.Path(), "*", "*"))
		for _, m := range mounts {
			_ = volumes.Unmount(m)
		}
	})
	return r
}

func TestOpenRootCreates(t *testing.T) {
	r := newRoot(t)
	fi, err := os.Lstat(r.Path())
	if err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		t.Fatalf("root: %v, %v", fi.Mode(), err)
	}
	for _, d := range subdirs {
		if _, err := os.Lstat(filepath.Join(r.Path(), d)); err != nil {
			t.Errorf("subdir %s: %v", d, err)
		}
	}
}

func TestOpenRootRefuses(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	refused := []string{link, open, file, "relative/root", filepath.Join(link, "root"), filepath.Join(link, "a", "root")}
	if os.Geteuid() == 0 {
		if err := os.Chown(foreign, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		refused = append(refused, foreign)
	}
	for _, p := range refused {
		if _, err := OpenRoot(p, true); !errors.Is(err, ErrInvalid) {
			t.Errorf("OpenRoot(%s) = %v, want ErrInvalid", p, err)
		}
	}
	if entries, _ := os.ReadDir(real); len(entries) != 0 {
		t.Errorf("refused root through a symlink still got %d entries", len(entries))
	}
	// A subdirectory replaced by a symlink is refused too.
	r := newRoot(t)
	locks := filepath.Join(r.Path(), "locks")
	if err := os.Remove(locks); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, locks); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRoot(r.Path(), true); !errors.Is(err, ErrInvalid) {
		t.Errorf("root with a symlinked subdir: %v, want ErrInvalid", err)
	}
}

func TestOpenRootMissingWithoutCreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none")
	if _, err := OpenRoot(p, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenRoot = %v, want ErrNotFound", err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatal("OpenRoot without create made the root")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := newRoot(t)
	rec := &Record{Key: "k1", Kind: volumes.Loop, FS: volumes.Ext4, CapBytes: 1 << 30,
		StorageDriver: "overlay2", Created: time.Now().UTC().Truncate(time.Second)}
	if err := r.writeRecord(rec); err != nil {
		t.Fatal(err)
	}
	got, err := r.readRecord("k1")
	if err != nil || got.CapBytes != rec.CapBytes || !got.Created.Equal(rec.Created) || got.Version != recordVersion {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if _, err := r.readRecord("k2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
}

func TestRecordTampered(t *testing.T) {
	r := newRoot(t)
	cases := map[string]string{
		"trunc":   `{"key":"trunc","kind":"lo`,
		"other":   `{"key":"someone-else","kind":"dir"}`,
		"badkind": `{"key":"badkind","kind":"nfs"}`,
		"nocap":   `{"key":"nocap","kind":"loop","fs":"ext4","cap_bytes":0}`,
	}
	for key, body := range cases {
		if err := os.WriteFile(r.recordPath(key), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := r.readRecord(key); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("record %s: %v, want ErrCorruptRecord", key, err)
		}
	}
	target := filepath.Join(t.TempDir(), "elsewhere.json")
	if err := os.WriteFile(target, []byte(`{"key":"link","kind":"dir"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, r.recordPath("link")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.readRecord("link"); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("symlinked record: %v, want ErrCorruptRecord", err)
	}
}

func TestLockExclusive(t *testing.T) {
	r := newRoot(t)
	l, err := r.tryLock("k")
	if err != nil {
		t.Fatal(err)
	}
	owner, err := CurrentOwner(os.Getpid(), []string{"holder", "cmd"})
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	if err := r.writeOwner("k", owner); err != nil {
		t.Fatal(err)
	}
	_, err = r.tryLock("k")
	var held *HeldError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &held) || held.Owner == nil || held.Owner.PID != os.Getpid() {
		t.Fatalf("second lock: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if ok, pid, o, err := r.Holder("k"); !ok || pid != os.Getpid() || o == nil || err != nil {
		t.Fatalf("Holder while held = %v, %d, %v, %v", ok, pid, o, err)
	}
	l.release()
	if ok, _, _, err := r.Holder("k"); ok || err != nil {
		t.Fatalf("Holder after release = %v, %v", ok, err)
	}
	l2, err := r.tryLock("k")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.release()
}

func TestSpecConflicts(t *testing.T) {
	rec := &Record{Key: "k", Kind: volumes.Loop, FS: volumes.Ext4, CapBytes: 1 << 30}
	if err := (Spec{}).conflicts(rec); err != nil {
		t.Errorf("empty spec conflicts: %v", err)
	}
	if err := (Spec{Kind: volumes.Auto, Size: 1 << 30, FS: volumes.Ext4}).conflicts(rec); err != nil {
		t.Errorf("same spec conflicts: %v", err)
	}
	for _, s := range []Spec{{Kind: volumes.Dir}, {Size: 2 << 30}, {FS: volumes.XFS}} {
		if err := s.conflicts(rec); !errors.Is(err, ErrInvalid) {
			t.Errorf("spec %+v: %v, want ErrInvalid", s, err)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	for _, s := range []Spec{{Kind: "nfs"}, {FS: "zfs"}, {Size: 1 << 20}, {Size: -1}, {FS: volumes.XFS, Size: 100 << 20}} {
		if err := s.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestHolderIgnoresStaleOwner(t *testing.T) {
	r := newRoot(t)
	stale := &Owner{PID: 1 << 22, BootID: "old-boot", Command: []string{"dead"}}
	if err := r.writeOwner("k", stale); err != nil {
		t.Fatal(err)
	}
	if held, _, _, err := r.Holder("k"); held || err != nil {
		t.Fatalf("a stale owner record without a lock counts as held: %v, %v", held, err)
	}
	l, err := r.tryLock("k")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	_, err = r.tryLock("k")
	var he *HeldError
	if !errors.As(err, &he) || he.PID != os.Getpid() || he.Owner != nil {
		t.Fatalf("held with a stale owner record: %#v, want our pid and no owner", err)
	}
}

// rootWith is newRoot with one cache created in it.
func rootWith(t *testing.T, key string, spec Spec) *Root {
	t.Helper()
	r := newRoot(t)
	if _, _, err := r.Create(context.Background(), key, spec); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOpenRootRefusesNested: a root inside another root's folders (or
// inside one of its caches) is refused before anything is made.
func TestOpenRootRefusesNested(t *testing.T) {
	outer := newRoot(t)
	for _, p := range []string{
		filepath.Join(outer.Path(), "mounts", "k", "inner"),
		filepath.Join(outer.Path(), "data", "x"),
		filepath.Join(outer.Path(), "other"),
	} {
		if _, err := OpenRoot(p, true); !errors.Is(err, ErrInvalid) {
			t.Errorf("OpenRoot(%s) inside %s: %v, want ErrInvalid", p, outer.Path(), err)
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("a refused root was made at %s", p)
		}
	}
}
