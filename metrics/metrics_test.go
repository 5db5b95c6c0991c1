package metrics

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/cache"
)

func TestEmptyRoot(t *testing.T) {
	root, err := cache.OpenRoot(filepath.Join(t.TempDir(), "root"), true)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteText(root, &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dindstore_up 1", "dindstore_caches 0", "dindstore_gc_removed_total 0"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}
