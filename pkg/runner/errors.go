package runner

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Errors returned by [Runner.Resolve], [Runner.Start] and [Runner.Run]. They
// are wrapped with the class and details; check them with [errors.Is].
var (
	// ErrInvalidClass reports a class name that is unsafe or illegal.
	ErrInvalidClass = errors.New("invalid class name")
	// ErrNoHandler reports that no handler exists for a class.
	ErrNoHandler = errors.New("no handler")
	// ErrAmbiguous reports several "<Class>.<ext>" candidates for a class.
	ErrAmbiguous = errors.New("ambiguous handler")
	// ErrNotExecutable reports a handler that exists but is not an
	// executable regular file (a directory, a file without execute bits, a
	// broken symlink, or a symlink escaping the handlers directory).
	ErrNotExecutable = errors.New("handler not executable")
)

// ExitError reports a handler that ran but did not succeed: it exited with
// a nonzero status or was killed by a signal.
type ExitError struct {
	Class    string
	Code     int            // exit status; -1 when killed by a signal
	Signal   syscall.Signal // 0 unless killed by a signal
	TimedOut bool           // killed because Config.Timeout expired
	Stopped  bool           // killed because Stop/Kill was called (or ctx cancelled)
	// Persistent handlers only: Reported is set when the handler ended the
	// job with {"done":"failed"}; Exited when the process exited (with
	// status Code, possibly 0) before it reported done for the job;
	// Protocol says how it broke the protocol.
	Reported bool
	Exited   bool
	Protocol string
	// Timeout is the Config.Timeout that expired when TimedOut is set.
	Timeout    time.Duration
	Duration   time.Duration
	StderrTail []string
	// Limit names the limit that killed the handler: LimitMemory,
	// LimitCPU, LimitOutput or LimitProcs; empty when none did.
	// LimitMax is that limit and LimitSeen what was seen: bytes for
	// memory (the peak) and output (written), nanoseconds for cpu
	// (used), processes for procs. A LimitSeen of -1 for output means
	// a file the handler wrote reached the limit (SIGXFSZ).
	Limit     string
	LimitMax  int64
	LimitSeen int64
	// LimitRefused is set when the handler was not killed but exited
	// on its own once its memory rlimit refused it more, its peak
	// already past the limit.
	LimitRefused bool
	// InForce are the limits that applied to the handler.
	InForce Limits
}

// Error implements error.
func (e *ExitError) Error() string {
	switch {
	case e.Limit != "":
		return e.limitError()
	case e.Protocol != "":
		return fmt.Sprintf("persistent handler %s broke the protocol: %s", e.Class, e.Protocol)
	case e.Reported:
		return fmt.Sprintf("handler %s reported failure", e.Class)
	case e.Exited:
		return fmt.Sprintf("persistent handler %s exited with status %d before reporting done for the job", e.Class, e.Code)
	case e.TimedOut:
		d := e.Timeout
		if d <= 0 {
			d = e.Duration.Round(time.Millisecond)
		}
		return fmt.Sprintf("handler %s timed out after %s", e.Class, d)
	case e.Signal != 0:
		return fmt.Sprintf("handler %s killed by signal %s", e.Class, signalName(e.Signal)) + e.inForce()
	default:
		return fmt.Sprintf("handler %s exited with status %d", e.Class, e.Code) + e.inForce()
	}
}

// limitError says which limit killed the handler.
func (e *ExitError) limitError() string {
	what := ""
	switch e.Limit {
	case LimitMemory:
		what = fmt.Sprintf("memory limit %s (peak %s)", SizeString(e.LimitMax), SizeString(e.LimitSeen))
	case LimitCPU:
		what = fmt.Sprintf("CPU time limit %s (used %.1fs)", time.Duration(e.LimitMax), time.Duration(e.LimitSeen).Seconds())
	case LimitOutput:
		if e.LimitSeen < 0 {
			what = fmt.Sprintf("output limit %s (a file it wrote reached it)", SizeString(e.LimitMax))
		} else {
			what = fmt.Sprintf("output limit %s (wrote more than %s to stdout and stderr)", SizeString(e.LimitMax), SizeString(e.LimitMax))
		}
	case LimitProcs:
		what = fmt.Sprintf("process limit %d (%d processes in its group)", e.LimitMax, e.LimitSeen)
	default:
		what = e.Limit + " limit"
	}
	switch {
	case e.LimitRefused && e.Signal != 0:
		return fmt.Sprintf("handler %s died of %s at its %s: an allocation past it was refused", e.Class, signalName(e.Signal), what)
	case e.LimitRefused:
		return fmt.Sprintf("handler %s exited with status %d at its %s: an allocation past it was refused", e.Class, e.Code, what)
	}
	return fmt.Sprintf("handler %s was killed: %s", e.Class, what)
}

// inForce is " (limits in force: ...)" when limits applied: a failure
// the kernel gave no signal for (an allocation refused under
// RLIMIT_DATA) may still be theirs. A handler resqued stopped (a
// cancel, a shutdown) ended for that reason, not its limits.
func (e *ExitError) inForce() string {
	if e.InForce.IsZero() || e.Stopped {
		return ""
	}
	return " (limits in force: " + e.InForce.String() + ")"
}

// signalName returns "SIGKILL"-style names for common signals and
// "signal N" for the rest.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGILL:
		return "SIGILL"
	case syscall.SIGTRAP:
		return "SIGTRAP"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGBUS:
		return "SIGBUS"
	case syscall.SIGFPE:
		return "SIGFPE"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	case syscall.SIGALRM:
		return "SIGALRM"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGXCPU:
		return "SIGXCPU"
	case syscall.SIGXFSZ:
		return "SIGXFSZ"
	case syscall.SIGSYS:
		return "SIGSYS"
	default:
		return fmt.Sprintf("signal %d", int(sig))
	}
}
