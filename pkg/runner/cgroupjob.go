package runner

// cgroupJob is a job cgroup as the limitGroup spawn and supervise use.
type cgroupJob struct{ j *jobCgroup }

func (g cgroupJob) fd() int     { return g.j.fd() }
func (g cgroupJob) kill() error { return g.j.kill() }
func (g cgroupJob) finish() (groupUsage, error) {
	u, err := g.j.finish()
	return groupUsage(u), err
}

// useCgroup opens dir, the delegated cgroup v2 directory of
// Config.Cgroup, removes job cgroups that dead workers left there, and
// has every job born in a cgroup of its own under it. Errors say what
// is wrong with dir in the operator's words (openCgroup).
func (r *Runner) useCgroup(dir string) error {
	root, err := openCgroup(dir)
	if err != nil {
		return err
	}
	root.sweep()
	r.groups = func(l Limits) (limitGroup, error) {
		j, err := root.newJob(l)
		if err != nil {
			return nil, err
		}
		return cgroupJob{j}, nil
	}
	return nil
}
