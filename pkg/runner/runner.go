package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
)

// Defaults for zero Config fields.
const (
	DefaultTermTimeout = 4 * time.Second
	DefaultStderrTail  = 64 << 10
	DefaultMaxLine     = 16 << 10
)

// maxClassLen is the longest accepted class name, in bytes.
const maxClassLen = 255

// Config configures a Runner. Zero values get the documented defaults.
type Config struct {
	// Dir is the handlers directory (required; must exist and be a
	// directory). It is stored as an absolute, symlink-resolved path.
	Dir string
	// Logger is the runner's logger, used (with a "class" field) for jobs
	// that have no Logger of their own. nil means hclog.NewNullLogger().
	Logger hclog.Logger
	// TermTimeout is the grace between SIGTERM and SIGKILL when a handler is
	// stopped. It also bounds how long Wait waits for the output pipes to
	// close after the handler exited. Zero means 4s.
	TermTimeout time.Duration
	// Timeout is the per-job wall clock limit; zero means none. On expiry
	// the handler is stopped as by Process.Stop and the error is an
	// *ExitError with TimedOut set.
	Timeout time.Duration
	// StderrTail is the number of bytes of the most recent stderr kept for
	// failure records. Zero means 64 KiB.
	StderrTail int
	// MaxLine is the longest line forwarded to the log; longer lines are
	// split into chunks of MaxLine bytes. Zero means 16 KiB.
	MaxLine int
	// FollowSymlinks allows handler symlinks that resolve outside Dir
	// (refused by default).
	FollowSymlinks bool
	// Env is the base environment of handlers; nil means os.Environ() at
	// the time each handler is started.
	Env []string
	// StdoutTail, when positive, keeps that many bytes of the most recent
	// stdout lines in Result.StdoutTail (--keep-output); zero keeps none.
	StdoutTail int
	// Limits are the limits of every job that has none of its own
	// (Job.Limits); the zero Limits means none.
	Limits Limits
	// Cgroup is a delegated cgroup v2 directory under which every job is
	// born in a cgroup of its own (memory.max, memory.swap.max=0,
	// pids.max from its limits; docs/operations.md); New refuses one it
	// cannot use. Empty means none: rlimits and watching /proc enforce
	// the limits instead.
	Cgroup string
}

// Runner resolves job classes to handler executables and runs them. It is
// safe for concurrent use.
type Runner struct {
	dir         string
	logger      hclog.Logger
	termTimeout time.Duration
	timeout     time.Duration
	stderrTail  int
	stdoutTail  int
	maxLine     int
	follow      bool
	limits      Limits
	// groups makes a job's limitGroup (useCgroup); nil without --cgroup.
	groups      func(Limits) (limitGroup, error)
	env         []string // nil: os.Environ()
	envOnce     sync.Once
	filteredEnv []string // env without the variables environ sets
	// found caches resolutions that went through a directory listing
	// (class -> *found), for as long as that directory is unchanged.
	found sync.Map
}

// found is a class resolved by listing dir: valid while dir's mtime and
// the file's own Lstat are what they were.
type found struct {
	path   string
	dir    string
	dirMod time.Time
	file   fs.FileInfo
}

// still reports whether f is still what resolving its class would find.
func (f *found) still() bool {
	d, err := os.Stat(f.dir)
	if err != nil || !d.ModTime().Equal(f.dirMod) {
		return false
	}
	fi, err := os.Lstat(f.path)
	return err == nil && fi.Mode() == f.file.Mode() && fi.ModTime().Equal(f.file.ModTime()) &&
		fi.Size() == f.file.Size() && os.SameFile(fi, f.file)
}

// New returns a Runner for cfg.
func New(cfg Config) (*Runner, error) {
	dir, err := handlersDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.TermTimeout < 0:
		return nil, fmt.Errorf("term timeout %s: must not be negative", cfg.TermTimeout)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("timeout %s: must not be negative", cfg.Timeout)
	case cfg.StderrTail < 0:
		return nil, fmt.Errorf("stderr tail %d: must not be negative", cfg.StderrTail)
	case cfg.StdoutTail < 0:
		return nil, fmt.Errorf("stdout tail %d: must not be negative", cfg.StdoutTail)
	case cfg.MaxLine < 0:
		return nil, fmt.Errorf("max line %d: must not be negative", cfg.MaxLine)
	}
	if err := cfg.Limits.check("limits"); err != nil {
		return nil, err
	}
	r := &Runner{
		dir:         dir,
		logger:      cfg.Logger,
		termTimeout: cfg.TermTimeout,
		timeout:     cfg.Timeout,
		stderrTail:  cfg.StderrTail,
		stdoutTail:  cfg.StdoutTail,
		maxLine:     cfg.MaxLine,
		follow:      cfg.FollowSymlinks,
		limits:      cfg.Limits,
	}
	if r.logger == nil {
		r.logger = hclog.NewNullLogger()
	}
	if r.termTimeout == 0 {
		r.termTimeout = DefaultTermTimeout
	}
	if r.stderrTail == 0 {
		r.stderrTail = DefaultStderrTail
	}
	if r.maxLine == 0 {
		r.maxLine = DefaultMaxLine
	}
	if cfg.Env != nil {
		r.env = slices.Clip(slices.Clone(cfg.Env))
	}
	if cfg.Cgroup != "" {
		if err := r.useCgroup(cfg.Cgroup); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// handlersDir returns the absolute, symlink-resolved form of dir, which must
// be an existing directory.
func handlersDir(dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("handlers directory %q: path not set", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("handlers directory %q: %w", dir, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("handlers directory %q: %w", dir, err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("handlers directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("handlers directory %q: not a directory", dir)
	}
	return resolved, nil
}

// Dir returns the handlers directory (absolute, symlinks resolved).
func (r *Runner) Dir() string { return r.dir }

// Resolve returns the absolute path of the executable handling class. See
// the package documentation for the rules. Errors wrap ErrInvalidClass,
// ErrNoHandler, ErrAmbiguous or ErrNotExecutable.
func (r *Runner) Resolve(class string) (string, error) {
	if err := ValidateClass(class); err != nil {
		return "", err
	}
	segments := Segments(class)
	exact := filepath.Join(append([]string{r.dir}, segments...)...)

	fi, err := os.Lstat(exact)
	switch {
	case err == nil && len(segments) == 1 && fi.Mode().IsRegular():
		// A plain file right in the (resolved) handlers directory: there
		// is no symlink to follow, and Lstat already said what Stat
		// would. One system call per job instead of six.
		return checkMode(class, exact, fi)
	case err == nil:
		return r.checkExecutable(class, exact)
	case !isNotExist(err):
		return "", fmt.Errorf("resolve class %q: %w", class, err)
	}

	if v, ok := r.found.Load(class); ok {
		if f := v.(*found); f.still() {
			return f.path, nil
		}
		r.found.Delete(class)
	}
	parent, last := filepath.Split(exact)
	parent = filepath.Clean(parent)
	// Stat before listing: a change after it shows in the next lookup.
	pfi, perr := os.Stat(parent)
	entries, err := os.ReadDir(parent)
	if err != nil {
		if isNotExist(err) {
			return "", fmt.Errorf("class %q: %w: no executable %s or %s.* in %s",
				class, ErrNoHandler, last, last, parent)
		}
		return "", fmt.Errorf("resolve class %q: %w", class, err)
	}
	prefix := last + "."
	var matches []string
	for _, e := range entries {
		if name := e.Name(); len(name) > len(prefix) && strings.HasPrefix(name, prefix) {
			matches = append(matches, name)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("class %q: %w: no executable %s or %s.* in %s",
			class, ErrNoHandler, last, last, parent)
	case 1:
		path := filepath.Join(parent, matches[0])
		got, err := r.checkExecutable(class, path)
		if err == nil && perr == nil {
			// Only a plain file is remembered: a symlink's target may
			// change without the directory changing.
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode().IsRegular() {
				r.found.Store(class, &found{path: got, dir: parent, dirMod: pfi.ModTime(), file: fi})
			}
		}
		return got, err
	default:
		return "", fmt.Errorf("class %q: %w: %s in %s",
			class, ErrAmbiguous, strings.Join(matches, ", "), parent)
	}
}

// checkExecutable returns path if it resolves to an executable regular file
// that, unless r.follow, lies inside r.dir.
func (r *Runner) checkExecutable(class, path string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		if isNotExist(err) {
			return "", fmt.Errorf("class %q: %w: %s is a broken symlink", class, ErrNotExecutable, path)
		}
		return "", fmt.Errorf("class %q: %w: %s: %w", class, ErrNotExecutable, path, err)
	}
	if !r.follow && !within(r.dir, resolved) {
		return "", fmt.Errorf("class %q: %w: %s resolves to %s, outside %s",
			class, ErrNotExecutable, path, resolved, r.dir)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("class %q: %w: %s: %w", class, ErrNotExecutable, path, err)
	}
	return checkMode(class, path, fi)
}

// checkMode returns path if fi, what it resolves to, is an executable
// regular file.
func checkMode(class, path string, fi fs.FileInfo) (string, error) {
	switch mode := fi.Mode(); {
	case mode.IsDir():
		return "", fmt.Errorf("class %q: %w: %s is a directory", class, ErrNotExecutable, path)
	case !mode.IsRegular():
		return "", fmt.Errorf("class %q: %w: %s is not a regular file (%s)", class, ErrNotExecutable, path, mode.Type())
	case mode.Perm()&0o111 == 0:
		return "", fmt.Errorf("class %q: %w: %s has no execute permission (%s)", class, ErrNotExecutable, path, mode.Perm())
	}
	return path, nil
}

// within reports whether path lies strictly inside dir. Both must be clean
// absolute paths.
func within(dir, path string) bool {
	if dir == string(filepath.Separator) {
		return path != dir
	}
	return strings.HasPrefix(path, dir+string(filepath.Separator))
}

// isNotExist reports whether err means a path (or one of its parents) does
// not exist.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// classShape says what a class name looks like, for errors about one
// that does not.
const classShape = `a class name is Ruby constants joined by "::" (letters, digits, _)`

// ValidateClass checks a class name without touching the filesystem: it
// returns an error wrapping ErrInvalidClass for any name Resolve refuses
// outright. Enqueuers use it to refuse such names up front. The error
// reads `invalid class name "X": ` and what is wrong, for the person who
// typed the name.
func ValidateClass(class string) error {
	bad := func(format string, a ...interface{}) error {
		return fmt.Errorf("%w %s: %s", ErrInvalidClass, quoteClass(class), fmt.Sprintf(format, a...))
	}
	switch {
	case class == "":
		return bad("it is empty; %s, such as Mailers::Welcome", classShape)
	case len(class) > maxClassLen:
		return bad("it is %d bytes long, over the limit of %d", len(class), maxClassLen)
	case !utf8.ValidString(class):
		return bad("it is not valid UTF-8")
	}
	for i := 0; i < len(class); i++ {
		switch c := class[i]; {
		case c < 0x20 || c == 0x7f:
			return bad("it has control character %#02x at byte %d; %s", c, i+1, classShape)
		case c == '/':
			return bad(`%s, with no "/"`, classShape)
		}
	}
	for _, seg := range Segments(class) {
		switch {
		case seg == "":
			return bad(`it has an empty part before or after a "::"; %s`, classShape)
		case seg[0] == '.':
			return bad("part %q starts with a dot; %s", seg, classShape)
		}
	}
	return nil
}

// quoteClass quotes a class name for a message, cut short when long.
func quoteClass(class string) string {
	const max = 60
	if len(class) > max {
		return strconv.Quote(class[:max]) + "..."
	}
	return strconv.Quote(class)
}

// Segments splits a class name into its namespace parts: Ruby's
// "Mailers::Welcome" and PHP's "App\Jobs\SendMail" alike, so a php-resque
// job class runs handlers/App/Jobs/SendMail.
func Segments(class string) []string {
	return strings.Split(strings.ReplaceAll(class, "\\", "::"), "::")
}
