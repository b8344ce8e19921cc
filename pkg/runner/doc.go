// Package runner turns a Resque job into a handler process and an exit
// result. It knows nothing about Redis: the worker hands it a [Job] and gets
// back a [Result] and, when the handler did not succeed, an [*ExitError].
//
// # Handlers directory
//
// A [Runner] is configured with a handlers directory. [New] stores it as an
// absolute path with all symlinks resolved; [Runner.Dir] returns that path.
// A job's class names an executable in that directory. Resolution happens on
// every call (there is no cache), so handlers added or removed while the
// daemon runs are picked up by the next job.
//
// # Class names
//
// Before the filesystem is touched, a class name is rejected with
// [ErrInvalidClass] when it
//
//   - is empty or longer than 255 bytes,
//   - is not valid UTF-8,
//   - contains a byte below 0x20 or the byte 0x7f (NUL, newline, ...),
//   - contains "/" or "\",
//   - has a "::"-separated segment that is empty or starts with "."
//     (so "..", ".hidden", "a::::b", "::A" and "A::" are all refused).
//
// # Class to path
//
// A Ruby-style name "A::B::C" maps to Dir/A/B/C; a plain name "Resize" maps to
// Dir/Resize. Then:
//
//  1. If Dir/A/B/C exists (as any kind of directory entry, including a
//     broken symlink), it is the handler. It must be an executable regular
//     file after symlink resolution, otherwise the error is
//     [ErrNotExecutable]. Resolution never falls through to an extension
//     when the exact name exists but is unusable.
//  2. Otherwise the entries of Dir/A/B whose names are "C." followed by at
//     least one more byte (for example "C.py", "C.sh", "C.tar.gz") are the
//     candidates. Exactly one candidate is the handler, subject to the same
//     checks as in step 1. Several candidates yield [ErrAmbiguous] (listing
//     them), whether or not they are executable. None yields [ErrNoHandler],
//     as does a missing intermediate directory.
//
// A handler is executable when, after symlink resolution, it is a regular
// file with at least one execute bit set (mode&0111 != 0). Symlinks are
// resolved with [path/filepath.EvalSymlinks]; the target must lie inside the
// (resolved) handlers directory unless [Config.FollowSymlinks] is set. This
// applies to symlinked intermediate directories too. A symlink that escapes
// the directory or is broken is reported as [ErrNotExecutable].
//
// [Runner.Resolve] returns the path inside the handlers directory (Dir joined
// with the matched entry name), not the symlink target, so a handler sees the
// name it was found under as argv[0].
//
// All resolution errors wrap one of the sentinel errors above together with
// the class and details; check them with [errors.Is].
//
// # Processes
//
// The handler is executed directly (no shell) with argv = [path] and the
// handlers directory as working directory. It is placed in a new process
// group (Setpgid) of which it is the leader, so the handler and everything
// it starts can be signalled together:
//
//   - [Process.Stop] sends SIGTERM to the group and, if the handler has not
//     exited after [Config.TermTimeout], SIGKILL to the group.
//   - [Process.Kill] sends SIGKILL to the group at once.
//   - Cancelling the context passed to [Runner.Start] or [Runner.Run] is the
//     same as Stop; so is the expiry of [Config.Timeout], which is reported
//     with [ExitError.TimedOut].
//   - When the handler exits on its own, the runner sends SIGKILL to its
//     process group anyway, so that stray grandchildren do not outlive the
//     job. Handlers that need background work beyond their own lifetime must
//     detach themselves (setsid); the runner does not wait for them. On Linux
//     the group is signalled before the exited handler is reaped, so the
//     group id cannot have been reused.
//
// A handler that exits with status 0 succeeds even if it was asked to stop.
//
// The job's args (raw JSON) are written verbatim to the handler's stdin,
// followed by EOF; empty args are sent as "[]". A handler need not read its
// stdin: a broken pipe on stdin is ignored.
//
// The environment is [Config.Env] (or [os.Environ]) with these variables set,
// replacing any inherited value:
//
//	RESQUE_CLASS          the job's class
//	RESQUE_QUEUE          the queue the job came from
//	RESQUE_JOB_ID         the payload id ("" when absent)
//	RESQUE_WORKER         the resque worker id
//	RESQUED_PROTOCOL      1
//	RESQUED_HANDLERS_DIR  the handlers directory
//	PWD                   the handlers directory (the working directory)
//
// # Output
//
// stdout and stderr are read line by line. Lines longer than
// [Config.MaxLine] bytes are split into chunks of MaxLine bytes, so memory
// stays bounded however much a handler writes and however long its lines
// are. Each line that is not blank is logged to the job's logger at Info with
// "stream" set to "stdout" or "stderr". A complete line that is a JSON object
// with a string "level" field of trace, debug, info, warn (or warning) or
// error is logged at that level instead, with the "msg" or "message" field as
// message (the raw line when neither is present) and the object's other
// fields as key/value pairs.
//
// The most recent stderr lines are kept, up to [Config.StderrTail] bytes
// counting one newline per line, and returned in [Result.StderrTail] and
// [ExitError.StderrTail]. A single line longer than that is cut to its last
// bytes.
//
// [Process.Wait] returns once the handler has exited and its output has been
// drained. If something outside the process group (for example a grandchild
// that called setsid) still holds the output pipes open TermTimeout after
// the handler exited, the runner closes its ends of the pipes and returns.
//
// # Limits
//
// [Limits] (Config.Limits for every job, Job.Limits for one) bound a
// handler's memory, CPU time, output and processes; the zero Limits costs
// nothing. With a memory, cpu or output limit the handler is started
// through a shim, this same binary re-run: an init function in this
// package sees RESQUED_RLIMIT_SHIM, sets RLIMIT_DATA, RLIMIT_CPU and
// RLIMIT_FSIZE, and execs the handler in place. With a memory, cpu or
// procs limit a goroutine samples the process group from /proc every
// 100 ms; the output limit is counted as the output is read. Whichever
// limit kills the handler is named in [ExitError.Limit], and the limits
// in force in [ExitError.InForce]. See docs/handlers.md, "Limits".
package runner
