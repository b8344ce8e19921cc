package runner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	file := writeScript(t, base, "file", "#!/bin/sh\n")

	t.Run("symlinked dir is resolved", func(t *testing.T) {
		r, err := New(Config{Dir: link})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		want, err := filepath.EvalSymlinks(real)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Dir(); got != want {
			t.Errorf("Dir() = %q, want %q", got, want)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		r, err := New(Config{Dir: real})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if got, want := r.termTimeout, DefaultTermTimeout; got != want {
			t.Errorf("termTimeout = %s, want %s", got, want)
		}
		if got, want := r.stderrTail, DefaultStderrTail; got != want {
			t.Errorf("stderrTail = %d, want %d", got, want)
		}
		if got, want := r.maxLine, DefaultMaxLine; got != want {
			t.Errorf("maxLine = %d, want %d", got, want)
		}
		if r.logger == nil {
			t.Error("logger is nil")
		}
	})

	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{}, `handlers directory "": `},
		{"missing", Config{Dir: filepath.Join(base, "missing")}, `handlers directory "` + filepath.Join(base, "missing") + `": `},
		{"not a directory", Config{Dir: file}, `handlers directory "` + file + `": not a directory`},
		{"negative term timeout", Config{Dir: real, TermTimeout: -1}, "term timeout"},
		{"negative timeout", Config{Dir: real, Timeout: -1}, "timeout"},
		{"negative stderr tail", Config{Dir: real, StderrTail: -1}, "stderr tail"},
		{"negative max line", Config{Dir: real, MaxLine: -1}, "max line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("New() = %v, want error", r)
			}
			if got := err.Error(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("New() error = %q, want prefix %q", got, tc.want)
			}
		})
	}
}

func TestRunner_Resolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := t.TempDir()
	const sh = "#!/bin/sh\nexit 0\n"

	writeScript(t, dir, "Plain", sh)
	writeScript(t, dir, "Mailers/Welcome", sh)
	writeScript(t, dir, "Resize.py", sh)
	writeScript(t, dir, "Amb.py", sh)
	writeScript(t, dir, "Amb.sh", sh)
	writeScript(t, dir, "Multi.tar.gz", sh)
	writeScript(t, dir, "Bad.sh", sh) // must not be used: Bad exists
	writeScript(t, dir, "Target", sh)
	writeScript(t, outside, "Out", sh)
	writeScript(t, outside, "Sub/Inner", sh)
	if err := os.WriteFile(filepath.Join(dir, "Bad"), []byte(sh), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "NoExec.rb"), []byte(sh), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"Somedir", "Ext.d/x"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"Link":      "Target",
		"AbsLink":   filepath.Join(dir, "Target"),
		"Escape":    filepath.Join(outside, "Out"),
		"Escape2":   "../" + filepath.Base(outside) + "/Out",
		"EscapeDir": filepath.Join(outside, "Sub"),
		"Broken":    "nonexistent",
		"Loop":      "Loop",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}

	strict := newTestRunner(t, Config{Dir: dir})
	follow := newTestRunner(t, Config{Dir: dir, FollowSymlinks: true})
	d := strict.Dir()

	for _, tc := range []struct {
		class   string
		follow  bool
		want    string // path relative to dir when err is nil
		wantErr error
	}{
		{class: "Plain", want: "Plain"},
		{class: "Mailers::Welcome", want: "Mailers/Welcome"},
		{class: `Mailers\Welcome`, want: "Mailers/Welcome"}, // php-resque's namespaces
		{class: "Resize", want: "Resize.py"},
		{class: "Multi", want: "Multi.tar.gz"},
		{class: "Link", want: "Link"},
		{class: "AbsLink", want: "AbsLink"},
		{class: "Escape", follow: true, want: "Escape"},
		{class: "Escape2", follow: true, want: "Escape2"},
		{class: "EscapeDir::Inner", follow: true, want: "EscapeDir/Inner"},
		{class: "A:B", wantErr: ErrNoHandler},

		{class: "", wantErr: ErrInvalidClass},
		{class: "../x", wantErr: ErrInvalidClass},
		{class: "a/b", wantErr: ErrInvalidClass},
		{class: `a\\b`, wantErr: ErrInvalidClass},   // an empty PHP namespace segment
		{class: `\a`, wantErr: ErrInvalidClass},     // a leading backslash
		{class: `a\..\b`, wantErr: ErrInvalidClass}, // a dot segment
		{class: ".hidden", wantErr: ErrInvalidClass},
		{class: "..", wantErr: ErrInvalidClass},
		{class: "A::..", wantErr: ErrInvalidClass},
		{class: "A::.x", wantErr: ErrInvalidClass},
		{class: "a::::b", wantErr: ErrInvalidClass},
		{class: "::A", wantErr: ErrInvalidClass},
		{class: "A::", wantErr: ErrInvalidClass},
		{class: "a\x00b", wantErr: ErrInvalidClass},
		{class: "a\nb", wantErr: ErrInvalidClass},
		{class: "a\x7fb", wantErr: ErrInvalidClass},
		{class: "a\xffb", wantErr: ErrInvalidClass},
		{class: strings.Repeat("a", 256), wantErr: ErrInvalidClass},
		{class: strings.Repeat("a", 255), wantErr: ErrNoHandler},

		{class: "Missing", wantErr: ErrNoHandler},
		{class: "Nope::X", wantErr: ErrNoHandler},
		{class: "Resize::X", wantErr: ErrNoHandler},           // Resize is not a directory
		{class: "Mailers::Welcome::X", wantErr: ErrNoHandler}, // Welcome is a file
		{class: "Amb", wantErr: ErrAmbiguous},
		{class: "Bad", wantErr: ErrNotExecutable},
		{class: "NoExec", wantErr: ErrNotExecutable},
		{class: "Somedir", wantErr: ErrNotExecutable},
		{class: "Ext", wantErr: ErrNotExecutable}, // Ext.d is a directory
		{class: "Mailers", wantErr: ErrNotExecutable},
		{class: "Escape", wantErr: ErrNotExecutable},
		{class: "Escape2", wantErr: ErrNotExecutable},
		{class: "EscapeDir::Inner", wantErr: ErrNotExecutable},
		{class: "Broken", wantErr: ErrNotExecutable},
		{class: "Broken", follow: true, wantErr: ErrNotExecutable},
		{class: "Loop", wantErr: ErrNotExecutable},
	} {
		name := tc.class
		if tc.follow {
			name += "/follow"
		}
		t.Run(strings.NewReplacer("/", "_").Replace(name), func(t *testing.T) {
			r := strict
			if tc.follow {
				r = follow
			}
			got, err := r.Resolve(tc.class)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve(%q) = %q, %v; want error %v", tc.class, got, err, tc.wantErr)
				}
				if got != "" {
					t.Errorf("Resolve(%q) path = %q, want empty on error", tc.class, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q) error: %v", tc.class, err)
			}
			if want := filepath.Join(d, tc.want); got != want {
				t.Errorf("Resolve(%q) = %q, want %q", tc.class, got, want)
			}
		})
	}

	t.Run("error text", func(t *testing.T) {
		for class, want := range map[string]string{
			"Missing": `class "Missing": no handler: no executable Missing or Missing.* in ` + d,
			"Amb":     `class "Amb": ambiguous handler: Amb.py, Amb.sh in ` + d,
			"Bad":     `class "Bad": handler not executable: ` + filepath.Join(d, "Bad") + " has no execute permission",
			"Broken":  `class "Broken": handler not executable: ` + filepath.Join(d, "Broken") + " is a broken symlink",
			"Somedir": `class "Somedir": handler not executable: ` + filepath.Join(d, "Somedir") + " is a directory",
			"a/b":     `invalid class name "a/b": a class name is Ruby constants`,
		} {
			_, err := strict.Resolve(class)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Resolve(%q) error = %v, want prefix %q", class, err, want)
			}
		}
	})

	t.Run("handler created after New", func(t *testing.T) {
		r := newTestRunner(t, Config{})
		if _, err := r.Resolve("Late"); !errors.Is(err, ErrNoHandler) {
			t.Fatalf("Resolve(Late) before creation: %v, want ErrNoHandler", err)
		}
		writeScript(t, r.Dir(), "Late.sh", sh)
		got, err := r.Resolve("Late")
		if err != nil {
			t.Fatalf("Resolve(Late): %v", err)
		}
		if want := filepath.Join(r.Dir(), "Late.sh"); got != want {
			t.Errorf("Resolve(Late) = %q, want %q", got, want)
		}
		// An exact name added later takes precedence over the extension.
		writeScript(t, r.Dir(), "Late", sh)
		if got, err := r.Resolve("Late"); err != nil || got != filepath.Join(r.Dir(), "Late") {
			t.Errorf("Resolve(Late) = %q, %v; want %q", got, err, filepath.Join(r.Dir(), "Late"))
		}
	})
}

func TestValidateClass(t *testing.T) {
	t.Parallel()
	for _, class := range []string{"Resize", "Mailers::Welcome", "A::B::C", "a.b", "Résumé", "with space", "A:B", strings.Repeat("x", 255)} {
		if err := ValidateClass(class); err != nil {
			t.Errorf("ValidateClass(%q) = %v, want nil", class, err)
		}
	}
}
