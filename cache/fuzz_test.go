package cache

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; `go test` runs them as
// plain tests, `go test -fuzz FuzzName ./cache` explores further.

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"proj-42", "..", "a/b", "a\x00b", "A", strings.Repeat("a", 129)} {
		f.Add(s)
	}
	const root = "/var/lib/dindstore"
	grammar := regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`) // what ValidateKey checks by hand
	f.Fuzz(func(t *testing.T, key string) {
		if (ValidateKey(key) == nil) != grammar.MatchString(key) {
			t.Fatalf("ValidateKey(%q) = %v, the grammar says %v", key, ValidateKey(key), grammar.MatchString(key))
		}
		if ValidateKey(key) != nil {
			return
		}
		for _, p := range []string{filepath.Join(root, "records", key+".json"), filepath.Join(root, "mounts", key)} {
			if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") || filepath.Clean(p) != p {
				t.Fatalf("key %q escapes the root: %s", key, p)
			}
		}
		if strings.ContainsAny(key, "/\x00") || key == "." || key == ".." {
			t.Fatalf("key %q accepted", key)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"20GiB", "0", "-1", "10XB", "1.5G", "1e30", "9223372036854775807", " 1G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseSize(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if n <= 0 || n > MaxSize {
			t.Fatalf("ParseSize(%q) = %d, out of bounds", s, n)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add("k", []byte(`{"version":1,"key":"k","kind":"loop","fs":"ext4","cap_bytes":1073741824}`))
	f.Add("k", []byte(`{"key":"k","kind":"dir"}`))
	f.Add("k", []byte(`{"key":"../../etc","kind":"dir"}`))
	f.Add("k", []byte(`{"key":"k","kind":"loop"`))
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		rec, err := parseRecord(key, b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error %v does not wrap ErrCorruptRecord", err)
			}
			return
		}
		if rec.Key != key {
			t.Fatalf("record for %q accepted with key %q", key, rec.Key)
		}
		if rec.Kind == "loop" && rec.CapBytes <= 0 {
			t.Fatalf("loop record accepted without a cap: %+v", rec)
		}
	})
}

func FuzzParseOwner(f *testing.F) {
	f.Add([]byte(`{"pid":42,"boot_id":"b","start_time":7,"command":["run"],"acquired":"2026-11-23T18:00:00Z"}`))
	f.Add([]byte(`{"pid":-1}`))
	f.Add([]byte(`{"pid":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseOwner(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error %v does not wrap ErrCorruptRecord", err)
			}
			return
		}
		if o.PID <= 0 {
			t.Fatalf("owner with pid %d accepted", o.PID)
		}
		_ = o.CommandLine()
	})
}
