package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// DelayedItem is resque-scheduler's delayed item for payload, to be
// pushed onto queue q when due: the payload's own bytes, its fields in
// their order and unknown ones kept, with "queue" set to q as the last
// field (an earlier "queue" field is dropped). For {"class","args"} it is
// exactly what Ruby's job_to_hash_with_queue encodes
// ({class:, args:, queue:}), and the move-due script cuts the "queue"
// field off again byte for byte.
func DelayedItem(q string, payload []byte) ([]byte, error) {
	return editItem(payload, nil, q)
}

// RetryItem is the delayed-set item for the next attempt of job j: its
// DelayedItem with "attempt" set to attempt (in place when the payload
// has one, else added before "queue"). A token Restore found (j.ID, not
// in the payload) is put back as "id".
func RetryItem(j *Job, attempt int) ([]byte, error) {
	edits := []fieldEdit{{key: "attempt", value: []byte(strconv.Itoa(attempt))}}
	if j.ID != "" {
		id, _ := marshal(j.ID)
		edits = append([]fieldEdit{{key: "id", value: id, keep: true}}, edits...)
	}
	item, err := editItem(j.Payload, edits, j.Queue)
	if err != nil {
		return nil, fmt.Errorf("retry item: %w", err)
	}
	return item, nil
}

// fieldEdit sets one top-level field of a JSON object: every occurrence's
// value is replaced in place, or, with keep, left as it is; a field the
// object lacks is added at its end.
type fieldEdit struct {
	key   string
	value []byte
	keep  bool
}

// member is one top-level field of a JSON object, as offsets into it:
// the key's opening quote, the value's first byte and the byte after it.
type member struct {
	key                  string
	start, valStart, end int
}

// errNotObject is what editItem says of a payload that is not an object.
var errNotObject = errors.New("payload is not a JSON object")

// editItem applies edits to the JSON object payload, then drops its
// "queue" fields and adds "queue":q last. Only the edited bytes change:
// the rest (field order, spacing inside the object, numbers, escapes) is
// copied, never decoded and encoded again.
func editItem(payload []byte, edits []fieldEdit, q string) ([]byte, error) {
	obj := bytes.TrimSpace(payload)
	ms, err := members(obj)
	if err != nil {
		return nil, err
	}
	qv, err := marshal(q)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(obj) + len(qv) + 32)
	out.WriteByte('{')
	wrote := false
	var tail []fieldEdit
	present := map[string]bool{}
	for _, m := range ms {
		present[m.key] = true
	}
	for _, e := range edits {
		if !present[e.key] {
			tail = append(tail, e)
		}
	}
	for i, m := range ms {
		if m.key == "queue" {
			continue
		}
		switch {
		case i == 0:
			out.Write(obj[1:m.start]) // spacing after {
		case !wrote:
		case ms[i-1].key != "queue":
			out.Write(obj[ms[i-1].end:m.start]) // the comma and spacing before m
		default:
			out.WriteByte(',')
		}
		value := obj[m.valStart:m.end]
		for _, e := range edits {
			if e.key == m.key && !e.keep {
				value = e.value
			}
		}
		out.Write(obj[m.start:m.valStart])
		out.Write(value)
		wrote = true
	}
	add := func(key string, value []byte) {
		if wrote {
			out.WriteByte(',')
		}
		kb, _ := marshal(key)
		out.Write(kb)
		out.WriteByte(':')
		out.Write(value)
		wrote = true
	}
	for _, e := range tail {
		add(e.key, e.value)
	}
	add("queue", qv)
	out.WriteByte('}')
	return out.Bytes(), nil
}

// members lists the top-level fields of the JSON object obj (no
// surrounding space) in their order.
func members(obj []byte) ([]member, error) {
	if len(obj) < 2 || obj[0] != '{' || !json.Valid(obj) {
		return nil, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // {
		return nil, errNotObject
	}
	var ms []member
	prev := int(dec.InputOffset())
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return nil, errNotObject
		}
		start := prev
		for start < len(obj) && obj[start] != '"' {
			start++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errNotObject
		}
		end := int(dec.InputOffset())
		valStart := end - len(raw)
		if valStart <= start || !bytes.Equal(obj[valStart:end], raw) {
			return nil, errNotObject
		}
		ms = append(ms, member{key: key, start: start, valStart: valStart, end: end})
		prev = end
	}
	return ms, nil
}
