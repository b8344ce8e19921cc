package runner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resqued/resqued/internal/testskip"
	"golang.org/x/sys/unix"
)

// The cgroup tests run on the first cgroup v2 mount they can write to (or
// below $RESQUED_TEST_CGROUP, a cgroup delegated to the tests). Each makes
// its own directory there, resqued-test-<pid>-<n>, and takes it down again.
// What needs the memory and pids controllers runs only where a cgroup v2
// offers them; elsewhere it says which file listed what.

// testCgroupSeq numbers the test cgroup directories of this process.
var testCgroupSeq atomic.Int64

// cgroup2Mounts returns the mount points of the cgroup2 filesystems.
func cgroup2Mounts(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	var mounts []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			mounts = append(mounts, f[4])
		}
	}
	return mounts
}

// testCgroupParent makes a fresh cgroup v2 directory for one test, whose
// children can have the controllers need, and removes it, killing what
// runs in it, when the test ends. Where there is none to be had, it returns
// "" and why, naming the files it read and what they listed.
func testCgroupParent(tb testing.TB, need ...string) (dir, why string) {
	tb.Helper()
	var bases, whys []string
	if d := os.Getenv("RESQUED_TEST_CGROUP"); d != "" {
		bases = append(bases, d)
	}
	bases = append(bases, cgroup2Mounts(tb)...)
	if len(bases) == 0 {
		return "", "no cgroup2 filesystem is mounted (/proc/self/mountinfo lists none) and RESQUED_TEST_CGROUP is not set"
	}
bases:
	for _, base := range bases {
		if err := unix.Access(filepath.Join(base, "cgroup.subtree_control"), unix.W_OK); err != nil {
			whys = append(whys, fmt.Sprintf("%s: not writable by uid %d", base, os.Geteuid()))
			continue
		}
		controllers, _ := readFields(filepath.Join(base, "cgroup.controllers"))
		subtree, _ := readFields(filepath.Join(base, "cgroup.subtree_control"))
		var off []string
		for _, name := range need {
			if slices.Contains(subtree, name) {
				continue
			}
			if !slices.Contains(controllers, name) {
				whys = append(whys, fmt.Sprintf("%s/cgroup.controllers lists %q, no %s", base, strings.Join(controllers, " "), name))
				continue bases
			}
			off = append(off, name)
		}
		if len(off) > 0 {
			// Only the root of a hierarchy may enable controllers while
			// it has processes; the root has no cgroup.type.
			if _, err := os.Stat(filepath.Join(base, "cgroup.type")); err == nil {
				whys = append(whys, fmt.Sprintf("%s/cgroup.subtree_control does not enable %s, and that cgroup is not the root, so it cannot be enabled without moving its processes", base, strings.Join(off, " ")))
				continue
			}
			tb.Logf("enabling %s in %s/cgroup.subtree_control (the root of its hierarchy) for the test", strings.Join(off, " "), base)
			control := filepath.Join(base, "cgroup.subtree_control")
			if err := writeCgroupFile(control, "+"+strings.Join(off, " +")); err != nil {
				whys = append(whys, fmt.Sprintf("%s: enable %s: %v", control, strings.Join(off, " "), err))
				continue
			}
			// Runs after the test cgroup is gone (cleanups run last first).
			tb.Cleanup(func() {
				if err := writeCgroupFile(control, "-"+strings.Join(off, " -")); err != nil {
					tb.Logf("%s: disable %s again: %v (another cgroup uses it; left enabled)", control, strings.Join(off, " "), err)
				}
			})
		}
		dir := filepath.Join(base, fmt.Sprintf("resqued-test-%d-%d", os.Getpid(), testCgroupSeq.Add(1)))
		if err := os.Mkdir(dir, 0o755); err != nil {
			whys = append(whys, fmt.Sprintf("%s: %v", base, err))
			continue
		}
		tb.Cleanup(func() { removeCgroupTree(tb, dir) })
		return dir, ""
	}
	return "", strings.Join(whys, "; ")
}

// removeCgroupTree kills every process below dir and removes dir and all
// the cgroups below it, deepest first.
func removeCgroupTree(tb testing.TB, dir string) {
	tb.Helper()
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for _, d := range slices.Backward(dirs) {
		j := &jobCgroup{path: d, dirfd: -1}
		if err := j.kill(); err != nil {
			tb.Errorf("clean up: %v", err)
		}
		if err := j.remove(time.Now().Add(cgroupWaitTimeout)); err != nil {
			tb.Errorf("clean up: %v", err)
		}
	}
}

// needCgroup returns a test cgroup directory with the controllers need, or
// skips the test saying why there is none.
func needCgroup(t *testing.T, need ...string) string {
	t.Helper()
	dir, why := testCgroupParent(t, need...)
	if dir == "" {
		what := "a writable cgroup v2"
		if len(need) > 0 {
			what += " with " + strings.Join(need, " and ")
		}
		testskip.Skipf(t, "needs %s, and there is none here: %s", what, why)
	}
	return dir
}

// startInCgroup starts the shell script script in the job cgroup j, in its
// own process group, and returns the started command.
func startInCgroup(t *testing.T, fd int, script string, args ...string) (cmd *exec.Cmd, stderrFile string) {
	t.Helper()
	cmd = exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	// A file, not a pipe: processes left running must not hold Wait up.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in the cgroup: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, stderr.Name()
}

// readPidFile waits until the file holds a pid and returns it.
func readPidFile(t *testing.T, file string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		if s := strings.TrimSpace(string(b)); strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("pid file %s: %q", file, b)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file %s not written within 10s", file)
		}
	}
}

// procStat returns the state and the session id of a process, from
// /proc/<pid>/stat; ok is false once it has gone.
func procStat(pid int) (state byte, sid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp session ...; comm may hold anything.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	sid, _ = strconv.Atoi(f[3])
	return f[0][0], sid, true
}

// waitDead waits until the process pid has exited (gone, or a zombie no
// one has reaped yet).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if state, _, ok := procStat(pid); !ok || state == 'Z' || state == 'X' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive 10s after the cgroup was killed", pid)
		}
	}
}

// checkInCgroup checks that the kernel has process pid in the cgroup dir.
func checkInCgroup(t *testing.T, pid int, dir string) {
	t.Helper()
	pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, pid) {
		t.Errorf("%s/cgroup.procs = %v, want it to hold %d", dir, pids, pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := "/" + filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
	var v2 string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			v2 = rest
		}
	}
	if !strings.HasSuffix(v2, want) {
		t.Errorf("/proc/%d/cgroup has 0::%s, want it to end in %s", pid, v2, want)
	}
}

// checkRemoved checks that finish removed the job cgroup and closed its fd.
func checkRemoved(t *testing.T, j *jobCgroup) {
	t.Helper()
	if _, err := os.Stat(j.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after finish, stat %s: %v, want it gone", j.path, err)
	}
	if got := j.fd(); got != -1 {
		t.Errorf("after finish, fd() = %d, want -1", got)
	}
}

// A job cgroup on any cgroup v2: the handler is born in it, so is what it
// forks, even into a session of its own; kill reaches all of them, and
// finish removes the cgroup.
func TestJobCgroup_Kill(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(*jobCgroup) error
	}{
		{"CgroupKill", (*jobCgroup).kill},
		{"EachProcess", (*jobCgroup).killEach}, // kernels before 5.14
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := needCgroup(t)
			c, err := openCgroupNeeding(dir)
			if err != nil {
				t.Fatal(err)
			}
			j, err := c.newJob(Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := filepath.Base(j.path), fmt.Sprintf("job-%d-1", os.Getpid()); got != want {
				t.Errorf("job cgroup name = %s, want %s", got, want)
			}
			pidFile := filepath.Join(t.TempDir(), "grandchild")
			cmd, _ := startInCgroup(t, j.fd(),
				`setsid /bin/sh -c 'echo $$ > "$1"; exec sleep 1000' sh "$1" & exec sleep 1000`, pidFile)
			grandchild := readPidFile(t, pidFile)
			checkInCgroup(t, cmd.Process.Pid, j.path)
			checkInCgroup(t, grandchild, j.path)
			_, childSID, _ := procStat(cmd.Process.Pid)
			if _, sid, _ := procStat(grandchild); sid != grandchild || sid == childSID {
				t.Errorf("grandchild %d is in session %d (the child's: %d), want a session of its own", grandchild, sid, childSID)
			}
			if ev, err := readKeyed(filepath.Join(j.path, "cgroup.events")); err != nil || ev["populated"] != 1 {
				t.Errorf("cgroup.events while running: %v, %v; want populated 1", ev, err)
			}
			if _, err := j.usage(); err != nil {
				t.Errorf("usage while running: %v", err)
			}

			if err := tc.kill(j); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Errorf("child: %v, want killed by SIGKILL", err)
			}
			waitDead(t, grandchild)
			if _, err := j.finish(); err != nil {
				t.Fatal(err)
			}
			checkRemoved(t, j)
			if err := j.kill(); err != nil {
				t.Errorf("kill after finish: %v, want nothing to do", err)
			}
			if _, err := j.finish(); err == nil {
				t.Error("a second finish: no error")
			}
		})
	}
}

// finish kills what the handler left running and reports the CPU time of
// all the job's processes, those that exited included.
func TestJobCgroup_Finish(t *testing.T) {
	dir := needCgroup(t)
	c, err := openCgroupNeeding(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.newJob(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "leftover")
	cmd, _ := startInCgroup(t, j.fd(),
		`i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; setsid sleep 1000 & echo $! > "$1"`, pidFile)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	leftover := readPidFile(t, pidFile)
	checkInCgroup(t, leftover, j.path)
	u, err := j.finish()
	if err != nil {
		t.Fatal(err)
	}
	waitDead(t, leftover)
	if u.CPU <= 0 {
		t.Errorf("CPU = %v, want more than 0 after a busy loop", u.CPU)
	}
	if u.OOMKilled || u.PidsMaxHit {
		t.Errorf("usage = %+v, want no OOM kill and no pids.max hit", u)
	}
	checkRemoved(t, j)
}

// Without the memory or pids controller, a limit cannot be set.
func TestCgroupRoot_NewJobWithoutController(t *testing.T) {
	dir := needCgroup(t)
	c, err := openCgroupNeeding(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.enabled["memory"] || c.enabled["pids"] {
		testskip.Skipf(t, "%s enables memory or pids (cgroup.subtree_control), so there is no missing controller to test", dir)
	}
	for _, l := range []Limits{{Memory: 1 << 20}, {Procs: 3}} {
		if j, err := c.newJob(l); err == nil || !strings.Contains(err.Error(), "controller is not enabled") {
			t.Errorf("newJob(%+v) = %v, %v; want a missing controller named", l, j, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("a refused newJob left %s behind", e.Name())
		}
	}
}

// sweep removes the job cgroups of processes that are gone, killing what
// still runs there, and leaves every other cgroup alone.
func TestCgroupRoot_Sweep(t *testing.T) {
	dir := needCgroup(t)
	c, err := openCgroupNeeding(dir)
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := gone.Process.Pid
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	emptyDead := mk(fmt.Sprintf("job-%d-1", dead))
	busyDead := mk(fmt.Sprintf("job-%d-2", dead))
	keep := []string{
		mk(fmt.Sprintf("job-%d-7", os.Getpid())), // this process's
		mk("job-1-1"),                            // pid 1 runs
		mk("resqued"),
		mk(fmt.Sprintf("job-%d", dead)),
	}
	fd, err := unix.Open(busyDead, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	orphan, _ := startInCgroup(t, fd, "exec sleep 1000")
	_ = unix.Close(fd)

	c.sweep()
	if err := orphan.Wait(); err == nil {
		t.Error("the process left in a dead worker's job cgroup exited by itself, want it killed")
	}
	for _, p := range []string{emptyDead, busyDead} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after sweep, stat %s: %v, want it gone", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("sweep removed %s, want it kept: %v", p, err)
		}
	}
}

// When the --cgroup directory holds processes (systemd starts the daemon
// in it), they are moved into dir/resqued so that controllers can be
// enabled for the job cgroups.
func TestOpenCgroup_MovesProcesses(t *testing.T) {
	var dir, ctrl string
	var whys []string
	for _, name := range []string{"pids", "memory", "hugetlb"} {
		if d, why := testCgroupParent(t, name); d != "" {
			dir, ctrl = d, name
			break
		} else {
			whys = append(whys, why)
		}
	}
	if dir == "" {
		testskip.Skipf(t, "needs a writable cgroup v2 with a controller to enable, and there is none here: %s", strings.Join(whys, "; "))
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	resident, _ := startInCgroup(t, fd, "exec sleep 1000")
	_ = unix.Close(fd)
	if err := writeCgroupFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+ctrl); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("enable %s with a process in %s: %v, want EBUSY (no internal processes)", ctrl, dir, err)
	}

	c, err := openCgroupNeeding(dir, ctrl)
	if err != nil {
		t.Fatal(err)
	}
	if !c.enabled[ctrl] {
		t.Errorf("enabled = %v, want %s", c.enabled, ctrl)
	}
	checkInCgroup(t, resident.Process.Pid, filepath.Join(dir, cgroupLeaf))
	if pids, err := readPids(filepath.Join(dir, "cgroup.procs")); err != nil || len(pids) != 0 {
		t.Errorf("%s/cgroup.procs = %v, %v; want it empty", dir, pids, err)
	}
	j, err := c.newJob(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(j.path, ctrl+".max")); ctrl != "hugetlb" && err != nil {
		t.Errorf("the job cgroup has no %s.max: %v", ctrl, err)
	}
	if _, err := j.finish(); err != nil {
		t.Fatal(err)
	}
	// A second worker process opening the same directory finds it set up.
	if _, err := openCgroupNeeding(dir, ctrl); err != nil {
		t.Errorf("open it again: %v", err)
	}
}

// Bad --cgroup values are refused with what is wrong and what to do.
func TestOpenCgroup_Refuses(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(tmp, &st); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ dir, want string }{
		{filepath.Join(tmp, "missing"), "no such directory; on a systemd host use a unit with Delegate=yes (docs/operations.md)"},
		{file, "not a directory"},
		{tmp, fmt.Sprintf("is not a cgroup v2 directory (it is on %s)", fsName(int64(st.Type)))},
	}
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		cases = append(cases, struct{ dir, want string }{"/sys/fs/cgroup", "is not a cgroup v2 directory (it is on tmpfs)"})
	} else {
		t.Logf("/sys/fs/cgroup is not a tmpfs here (hybrid or v1 layout), so that case is not tried")
	}
	if err := unix.Statfs("/sys/fs/cgroup/memory", &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
		cases = append(cases, struct{ dir, want string }{"/sys/fs/cgroup/memory", "is not a cgroup v2 directory (it is on cgroup v1)"})
	} else {
		t.Logf("/sys/fs/cgroup/memory is not a cgroup v1 mount here, so that case is not tried")
	}
	for _, m := range cgroup2Mounts(t) {
		controllers, err := readFields(filepath.Join(m, "cgroup.controllers"))
		if err != nil || slices.Contains(controllers, "memory") {
			continue
		}
		listed := strings.Join(controllers, " ")
		if listed == "" {
			listed = "nothing"
		}
		cases = append(cases, struct{ dir, want string }{m,
			"no memory controller there (cgroup.controllers lists: " + listed + "); on a systemd host use a unit with Delegate=yes (docs/operations.md)"})
	}
	for _, tc := range cases {
		c, err := openCgroup(tc.dir)
		if err == nil {
			t.Errorf("openCgroup(%s) = %+v, want an error", tc.dir, c)
			continue
		}
		if want := "--cgroup " + tc.dir + ": " + tc.want; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("openCgroup(%s):\n got %s\nwant %s...", tc.dir, err, want)
		}
	}
}

// With the memory controller, memory.max holds for the handler and all it
// starts: past it the kernel's OOM killer kills the job, and finish says so.
func TestJobCgroup_Memory(t *testing.T) {
	dir := needCgroup(t, "memory", "pids")
	c, err := openCgroup(dir)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 16 << 20
	j, err := c.newJob(Limits{Memory: limit})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"memory.max": strconv.Itoa(limit), "memory.swap.max": "0", "pids.max": "max"} {
		b, err := os.ReadFile(filepath.Join(j.path, file))
		if errors.Is(err, fs.ErrNotExist) && file == "memory.swap.max" {
			t.Logf("%s/%s is missing: this kernel does not account swap", j.path, file)
			continue
		}
		if got := strings.TrimSpace(string(b)); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
	}
	// The shell holds 64 MiB of "a" in a variable, four times the limit.
	cmd, _ := startInCgroup(t, j.fd(), `x=$(head -c 67108864 /dev/zero | tr '\0' a); echo survived`)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("handler: %v, want killed by SIGKILL", err)
	}
	u, err := j.finish()
	if err != nil {
		t.Fatal(err)
	}
	if !u.OOMKilled {
		t.Errorf("usage = %+v, want OOMKilled", u)
	}
	// memory.peak stops a few pages short of memory.max: the charge that
	// would cross it is refused, not counted.
	if u.MemoryPeak < limit*9/10 || u.MemoryPeak > limit {
		t.Errorf("MemoryPeak = %d, want about the limit, %d", u.MemoryPeak, limit)
	}
	checkRemoved(t, j)
}

// With the pids controller, pids.max holds: a handler forking past it sees
// fork fail, and finish says the limit was hit.
func TestJobCgroup_Procs(t *testing.T) {
	dir := needCgroup(t, "memory", "pids")
	c, err := openCgroup(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.newJob(Limits{Procs: 4})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(j.path, "pids.max")); err != nil || strings.TrimSpace(string(b)) != "4" {
		t.Errorf("pids.max = %q, %v; want 4", b, err)
	}
	cmd, stderrFile := startInCgroup(t, j.fd(), `for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; echo all forked >&2`)
	err = cmd.Wait()
	stderr, _ := os.ReadFile(stderrFile)
	if err == nil || bytes.Contains(stderr, []byte("all forked")) {
		t.Errorf("handler: %v, stderr %q; want a failed fork", err, stderr)
	}
	u, err := j.finish()
	if err != nil {
		t.Fatal(err)
	}
	if !u.PidsMaxHit {
		t.Errorf("usage = %+v, want PidsMaxHit", u)
	}
	checkRemoved(t, j)
}

// A cgroup the daemon's user may not write is refused as not delegated.
// As root, the check runs in a copy of the test binary started as nobody.
func TestOpenCgroup_PermissionDenied(t *testing.T) {
	const want = "permission denied: the daemon needs the cgroup delegated to its user"
	if os.Geteuid() != 0 {
		for _, m := range cgroup2Mounts(t) {
			if unix.Access(filepath.Join(m, "cgroup.subtree_control"), unix.W_OK) == nil {
				continue
			}
			if _, err := openCgroup(m); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("openCgroup(%s) as uid %d: %v, want %q", m, os.Geteuid(), err, want)
			}
			return
		}
		testskip.Skipf(t, "uid %d can write every cgroup2 mount here, so none is refused", os.Geteuid())
	}
	dir := needCgroup(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for d := tmp; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil { // t.TempDir's are 0700
			t.Fatal(err)
		}
	}
	bin := filepath.Join(tmp, "runner.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenCgroup_PermissionDeniedChild$", "-test.v")
	cmd.Env = append(os.Environ(), "RESQUED_TEST_CGROUP_CHILD="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child as nobody: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--cgroup "+dir+": "+want)) {
		t.Errorf("the child as nobody said:\n%s\nwant %q", out, want)
	}
}

// TestOpenCgroup_PermissionDeniedChild is TestOpenCgroup_PermissionDenied's
// unprivileged child; it does nothing run by itself.
func TestOpenCgroup_PermissionDeniedChild(t *testing.T) {
	dir := os.Getenv("RESQUED_TEST_CGROUP_CHILD")
	if dir == "" {
		t.Skip("runs only as the child of TestOpenCgroup_PermissionDenied")
	}
	_, err := openCgroup(dir)
	if err == nil {
		t.Fatalf("openCgroup(%s) as uid %d: no error", dir, os.Geteuid())
	}
	fmt.Println(err)
}
