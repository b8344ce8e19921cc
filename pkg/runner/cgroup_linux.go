package runner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A job cgroup's processes are killed, and the cgroup removed, within
// cgroupWaitTimeout; past it finish and sweep give up with an error (a
// process stuck in the kernel, such as on a dead NFS server, cannot be
// killed sooner than the kernel lets it go).
const cgroupWaitTimeout = 10 * time.Second

// cgroupLeaf is the child of the --cgroup directory that the processes
// found in the directory itself are moved into, so that controllers can be
// enabled for its children (cgroup v2's "no internal processes" rule).
const cgroupLeaf = "resqued"

// cgroupHint is where a user who got a cgroup wrong reads how to set it up.
const cgroupHint = "on a systemd host use a unit with Delegate=yes (docs/operations.md)"

// cgroupRoot is the cgroup v2 directory given with --cgroup, set up so that
// each job can get a child cgroup of its own with the memory and pids
// controllers. Several worker processes may share one directory: job
// cgroups are named job-<pid>-<seq> after the worker that created them.
type cgroupRoot struct {
	dir     string          // absolute path
	pid     int             // this process, the owner of the job cgroups it creates
	seq     atomic.Uint64   // the last job cgroup's sequence number
	enabled map[string]bool // the controllers every job cgroup has
}

// openCgroup checks that dir is a cgroup v2 directory this process may
// manage, with the memory and pids controllers available, and enables them
// (and cpu, where available) for dir's children. If dir itself holds
// processes, as when systemd started the daemon in its unit's cgroup, they
// are first moved into the leaf dir/resqued, because cgroup v2 lets a cgroup
// that has processes enable no controllers for its children.
func openCgroup(dir string) (*cgroupRoot, error) {
	return openCgroupNeeding(dir, "memory", "pids")
}

// openCgroupNeeding is openCgroup requiring the controllers in need rather
// than memory and pids; tests use it where those are not available.
func openCgroupNeeding(dir string, need ...string) (*cgroupRoot, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("--cgroup %s: "+format, append([]any{dir}, a...)...)
	}
	denied := bad("permission denied: the daemon needs the cgroup delegated to its user (chown the directory and its cgroup.procs, cgroup.subtree_control and cgroup.threads to that user, or %s)", cgroupHint)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, bad("%v", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, bad("no such directory; %s", cgroupHint)
	case errors.Is(err, fs.ErrPermission):
		return nil, denied
	case err != nil:
		return nil, bad("cannot look at it: %v", err)
	case !fi.IsDir():
		return nil, bad("not a directory; give the path of a cgroup v2 directory, e.g. /sys/fs/cgroup/system.slice/resqued.service")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(abs, &st); err != nil {
		return nil, bad("cannot look at its filesystem: %v", err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, bad("is not a cgroup v2 directory (it is on %s); give one on the cgroup2 mount that `mount -t cgroup2` lists, or %s", fsName(int64(st.Type)), cgroupHint)
	}
	for _, p := range []string{abs, filepath.Join(abs, "cgroup.procs"), filepath.Join(abs, "cgroup.subtree_control")} {
		if err := unix.Access(p, unix.W_OK); err != nil {
			return nil, denied
		}
	}
	controllers, err := readFields(filepath.Join(abs, "cgroup.controllers"))
	if err != nil {
		return nil, bad("cannot read cgroup.controllers: %v", err)
	}
	subtree, err := readFields(filepath.Join(abs, "cgroup.subtree_control"))
	if err != nil {
		return nil, bad("cannot read cgroup.subtree_control: %v", err)
	}
	var missing []string
	for _, name := range need {
		if !slices.Contains(controllers, name) && !slices.Contains(subtree, name) {
			listed := strings.Join(controllers, " ")
			if listed == "" {
				listed = "nothing"
			}
			return nil, bad("no %s controller there (cgroup.controllers lists: %s); %s", name, listed, cgroupHint)
		}
		if !slices.Contains(subtree, name) {
			missing = append(missing, name)
		}
	}
	c := &cgroupRoot{dir: abs, pid: os.Getpid()}
	if err := c.enable(missing); errors.Is(err, fs.ErrPermission) {
		return nil, denied
	} else if err != nil {
		return nil, bad("%v", err)
	}
	if slices.Contains(controllers, "cpu") && !slices.Contains(subtree, "cpu") {
		// Optional: it only adds cpu.* files to the job cgroups. It can be
		// refused, for example while a process runs with a realtime
		// scheduling policy; cpu.stat's usage_usec is there without it.
		_ = c.enable([]string{"cpu"})
	}
	subtree, err = readFields(filepath.Join(abs, "cgroup.subtree_control"))
	if err != nil {
		return nil, bad("cannot read cgroup.subtree_control: %v", err)
	}
	c.enabled = make(map[string]bool, len(subtree))
	for _, name := range subtree {
		c.enabled[name] = true
	}
	return c, nil
}

// enable enables the controllers names in the subtree_control of c.dir. If
// the kernel refuses because c.dir holds processes, they are moved into the
// leaf c.dir/resqued and it tries once more.
func (c *cgroupRoot) enable(names []string) error {
	if len(names) == 0 {
		return nil
	}
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("+" + name)
	}
	control := filepath.Join(c.dir, "cgroup.subtree_control")
	err := writeCgroupFile(control, b.String())
	if errors.Is(err, unix.EBUSY) {
		if err := c.moveToLeaf(); err != nil {
			return err
		}
		err = writeCgroupFile(control, b.String())
	}
	if err != nil {
		return fmt.Errorf("enable %s in cgroup.subtree_control: %w", strings.Join(names, " and "), err)
	}
	return nil
}

// moveToLeaf moves every process of c.dir into its child c.dir/resqued,
// creating it if need be, until c.dir has none left.
func (c *cgroupRoot) moveToLeaf() error {
	leaf := filepath.Join(c.dir, cgroupLeaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s for the processes already in the cgroup: %w", leaf, err)
	}
	// Processes may fork while they are moved; a few rounds catch those.
	for range 100 {
		pids, err := readPids(filepath.Join(c.dir, "cgroup.procs"))
		if err != nil {
			return fmt.Errorf("list the processes already in the cgroup: %w", err)
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			err := writeCgroupFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(pid))
			if err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: it has exited
				return fmt.Errorf("move process %d into %s: %w", pid, leaf, err)
			}
		}
	}
	return fmt.Errorf("move the processes already in the cgroup into %s: new ones keep appearing", leaf)
}

// newJob creates a job cgroup below c with the limits l: memory.max (and
// memory.swap.max 0, so the limit cannot be dodged by swapping, and
// memory.oom.group 1, so an OOM kill takes the whole job) and pids.max. A
// zero limit is written as "max". The caller starts the handler in it with
// SysProcAttr{UseCgroupFD: true, CgroupFD: j.fd()} and calls finish once
// the handler has exited.
func (c *cgroupRoot) newJob(l Limits) (*jobCgroup, error) {
	if l.Memory > 0 && !c.enabled["memory"] {
		return nil, fmt.Errorf("limit memory: the memory controller is not enabled in %s", c.dir)
	}
	if l.Procs > 0 && !c.enabled["pids"] {
		return nil, fmt.Errorf("limit processes: the pids controller is not enabled in %s", c.dir)
	}
	var path string
	for tries := 0; ; tries++ {
		path = filepath.Join(c.dir, fmt.Sprintf("job-%d-%d", c.pid, c.seq.Add(1)))
		err := os.Mkdir(path, 0o755)
		if err == nil {
			break
		}
		// A leftover of an earlier process with the same pid, which sweep
		// will remove: take the next number.
		if errors.Is(err, fs.ErrExist) && tries < 100 {
			continue
		}
		return nil, fmt.Errorf("create job cgroup %s: %w", path, err)
	}
	j := &jobCgroup{path: path, dirfd: -1, memory: c.enabled["memory"], pids: c.enabled["pids"]}
	if err := j.limit(l); err != nil {
		_ = os.Remove(path) // empty: no process was ever in it
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("open job cgroup %s: %w", path, err)
	}
	j.dirfd = fd
	return j, nil
}

// sweep removes the job cgroups that worker processes which no longer run
// left behind (a daemon killed with SIGKILL, a crash), killing whatever
// still runs in them first. Job cgroups of live processes, this one
// included, are left alone, even empty ones: a live worker may have just
// created one and be about to start its handler in it. Errors are not
// reported: what cannot be removed now is tried again at the next start.
func (c *cgroupRoot) sweep() {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		owner, ok := jobCgroupOwner(e.Name())
		if !ok || !e.IsDir() || owner == c.pid || processAlive(owner) {
			continue
		}
		j := &jobCgroup{path: filepath.Join(c.dir, e.Name()), dirfd: -1}
		if err := j.kill(); err != nil {
			continue
		}
		_ = j.remove(time.Now().Add(cgroupWaitTimeout))
	}
}

// jobCgroupOwner returns the pid in a job cgroup's name, job-<pid>-<seq>.
func jobCgroupOwner(name string) (pid int, ok bool) {
	rest, ok := strings.CutPrefix(name, "job-")
	if !ok {
		return 0, false
	}
	p, seq, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// jobCgroup is one job's cgroup: the handler is started in it, and every
// process it starts stays in it, whatever process group or session it
// moves to, so the whole job can be measured and killed as one.
type jobCgroup struct {
	path         string
	dirfd        int // the open directory, for CLONE_INTO_CGROUP; -1 once closed
	memory, pids bool

	mu       sync.Mutex
	peak     int64 // the highest memory.current seen, where memory.peak is missing
	finished bool
}

// fd is the file descriptor of the job cgroup's directory, for
// SysProcAttr.CgroupFD. It is -1 once finish has returned.
func (j *jobCgroup) fd() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.dirfd
}

// limit writes l into the new job cgroup's control files.
func (j *jobCgroup) limit(l Limits) error {
	set := func(file, value string) error {
		if err := writeCgroupFile(filepath.Join(j.path, file), value); err != nil {
			return fmt.Errorf("set %s of job cgroup %s to %s: %w", file, j.path, value, err)
		}
		return nil
	}
	optional := func(file, value string) error {
		if err := set(file, value); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if j.memory {
		if err := set("memory.max", limitValue(l.Memory)); err != nil {
			return err
		}
		if l.Memory > 0 {
			// memory.swap.max is missing when the kernel does not
			// account swap (swapaccount=0), memory.oom.group before 4.19.
			if err := optional("memory.swap.max", "0"); err != nil {
				return err
			}
			if err := optional("memory.oom.group", "1"); err != nil {
				return err
			}
		}
	}
	if j.pids {
		if err := set("pids.max", limitValue(int64(l.Procs))); err != nil {
			return err
		}
	}
	return nil
}

// limitValue is n as a cgroup limit: "max" for no limit.
func limitValue(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// usage reads what the job cgroup has recorded so far. It may be called
// while the job runs, for example to enforce a CPU-time limit over all the
// job's processes, but not once finish has been called: the cgroup is then
// gone, and usage returns an error.
func (j *jobCgroup) usage() (cgroupUsage, error) {
	var u cgroupUsage
	read := func(file string) (map[string]int64, error) {
		m, err := readKeyed(filepath.Join(j.path, file))
		if err != nil {
			return nil, fmt.Errorf("read %s of job cgroup %s: %w", file, j.path, err)
		}
		return m, nil
	}
	if j.memory {
		ev, err := read("memory.events")
		if err != nil {
			return u, err
		}
		if n, ok := ev["oom_kill"]; ok {
			u.OOMKilled = n > 0
		} else { // before 4.13
			u.OOMKilled = ev["oom"] > 0
		}
		peak, err := readInt(filepath.Join(j.path, "memory.peak"))
		if errors.Is(err, fs.ErrNotExist) { // before 5.19
			cur, err := readInt(filepath.Join(j.path, "memory.current"))
			if err != nil {
				return u, fmt.Errorf("read memory.current of job cgroup %s: %w", j.path, err)
			}
			j.mu.Lock()
			j.peak = max(j.peak, cur)
			peak = j.peak
			j.mu.Unlock()
		} else if err != nil {
			return u, fmt.Errorf("read memory.peak of job cgroup %s: %w", j.path, err)
		}
		u.MemoryPeak = peak
	}
	if j.pids {
		ev, err := read("pids.events")
		if err != nil {
			return u, err
		}
		u.PidsMaxHit = ev["max"] > 0
	}
	st, err := read("cpu.stat")
	if err != nil {
		return u, err
	}
	u.CPU = time.Duration(st["usage_usec"]) * time.Microsecond
	return u, nil
}

// kill sends SIGKILL to every process of the job cgroup at once, through
// cgroup.kill, so that none can fork its way out. On kernels before 5.14,
// which have no cgroup.kill, it freezes the cgroup (where it can) and
// SIGKILLs each of its processes until none is left.
func (j *jobCgroup) kill() error {
	j.mu.Lock()
	finished := j.finished
	j.mu.Unlock()
	if finished {
		return nil
	}
	err := writeCgroupFile(filepath.Join(j.path, "cgroup.kill"), "1")
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(j.path, "cgroup.procs")); serr == nil {
			return j.killEach()
		}
	}
	if err != nil {
		return fmt.Errorf("kill the processes of job cgroup %s: %w", j.path, err)
	}
	return nil
}

// killEach kills the job cgroup's processes one by one, for kernels
// without cgroup.kill.
func (j *jobCgroup) killEach() error {
	freeze := filepath.Join(j.path, "cgroup.freeze") // 5.2 and later
	if writeCgroupFile(freeze, "1") == nil {
		// A frozen process still dies of SIGKILL, but cannot fork first.
		defer func() { _ = writeCgroupFile(freeze, "0") }()
	}
	deadline := time.Now().Add(cgroupWaitTimeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		pids, err := readPids(filepath.Join(j.path, "cgroup.procs"))
		if err != nil {
			return fmt.Errorf("list the processes of job cgroup %s: %w", j.path, err)
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("kill process %d of job cgroup %s: %w", pid, j.path, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill the processes of job cgroup %s: %d still there after %s", j.path, len(pids), cgroupWaitTimeout)
		}
		time.Sleep(pause) // SIGKILL is delivered, not waited for
	}
}

// finish ends the job cgroup once the handler has exited: it kills
// whatever the handler left running, waits until no process is left,
// reads the final usage, removes the cgroup and closes its fd. It returns
// the usage even with an error, as far as it could read it.
func (j *jobCgroup) finish() (cgroupUsage, error) {
	j.mu.Lock()
	if j.finished {
		j.mu.Unlock()
		return cgroupUsage{}, fmt.Errorf("finish job cgroup %s: already finished", j.path)
	}
	j.mu.Unlock()
	deadline := time.Now().Add(cgroupWaitTimeout)
	kerr := j.kill()
	werr := j.waitEmpty(deadline)
	u, uerr := j.usage()
	var rerr error
	if werr == nil {
		rerr = j.remove(deadline)
	}
	var cerr error
	j.mu.Lock()
	if j.dirfd >= 0 {
		if err := unix.Close(j.dirfd); err != nil {
			cerr = fmt.Errorf("close job cgroup %s: %w", j.path, err)
		}
	}
	j.dirfd = -1
	j.finished = true
	j.mu.Unlock()
	return u, errors.Join(kerr, werr, uerr, rerr, cerr)
}

// waitEmpty waits until cgroup.events says the job cgroup has no process
// left, or deadline passes.
func (j *jobCgroup) waitEmpty(deadline time.Time) error {
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 20*time.Millisecond) {
		ev, err := readKeyed(filepath.Join(j.path, "cgroup.events"))
		if err != nil {
			return fmt.Errorf("read cgroup.events of job cgroup %s: %w", j.path, err)
		}
		if ev["populated"] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job cgroup %s still has processes %s after they were killed", j.path, cgroupWaitTimeout)
		}
		time.Sleep(pause)
	}
}

// remove waits until the job cgroup is empty and removes it. The kernel
// may refuse for a moment after the last process has gone (EBUSY), so
// it tries until deadline.
func (j *jobCgroup) remove(deadline time.Time) error {
	if err := j.waitEmpty(deadline); err != nil {
		return err
	}
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 20*time.Millisecond) {
		err := unix.Rmdir(j.path)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove job cgroup %s: %w", j.path, err)
		}
		time.Sleep(pause)
	}
}

// writeCgroupFile writes s to a cgroup control file in one write, as the
// kernel wants it, and returns the kernel's error unchanged inside a
// *fs.PathError (EBUSY, ESRCH, ... mean something there).
func writeCgroupFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readFields reads a space-separated list such as cgroup.controllers.
func readFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// readPids reads a list of pids, one a line, such as cgroup.procs.
func readPids(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %q is not a pid", path, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// readInt reads a file holding one number, such as memory.current; "max"
// reads as -1.
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %q is not a number", path, s)
	}
	return n, nil
}

// readKeyed reads a flat keyed file such as memory.events, "key value" a
// line. Values that are not numbers are left out.
func readKeyed(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, nil
}

// fsName names a filesystem by its statfs magic number, for an error
// message.
func fsName(magic int64) string {
	switch magic {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.CGROUP_SUPER_MAGIC:
		return "cgroup v1"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.PROC_SUPER_MAGIC:
		return "proc"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	}
	return fmt.Sprintf("a filesystem with magic number %#x", magic)
}
