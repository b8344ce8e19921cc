package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// firstLineProblem looks at the start of the handler file at path and
// says why the kernel will not run it, or returns "" when it looks
// runnable: a binary (ELF), or a "#!" line naming an interpreter that
// exists. These are the files execve refuses with a misleading "no such
// file or directory" (a "#!/bin/sh\r" line from CRLF line endings, a
// missing interpreter) or "exec format error" (no "#!" line).
func firstLineProblem(class, path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return ""
	}
	buf = buf[:n]
	switch {
	case bytes.HasPrefix(buf, []byte("\x7fELF")):
		return ""
	case !bytes.HasPrefix(buf, []byte("#!")):
		return fmt.Sprintf("handler %s has no #! line and is not a binary; start it with an interpreter line such as #!/bin/sh", class)
	}
	line, _, complete := bytes.Cut(buf, []byte("\n"))
	if bytes.HasSuffix(line, []byte("\r")) {
		return fmt.Sprintf("handler %s's first line ends in a carriage return (CRLF line endings); convert it with dos2unix", class)
	}
	fields := bytes.Fields(line[2:])
	if len(fields) == 0 {
		return fmt.Sprintf("handler %s's #! line names no interpreter", class)
	}
	// Only an absolute interpreter path in a line read whole can be
	// checked from here.
	if interp := string(fields[0]); complete && filepath.IsAbs(interp) && !exists(interp) {
		return fmt.Sprintf("handler %s's #! line names %s, which does not exist", class, interp)
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// explainStart adds what is wrong with the handler file to an exec
// error that would otherwise blame a missing file or a format.
func explainStart(class, path string, err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOEXEC) {
		if _, serr := os.Stat(path); serr == nil {
			if why := firstLineProblem(class, path); why != "" {
				return fmt.Errorf("start handler %s: %s (%w)", path, why, err)
			}
		}
	}
	return fmt.Errorf("start handler %s: %w", path, err)
}
