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
	// Mode is "exec" (a process per job) or "persistent" (one process
	// per worker slot serves many jobs; see Slot).
	Mode string `json:"mode"`
	// Problem, when not empty, says why jobs of Class would fail.
	Problem string `json:"problem,omitempty"`
}

// Inventory lists every file in the handlers directory but dot files
// with the class it serves and, for those that cannot serve, why: not
// executable, a broken symlink, a symlink out of the directory, two files
// for one class, or a file name no class can reach. Symlinked
// subdirectories are listed through, as Resolve follows them.
func (r *Runner) Inventory() ([]Entry, error) {
	var out []Entry
	onPath := map[string]bool{} // resolved directories being walked, against symlink loops
	var walk func(rel string) error
	walk = func(rel string) error {
		dir := filepath.Join(r.dir, rel)
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return err
		}
		if onPath[real] {
			return nil
		}
		onPath[real] = true
		defer delete(onPath, real)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, d := range ents {
			// Dot entries are never handlers (no class segment starts
			// with a dot): a place for sources, notes and VCS files.
			if strings.HasPrefix(d.Name(), ".") {
				continue
			}
			path, relPath := filepath.Join(dir, d.Name()), filepath.Join(rel, d.Name())
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				if target := mustEval(path); !r.follow && target != r.dir && !within(r.dir, target) {
					out = append(out, Entry{Path: relPath, Problem: "directory symlink points outside the handlers directory"})
					continue
				}
				if err := walk(relPath); err != nil {
					out = append(out, Entry{Path: relPath, Problem: err.Error()})
				}
				continue
			}
			out = append(out, r.entry(relPath))
		}
		return nil
	}
	err := walk("")
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// entry describes the file at rel.
func (r *Runner) entry(rel string) Entry {
	class := classOf(rel)
	e := Entry{Class: class, Path: rel, Mode: "exec"}
	if IsPersistent(rel) {
		e.Mode = "persistent"
	}
	if err := ValidateClass(class); err != nil {
		e.Class, e.Problem = "", "no class can name this file: "+err.Error()
		return e
	}
	resolved, err := r.Resolve(class)
	switch {
	case err != nil:
		e.Problem = problem(err)
	case resolved != filepath.Join(r.dir, rel):
		// Another file wins the lookup for this class (C beats C.sh).
		other, _ := filepath.Rel(r.dir, resolved)
		e.Problem = "shadowed: class " + class + " runs " + other
	default:
		e.Problem = firstLineProblem(class, resolved)
	}
	return e
}

func mustEval(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return path
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
