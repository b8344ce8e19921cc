package runner

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Entry is one thing in the handlers directory, as `resqued handlers`
// lists it.
type Entry struct {
	// Class is the job class the file answers to ("Mailers::Welcome").
	Class string `json:"class"`
	// Path is the file, relative to the handlers directory.
	Path string `json:"path"`
	// Problem, when not empty, says why jobs of Class would fail.
	Problem string `json:"problem,omitempty"`
}

// Inventory lists every file in the handlers directory but dot files with the class it
// serves and, for those that cannot serve, why: not executable, a
// directory or broken symlink, a symlink out of the directory, two files
// for one class, or a file name no class can reach.
func (r *Runner) Inventory() ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(r.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if path == r.dir {
				return err
			}
			rel, _ := filepath.Rel(r.dir, path)
			out = append(out, Entry{Path: rel, Problem: err.Error()})
			return nil
		}
		if path == r.dir {
			return nil
		}
		rel, _ := filepath.Rel(r.dir, path)
		// Dot entries are never handlers (no class segment starts with a
		// dot): a place for sources, notes and VCS files.
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		class := classOf(rel)
		e := Entry{Class: class, Path: rel}
		if err := ValidateClass(class); err != nil {
			e.Class, e.Problem = "", "no class can name this file: "+err.Error()
			out = append(out, e)
			return nil
		}
		resolved, err := r.Resolve(class)
		switch {
		case err != nil:
			e.Problem = problem(err)
		case resolved != path:
			// Another file wins the lookup for this class (C beats C.sh).
			other, _ := filepath.Rel(r.dir, resolved)
			e.Problem = "shadowed: class " + class + " runs " + other
		}
		out = append(out, e)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// problem shortens a Resolve error to what is wrong with the file.
func problem(err error) string {
	msg := err.Error()
	for _, s := range []error{ErrNotExecutable, ErrAmbiguous, ErrNoHandler, ErrInvalidClass} {
		if errors.Is(err, s) {
			if i := strings.Index(msg, s.Error()); i >= 0 {
				return msg[i:]
			}
		}
	}
	return msg
}

// classOf is the class a file answers to: its path relative to the
// handlers directory, "/" as "::", without the extension.
func classOf(rel string) string {
	segs := strings.Split(filepath.ToSlash(rel), "/")
	last := segs[len(segs)-1]
	if i := strings.IndexByte(last, '.'); i > 0 {
		last = last[:i]
	}
	segs[len(segs)-1] = last
	return strings.Join(segs, "::")
}
