package runner_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/runner"
)

// TestValidateClass_Messages pins what a refused class name is told:
// the name, what is wrong with it and what a class name looks like.
func TestValidateClass_Messages(t *testing.T) {
	const shape = `a class name is Ruby constants joined by "::" (letters, digits, _)`
	for _, tc := range []struct{ class, want string }{
		{"", `invalid class name "": it is empty; ` + shape + `, such as Mailers::Welcome`},
		{"../../etc/passwd", `invalid class name "../../etc/passwd": ` + shape + `, with no "/"`},
		{"a/b", `invalid class name "a/b": ` + shape + `, with no "/"`},
		{"Ok\x00x", `invalid class name "Ok\x00x": it has control character 0x00 at byte 3; ` + shape},
		{"Resize\n", `invalid class name "Resize\n": it has control character 0x0a at byte 7; ` + shape},
		{"\xff", `invalid class name "\xff": it is not valid UTF-8`},
		{"A::::B", `invalid class name "A::::B": it has an empty part before or after a "::"; ` + shape},
		{`\A`, `invalid class name "\\A": it has an empty part before or after a "::"; ` + shape},
		{".hidden", `invalid class name ".hidden": part ".hidden" starts with a dot; ` + shape},
		{"A::..", `invalid class name "A::..": part ".." starts with a dot; ` + shape},
		{strings.Repeat("A", 300), `invalid class name "` + strings.Repeat("A", 60) + `"...: it is 300 bytes long, over the limit of 255`},
	} {
		err := runner.ValidateClass(tc.class)
		if !errors.Is(err, runner.ErrInvalidClass) {
			t.Errorf("ValidateClass(%q) = %v, want ErrInvalidClass", tc.class, err)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("ValidateClass(%q):\n got %s\nwant %s", tc.class, got, tc.want)
		}
	}
	for _, ok := range []string{"Echo", "Mailers::Welcome", `App\Jobs\SendMail`} {
		if err := runner.ValidateClass(ok); err != nil {
			t.Errorf("ValidateClass(%q) = %v, want nil", ok, err)
		}
	}
}
