package runner

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Classes lists the job classes the handlers directory provides right
// now: every name Resolve would accept and run, "Mailers::Welcome" for
// Mailers/Welcome(.ext). Ambiguous and non-executable entries are left out.
func (r *Runner) Classes() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(r.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if path == r.dir {
				return err
			}
			return nil // unreadable subdirectory: its classes are unavailable
		}
		if path == r.dir {
			return nil
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(r.dir, path)
		if err != nil {
			return nil
		}
		segs := strings.Split(filepath.ToSlash(rel), "/")
		last := segs[len(segs)-1]
		if i := strings.IndexByte(last, '.'); i > 0 {
			last = last[:i]
		}
		segs[len(segs)-1] = last
		class := strings.Join(segs, "::")
		if seen[class] {
			return nil
		}
		seen[class] = true
		if _, err := r.Resolve(class); err == nil {
			out = append(out, class)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
