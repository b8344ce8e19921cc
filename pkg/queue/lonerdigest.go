package queue

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// UniqueDigest is resque-loner's redis_key of a job of class with args
// (a JSON array): the MD5 (hex) that names its lock (UniqueLockKey).
// resque-loner (lib/resque-loner/unique_job.rb, redis_key) decodes the
// payload, replaces each top-level args element that is a hash with its
// key-sorted [key, value] pairs (Ruby's Hash#sort; nested hashes keep
// their order), and hashes Resque.encode({class:, args:}), which is
// Ruby's JSON.generate: compact, no HTML or "/" escaping, non-ASCII
// unescaped, floats as Ruby's Float#to_s writes them ("100.0",
// "1.0e+20"). This function re-creates that text byte for byte from the
// JSON it is given. Its error says why args cannot be digested (not a
// JSON array; a number too large for a Ruby float).
func UniqueDigest(class string, args json.RawMessage) (string, error) {
	text, err := lonerText(class, args)
	if err != nil {
		return "", err
	}
	sum := md5.Sum(text)
	return hex.EncodeToString(sum[:]), nil
}

// lonerText is what resque-loner hashes: {"class":...,"args":[...]} as
// Ruby writes it.
func lonerText(class string, args json.RawMessage) ([]byte, error) {
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("[]")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	v, err := rubyValue(dec)
	if err != nil {
		return nil, fmt.Errorf("digest args: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("digest args: more than one JSON value")
	}
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("digest args: not a JSON array")
	}
	for i, a := range list {
		if h, ok := a.(*rubyHash); ok {
			pairs := make([]any, len(h.keys))
			keys := append([]string(nil), h.keys...)
			sort.Strings(keys) // Ruby's String#<=>: bytewise, as Go's
			for k, key := range keys {
				pairs[k] = []any{key, h.vals[key]}
			}
			list[i] = pairs
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"class":`)
	writeRubyString(&b, class)
	b.WriteString(`,"args":`)
	if err := writeRuby(&b, list); err != nil {
		return nil, fmt.Errorf("digest args: %w", err)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// rubyHash is a JSON object as Ruby's JSON.parse makes it: keys in the
// order first seen; a repeated key keeps its first place and takes the
// last value.
type rubyHash struct {
	keys []string
	vals map[string]any
}

// rubyValue reads the next JSON value from dec: nil, bool, string,
// json.Number, []any or *rubyHash.
func rubyValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '[':
			list := []any{}
			for dec.More() {
				v, err := rubyValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		case '{':
			h := &rubyHash{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := rubyValue(dec)
				if err != nil {
					return nil, err
				}
				if _, seen := h.vals[k]; !seen {
					h.keys = append(h.keys, k)
				}
				h.vals[k] = v
			}
			_, err := dec.Token()
			return h, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil
	}
}

// writeRuby writes v as Ruby's JSON.generate does.
func writeRuby(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		writeRubyString(b, v)
	case json.Number:
		s, err := lonerNumber(string(v))
		if err != nil {
			return err
		}
		b.WriteString(s)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeRuby(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case *rubyHash:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeRubyString(b, k)
			b.WriteByte(':')
			if err := writeRuby(b, v.vals[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unexpected %T", v)
	}
	return nil
}

// writeRubyString writes s quoted as Ruby's JSON generator does: only
// '"', '\' and control characters are escaped (\b \f \n \r \t by name,
// the rest as \u00xx in lower case); everything else, "/", "<", U+2028
// and all non-ASCII included, is written as it is.
func writeRubyString(b *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// lonerNumber is JSON number n as Ruby reads and writes it back
// (rubyNumber: Integer#to_s at any size, Float#to_s); a number too large
// for a Float reads as Infinity, which Ruby's JSON refuses to write.
func lonerNumber(n string) (string, error) {
	if s := rubyNumber(n); s != "Infinity" && s != "-Infinity" {
		return s, nil
	}
	return "", fmt.Errorf("number %s is too large for a Ruby float, which resque-loner cannot encode", n)
}
