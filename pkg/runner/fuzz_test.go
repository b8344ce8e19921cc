package runner_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/runner"
)

// fuzzTree is the handlers tree FuzzResolve resolves classes in:
//
//	root/handlers/Ok                 executable
//	root/handlers/Py.py              executable
//	root/handlers/Mailers/Welcome    executable
//	root/handlers/NoExec             not executable
//	root/handlers/Amb.sh, Amb.py     ambiguous pair
//	root/handlers/Link       -> ../outside/Escape
//	root/handlers/Out        -> ../outside        (directory symlink)
//	root/handlers/Up         -> ..                (to root)
//	root/outside/Escape, Esc.sh      executable, outside the handlers dir
type fuzzTree struct {
	r       *runner.Runner
	dir     string // handlers dir, symlinks resolved
	outside string // outside dir, symlinks resolved
}

func newFuzzTree(f *testing.F) *fuzzTree {
	f.Helper()
	root := f.TempDir()
	handlers := filepath.Join(root, "handlers")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{handlers, outside, filepath.Join(handlers, "Mailers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	const script = "#!/bin/sh\nexit 0\n"
	for name, mode := range map[string]os.FileMode{
		"handlers/Ok":              0o755,
		"handlers/Py.py":           0o755,
		"handlers/Mailers/Welcome": 0o755,
		"handlers/NoExec":          0o644,
		"handlers/Amb.sh":          0o755,
		"handlers/Amb.py":          0o755,
		"outside/Escape":           0o755,
		"outside/Esc.sh":           0o755,
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.WriteFile(p, []byte(script), mode); err != nil {
			f.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask-proof
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"Link": "../outside/Escape",
		"Out":  "../outside",
		"Up":   "..",
	} {
		if err := os.Symlink(target, filepath.Join(handlers, name)); err != nil {
			f.Fatal(err)
		}
	}
	r, err := runner.New(runner.Config{Dir: handlers})
	if err != nil {
		f.Fatal(err)
	}
	t := &fuzzTree{r: r}
	if t.dir, err = filepath.EvalSymlinks(handlers); err != nil {
		f.Fatal(err)
	}
	if t.outside, err = filepath.EvalSymlinks(outside); err != nil {
		f.Fatal(err)
	}
	if r.Dir() != t.dir {
		f.Fatalf("Dir() = %q, want %q", r.Dir(), t.dir)
	}
	// The tree must behave as intended, or the fuzz properties below
	// prove little.
	for class, want := range map[string]string{
		"Ok":               filepath.Join(t.dir, "Ok"),
		"Py":               filepath.Join(t.dir, "Py.py"),
		"Mailers::Welcome": filepath.Join(t.dir, "Mailers", "Welcome"),
	} {
		if got, err := r.Resolve(class); err != nil || got != want {
			f.Fatalf("Resolve(%q) = %q, %v; want %q", class, got, err, want)
		}
	}
	for _, class := range []string{"Link", "Out::Escape", "Out::Esc", "Up::outside::Escape"} {
		if _, err := r.Resolve(class); !errors.Is(err, runner.ErrNotExecutable) {
			f.Fatalf("Resolve(%q): err %v, want ErrNotExecutable", class, err)
		}
	}
	return t
}

// FuzzResolve resolves arbitrary class names in a fixed handlers tree.
// Seeds: the f.Add calls below and testdata/fuzz/FuzzResolve.
func FuzzResolve(f *testing.F) {
	tree := newFuzzTree(f) // once per fuzzing process
	for _, s := range []string{
		"Ok", "Py", "Py.py", "Mailers::Welcome", "Mailers", "Link", "NoExec",
		"Amb", "Out::Escape", "Up::handlers::Ok", "../etc/passwd", "..",
		".hidden", "A::..::B", "a/b", `a\b`, "A\x00B", "A\nB", "::A", "A::",
		strings.Repeat("A", 256), "Ünïcode", "CON", "\xff",
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, class string) {
		verr := runner.ValidateClass(class)
		path, err := tree.r.Resolve(class)

		if verr != nil {
			if err == nil || !errors.Is(err, runner.ErrInvalidClass) {
				t.Fatalf("ValidateClass(%q) = %v, but Resolve = %q, %v; want ErrInvalidClass", class, verr, path, err)
			}
		} else if errors.Is(err, runner.ErrInvalidClass) {
			t.Errorf("ValidateClass(%q) = nil, but Resolve says %v", class, err)
		}
		if mustRefuse(class) {
			if verr == nil {
				t.Errorf("ValidateClass(%q) = nil, want an error", class)
			}
			if err == nil {
				t.Fatalf("Resolve(%q) = %q, want an error", class, path)
			}
		}
		if err != nil {
			if path != "" {
				t.Errorf("Resolve(%q) returned path %q together with error %v", class, path, err)
			}
			return
		}

		// The returned path is the name in the handlers dir ...
		if !filepath.IsAbs(path) || filepath.Clean(path) != path || !strings.HasPrefix(path, tree.dir+string(filepath.Separator)) {
			t.Fatalf("Resolve(%q) = %q, not a clean path inside %q", class, path, tree.dir)
		}
		// ... and what it names, symlinks resolved, too.
		real, rerr := filepath.EvalSymlinks(path)
		if rerr != nil {
			t.Fatalf("Resolve(%q) = %q, which does not resolve: %v", class, path, rerr)
		}
		if !strings.HasPrefix(real, tree.dir+string(filepath.Separator)) {
			t.Fatalf("Resolve(%q) = %q -> %q, outside handlers dir %q", class, path, real, tree.dir)
		}
		if strings.HasPrefix(real, tree.outside+string(filepath.Separator)) || real == filepath.Join(tree.outside, "Escape") {
			t.Fatalf("Resolve(%q) = %q -> %q escapes to %q", class, path, real, tree.outside)
		}
		fi, serr := os.Stat(real)
		if serr != nil {
			t.Fatalf("Resolve(%q) = %q: %v", class, path, serr)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			t.Fatalf("Resolve(%q) = %q (mode %s), want an executable regular file", class, path, fi.Mode())
		}
	})
}

// mustRefuse reports whether class has something that must never reach
// the filesystem: a path separator, a control character (NUL included)
// or a "::" (or PHP "\\") segment that is empty or starts with a dot.
func mustRefuse(class string) bool {
	if strings.Contains(class, "/") {
		return true
	}
	for i := 0; i < len(class); i++ {
		if class[i] < 0x20 || class[i] == 0x7f {
			return true
		}
	}
	// PHP's namespace separator is "::" by another name.
	for _, seg := range strings.Split(strings.ReplaceAll(class, `\`, "::"), "::") {
		if seg == "" || seg[0] == '.' {
			return true
		}
	}
	return false
}
