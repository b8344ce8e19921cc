package runner

import "strings"

// Classes lists the job classes the handlers directory provides right
// now: every name Resolve would accept and run, "Mailers::Welcome" for
// Mailers/Welcome(.ext), and PHP's "Mailers\Welcome" for it too.
// Ambiguous and non-executable entries are left out.
func (r *Runner) Classes() ([]string, error) {
	entries, err := r.Inventory()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Problem == "" && e.Class != "" {
			out = append(out, e.Class)
			if strings.Contains(e.Class, "::") { // the same class as PHP names it
				out = append(out, strings.ReplaceAll(e.Class, "::", `\`))
			}
		}
	}
	return out, nil
}
