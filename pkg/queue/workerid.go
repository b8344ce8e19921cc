package queue

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// WorkerID builds Resque's worker id host:pid:queues, the queues joined
// with commas as configured ("*" stays "*").
func WorkerID(host string, pid int, queues []string) string {
	return host + ":" + strconv.Itoa(pid) + ":" + strings.Join(queues, ",")
}

// ParseWorkerID splits an id on its first two colons, as Resque does.
func ParseWorkerID(id string) (host string, pid int, queues []string, err error) {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return "", 0, nil, fmt.Errorf("parse worker id %q: want host:pid:queues", id)
	}
	pid, err = strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, nil, fmt.Errorf("parse worker id %q: bad pid: %w", id, err)
	}
	return parts[0], pid, strings.Split(parts[2], ","), nil
}

// Hostname is os.Hostname, falling back to "localhost".
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
