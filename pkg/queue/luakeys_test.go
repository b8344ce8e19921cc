package queue_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every key a Lua script touches comes from keys.go (status keys from
// pkg/status), passed in as KEYS (declaredkeys_test.go checks that no
// script touches any other key). A script that spells a piece of the
// layout itself ('queue:', 'stat:', 'delayed:' ...) forks it: this test
// scans the Lua sources of pkg/queue and pkg/status for such string
// literals.
func TestLuaBuildsNoKeys(t *testing.T) {
	// A Lua string literal, single- or double-quoted.
	luaString := regexp.MustCompile(`'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"`)
	// A layout word followed by the colon that joins key parts, or a
	// whole key name.
	layout := regexp.MustCompile(`(^|[^"\w])(queues?|stats?|workers?|worker|delayed|timestamps|job|status|failed|resqued|resque-retry|heartbeat):|:(status|started|heartbeat)\b|delayed_queue_schedule|pause-all-workers|pruning_dead_workers`)
	scripts := 0
	for _, dir := range []string{".", "../status"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || !strings.HasPrefix(lit.Value, "`") {
					return true
				}
				src, err := strconv.Unquote(lit.Value)
				if err != nil || !strings.Contains(src, "redis.call") && !strings.Contains(src, "local function") {
					return true
				}
				scripts++
				for i, line := range strings.Split(src, "\n") {
					if strings.HasPrefix(strings.TrimSpace(line), "--") {
						continue
					}
					for _, s := range luaString.FindAllString(line, -1) {
						if layout.MatchString(s[1 : len(s)-1]) {
							t.Errorf("%s: Lua script line %d builds a key from the literal %s: pass the key, or a prefix from keys.go, in KEYS/ARGV\n\t%s",
								name, i+1, s, strings.TrimSpace(line))
						}
					}
				}
				return true
			})
		}
	}
	if scripts < 10 {
		t.Fatalf("found only %d Lua scripts: is the scan still looking in the right place?", scripts)
	}
}
