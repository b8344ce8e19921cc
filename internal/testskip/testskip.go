// Package testskip skips a test that cannot run on this machine (a
// missing kernel feature, tool or interpreter) without keeping quiet
// about it: `go test ./...` shows nothing of a passing package, skips
// included, so each skip is also written to the file named by
// $RESQUED_SKIP_LOG, which `make test` prints at the end.
package testskip

import (
	"fmt"
	"os"
	"testing"
)

// Skipf records why tb cannot run here, then skips it.
func Skipf(tb testing.TB, format string, args ...any) {
	tb.Helper()
	why := fmt.Sprintf(format, args...)
	if path := os.Getenv("RESQUED_SKIP_LOG"); path != "" {
		// O_APPEND: one short write per line, whole, from any number
		// of test processes at once.
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fmt.Fprintf(f, "%s: %s\n", tb.Name(), why)
			_ = f.Close()
		}
	}
	tb.Skip(why)
}
