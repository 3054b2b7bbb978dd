package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkScratchUnpack(b *testing.B) {
	src, size := benchTarball(b, 200*mib)
	f, _ := os.Open(src)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		tree := filepath.Join(b.TempDir(), "tree")
		if err := unpackFile(context.Background(), f, "", tree, &options{logf: b.Logf}); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(tree)
	}
}
