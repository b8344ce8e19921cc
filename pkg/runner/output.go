package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
)

// minReadBuffer is the smallest bufio buffer used for reading output.
const minReadBuffer = 4096

// splitLines reads r line by line and calls emit for each line without its
// trailing "\n" (or "\r\n"). Lines longer than maxLine bytes are passed in
// chunks of maxLine bytes; whole is false for such chunks. A final line
// without newline is emitted at EOF. The slice passed to emit is only valid
// during the call. splitLines returns nil at EOF and the read error
// otherwise. Memory use is bounded by maxLine plus the read buffer.
// readers are splitLines' read buffers, minReadBuffer each.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, minReadBuffer) }}

func splitLines(r io.Reader, maxLine int, emit func(line []byte, whole bool)) error {
	// Small buffers that grow with the lines: most handlers write little,
	// and a job's four streams would otherwise cost ~200 KB up front. The
	// readers are reused from job to job: half of what a job allocated.
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); readers.Put(br) }()
	var buf []byte
	split := false // part of the current line has been emitted already
	for {
		chunk, err := br.ReadSlice('\n')
		eol := len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
		if eol {
			chunk = chunk[:len(chunk)-1]
		}
		for len(chunk) > 0 {
			// Only flush a full buffer once more bytes of the same line
			// arrive, so a line of exactly maxLine bytes stays whole.
			if len(buf) == maxLine {
				emit(buf, false)
				buf, split = buf[:0], true
			}
			n := min(maxLine-len(buf), len(chunk))
			buf = append(buf, chunk[:n]...)
			chunk = chunk[n:]
		}
		if eol {
			emit(bytes.TrimSuffix(buf, []byte{'\r'}), !split)
			buf, split = buf[:0], false
		}
		switch err {
		case nil, bufio.ErrBufferFull:
			continue
		}
		if len(buf) > 0 {
			emit(buf, !split)
		}
		if err == io.EOF {
			return nil
		}
		return err
	}
}

// tailBuffer keeps the most recent lines within a byte budget, counting one
// newline per line. It is safe for concurrent use.
type tailBuffer struct {
	mu    sync.Mutex // a persistent process's tail is reset between jobs
	max   int
	size  int
	lines []string
}

// newTailBuffer returns a tail of max bytes, or nil (which keeps
// nothing) for a max of zero.
func newTailBuffer(max int) *tailBuffer {
	if max <= 0 {
		return nil
	}
	return &tailBuffer{max: max}
}

// add appends line, dropping the oldest lines to stay within budget. A line
// that does not fit on its own is cut to its last bytes (at a UTF-8
// boundary).
func (t *tailBuffer) add(line []byte) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(line)+1 > t.max {
		line = line[len(line)-(t.max-1):]
		for len(line) > 0 && !utf8.RuneStart(line[0]) {
			line = line[1:]
		}
	}
	cost := len(line) + 1
	for t.size+cost > t.max && len(t.lines) > 0 {
		t.size -= len(t.lines[0]) + 1
		t.lines[0] = ""
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, string(line))
	t.size += cost
}

// snapshot returns a copy of the kept lines, oldest first.
func (t *tailBuffer) snapshot() []string {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lines)
}

// reset forgets every line (a persistent process starting its next job).
func (t *tailBuffer) reset() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines, t.size = nil, 0
}

// logLine forwards one line of handler output to logger. See the package
// documentation for the JSON convention.
func logLine(logger hclog.Logger, stream string, line []byte, whole bool) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if whole {
		if level, msg, args, ok := parseJSONLine(line); ok {
			if enabled(logger, level) {
				logger.Log(level, msg, append([]any{"stream", stream}, args...)...)
			}
			return
		}
	}
	if logger.IsInfo() {
		logger.Info(string(line), "stream", stream)
	}
}

// parseJSONLine interprets line as a JSON object with a "level" field. It
// returns the level, the message and the remaining fields as sorted
// key/value pairs.
func parseJSONLine(line []byte) (level hclog.Level, msg string, args []any, ok bool) {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) < 2 || trimmed[0] != '{' || trimmed[len(trimmed)-1] != '}' {
		return 0, "", nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || dec.More() {
		return 0, "", nil, false
	}
	name, _ := obj["level"].(string)
	switch strings.ToLower(name) {
	case "trace":
		level = hclog.Trace
	case "debug":
		level = hclog.Debug
	case "info":
		level = hclog.Info
	case "warn", "warning":
		level = hclog.Warn
	case "error":
		level = hclog.Error
	default:
		return 0, "", nil, false
	}
	msg, msgKey := string(line), ""
	for _, k := range []string{"msg", "message"} {
		if m, isString := obj[k].(string); isString {
			msg, msgKey = m, k
			break
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if k != "level" && k != msgKey && k != "stream" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, k, obj[k])
	}
	return level, msg, args, true
}

// enabled reports whether logger emits messages at level.
func enabled(logger hclog.Logger, level hclog.Level) bool {
	switch level {
	case hclog.Trace:
		return logger.IsTrace()
	case hclog.Debug:
		return logger.IsDebug()
	case hclog.Info:
		return logger.IsInfo()
	case hclog.Warn:
		return logger.IsWarn()
	default:
		return logger.IsError()
	}
}
