package runner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// ResultFD is the file descriptor on which a handler may report its
// result, progress and failure detail (announced as RESQUE_RESULT_FD).
const ResultFD = 3

// maxReportLine is the longest line read from the result descriptor;
// longer ones are ignored with a warning. Lines are parsed and dropped as
// they come, and only the last result and failure detail are kept, so
// memory stays bounded however much a handler writes (and a stream of
// progress lines never crowds out the final result).
const maxReportLine = 64 << 10

// Report is what a handler said on its result descriptor.
type Report struct {
	// Result is the last {"result": ...} value, as raw JSON.
	Result json.RawMessage
	// Failure is the last failure detail; it shapes the failure record
	// when the job fails, and is ignored when it succeeds.
	Failure *FailureDetail
}

// FailureDetail is {"exception": ..., "error": ..., "backtrace": [...]}.
type FailureDetail struct {
	Exception string
	Error     string
	Backtrace []string
}

// Progress is {"progress": 0.4, "message": "..."}.
type Progress struct {
	Progress float64 `json:"progress"`
	Message  string  `json:"message,omitempty"`
}

// reportReader collects the result descriptor's lines.
type reportReader struct {
	mu         sync.Mutex
	report     Report
	onProgress func(Progress)
	logger     hclog.Logger
}

func (rr *reportReader) get() Report {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.report
}

// read consumes r to EOF, line by line. (A persistent process's result
// fd is read by persistentProc.read instead.)
func (rr *reportReader) read(r io.Reader) error {
	long := false // inside an over-long line (its pieces are not whole): warn once
	return splitLines(r, maxReportLine, func(line []byte, whole bool) {
		if !whole {
			if !long {
				rr.logger.Warn("result fd: line over 64 KiB ignored")
			}
			long = true
			return
		}
		long = false
		rr.line(line)
	})
}

func (rr *reportReader) line(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		rr.logger.Warn("result fd: ignoring a line that is not a JSON object", "line", abbreviate(line))
		return
	}
	_, known := m["done"] // a persistent handler's end of job
	if raw, ok := m["progress"]; ok {
		known = true
		var p Progress
		if err := json.Unmarshal(raw, &p.Progress); err != nil {
			rr.logger.Warn("result fd: progress must be a number", "line", abbreviate(line))
		} else {
			_ = json.Unmarshal(m["message"], &p.Message)
			if rr.onProgress != nil {
				rr.onProgress(p)
			}
		}
	}
	if raw, ok := m["result"]; ok {
		known = true
		rr.mu.Lock()
		rr.report.Result = nil // {"result": null} clears it
		if string(raw) != "null" {
			rr.report.Result = append(json.RawMessage(nil), raw...)
		}
		rr.mu.Unlock()
	}
	_, hasExc := m["exception"]
	_, hasErr := m["error"]
	_, hasBT := m["backtrace"]
	if hasExc || hasErr || hasBT {
		known = true
		fd := &FailureDetail{Exception: text(m["exception"]), Error: text(m["error"])}
		var bt []json.RawMessage
		if hasBT {
			if err := json.Unmarshal(m["backtrace"], &bt); err != nil {
				bt = []json.RawMessage{m["backtrace"]}
			}
		}
		for _, b := range bt {
			fd.Backtrace = append(fd.Backtrace, text(b))
		}
		rr.mu.Lock()
		rr.report.Failure = fd
		rr.mu.Unlock()
	}
	if !known {
		rr.logger.Warn("result fd: ignoring a line with no progress, result or failure fields", "line", abbreviate(line))
	}
}

// text renders a JSON value as text: strings as themselves, anything
// else as its JSON.
func text(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func abbreviate(b []byte) string {
	if len(b) > 200 {
		return strconv.Quote(string(b[:200])) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}

func (rr *reportReader) loggerPtr() *hclog.Logger { l := rr.logger; return &l }
