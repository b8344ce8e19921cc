// Package jsonerr turns encoding/json's errors into sentences for the
// people who wrote the JSON: it names the thing that was read, says where
// it went wrong (a byte offset) and what was found or expected, without
// Go's type names or scanner states. Every message resqued shows about
// JSON a user gave it (a payload, --args, an enqueue --stdin line) comes
// from Explain.
package jsonerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Explain says why data, which json.Unmarshal or a json.Decoder refused
// with err, is not what was wanted. what names the text ("payload",
// "--args"); want says what the whole value must be ("an object with
// \"class\" and \"args\"") and is used when the value has the wrong type
// and err does not say.
func Explain(what, want string, data []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case len(strings.TrimSpace(string(data))) == 0 || errors.Is(err, io.EOF):
		return what + " is empty"
	case errors.As(err, &se):
		return what + " is not valid JSON: " + syntax(data, se)
	case errors.As(err, &te):
		kind := Kind(te.Value)
		if te.Field == "" {
			if want == "" {
				want = wantOf(te.Type)
			}
			return fmt.Sprintf("%s is %s, not %s", what, kind, want)
		}
		return fmt.Sprintf("%s: %q is %s, not %s", what, te.Field, kind, wantOf(te.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return what + " has an unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return what + " is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

// Kind names the JSON type of a value as a user would: "a JSON array".
// It takes either raw JSON or the Value of a json.UnmarshalTypeError
// ("array", "number 1.5").
func Kind(v string) string {
	v = strings.TrimSpace(v)
	if f, _, _ := strings.Cut(v, " "); f == "number" || f == "string" {
		v = f
	}
	switch {
	case v == "array" || strings.HasPrefix(v, "["):
		return "a JSON array"
	case v == "object" || strings.HasPrefix(v, "{"):
		return "a JSON object"
	case v == "string" || strings.HasPrefix(v, `"`):
		return "a JSON string"
	case v == "bool" || v == "true" || v == "false":
		return "a JSON boolean"
	case v == "null":
		return "null"
	case v == "number" || v != "" && strings.ContainsRune("-0123456789", rune(v[0])):
		return "a JSON number"
	}
	return "a JSON " + v
}

// wantOf says what JSON a Go type takes.
func wantOf(t reflect.Type) string {
	if t == nil {
		return "the expected type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		if t == reflect.TypeOf(json.RawMessage(nil)) {
			return "JSON"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return wantOf(t.Elem())
	}
	return "the expected type"
}

// contexts maps the end of the scanner's message to what was expected
// there, in JSON's own words.
var contexts = []struct{ suffix, says string }{
	{"looking for beginning of value", "where a value was expected"},
	{"looking for beginning of object key string", "where a double-quoted object key was expected"},
	{"after object key:value pair", `where "," or "}" was expected`},
	{"after object key", `where ":" was expected after an object key`},
	{"after array element", `where "," or "]" was expected`},
	{"after top-level value", "after the end of the JSON value"},
	{"in string literal", "inside a string, where control characters must be escaped"},
	{"in string escape code", "in a backslash escape"},
	{`in \u hexadecimal character escape`, `in a \u escape, where 4 hex digits were expected`},
	{"numeric literal", "inside a number"},
	{"in literal true", "in a word that is not true, false or null; text must be in double quotes"},
	{"in literal false", "in a word that is not true, false or null; text must be in double quotes"},
	{"in literal null", "in a word that is not true, false or null; text must be in double quotes"},
}

// syntax describes a syntax error: what was found at which byte (1 is
// the first), and what JSON wanted there.
func syntax(data []byte, se *json.SyntaxError) string {
	msg := se.Error()
	if i := strings.Index(msg, " (expecting"); i >= 0 {
		msg = msg[:i]
	}
	says := ""
	for _, c := range contexts {
		if strings.HasSuffix(msg, c.suffix) || strings.Contains(msg, c.suffix) {
			says = c.says
			break
		}
	}
	// The scanner reports the byte it stopped at, Offset-1, except when
	// the input ended: then it blames a space that is not in data.
	at := int(se.Offset) - 1
	if at < 0 || at >= len(data) || !strings.HasPrefix(msg, "invalid character "+quoteChar(data[at])+" ") {
		return fmt.Sprintf("it ends after %d bytes, before the JSON value is complete", len(data))
	}
	found := fmt.Sprintf("byte %#02x", data[at])
	if r, size := utf8.DecodeRune(data[at:]); r != utf8.RuneError || size > 1 {
		found = strconv.QuoteRune(r)
	}
	s := fmt.Sprintf("found %s at byte %d", found, at+1)
	if says != "" {
		s += ", " + says
	}
	return s
}

// quoteChar is how encoding/json quotes the byte it stopped at.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
