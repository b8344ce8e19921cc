//go:build !linux

package runner

import (
	"errors"
	"fmt"
)

// errNoCgroups is what the cgroup functions return where there are no
// cgroups.
var errNoCgroups = errors.New("cgroups are Linux only")

// cgroupRoot would be the --cgroup directory; there are no cgroups here.
type cgroupRoot struct{}

// jobCgroup would be one job's cgroup; there are no cgroups here.
type jobCgroup struct{}

// openCgroup refuses: cgroups are Linux only.
func openCgroup(dir string) (*cgroupRoot, error) {
	return nil, fmt.Errorf("--cgroup %s: cgroups are Linux only; leave --cgroup unset on this system", dir)
}

// newJob refuses: cgroups are Linux only.
func (c *cgroupRoot) newJob(l Limits) (*jobCgroup, error) { return nil, errNoCgroups }

// sweep has nothing to do.
func (c *cgroupRoot) sweep() {}

// fd is -1: there is no cgroup directory.
func (j *jobCgroup) fd() int { return -1 }

// usage refuses: cgroups are Linux only.
func (j *jobCgroup) usage() (cgroupUsage, error) { return cgroupUsage{}, errNoCgroups }

// kill refuses: cgroups are Linux only.
func (j *jobCgroup) kill() error { return errNoCgroups }

// finish refuses: cgroups are Linux only.
func (j *jobCgroup) finish() (cgroupUsage, error) { return cgroupUsage{}, errNoCgroups }
