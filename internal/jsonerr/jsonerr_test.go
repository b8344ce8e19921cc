package jsonerr_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/resqued/resqued/internal/jsonerr"
)

func TestExplain(t *testing.T) {
	type line struct {
		Class string          `json:"class"`
		Args  json.RawMessage `json:"args"`
		N     int             `json:"n"`
	}
	for _, tc := range []struct {
		in   string
		into func() any
		want string
	}{
		{`thing`, anyValue, `input is not valid JSON: found 'h' at byte 2, in a word that is not true, false or null; text must be in double quotes`},
		{`hello`, anyValue, `input is not valid JSON: found 'h' at byte 1, where a value was expected`},
		{`{"a" 1}`, anyValue, `input is not valid JSON: found '1' at byte 6, where ":" was expected after an object key`},
		{`{"a":1 "b":2}`, anyValue, `input is not valid JSON: found '"' at byte 8, where "," or "}" was expected`},
		{`[1 2]`, anyValue, `input is not valid JSON: found '2' at byte 4, where "," or "]" was expected`},
		{`{a:1}`, anyValue, `input is not valid JSON: found 'a' at byte 2, where a double-quoted object key was expected`},
		{"\"a\nb\"", anyValue, `input is not valid JSON: found '\n' at byte 3, inside a string, where control characters must be escaped`},
		{`1.x`, anyValue, `input is not valid JSON: found 'x' at byte 3, inside a number`},
		{`[1] 2`, anyValue, `input is not valid JSON: found '2' at byte 5, after the end of the JSON value`},
		{`"\q"`, anyValue, `input is not valid JSON: found 'q' at byte 3, in a backslash escape`},
		{`"\u12zz"`, anyValue, `input is not valid JSON: found 'z' at byte 6, in a \u escape, where 4 hex digits were expected`},
		{"\xff", anyValue, `input is not valid JSON: found byte 0xff at byte 1, where a value was expected`},
		{`é`, anyValue, `input is not valid JSON: found 'é' at byte 1, where a value was expected`},
		{`{"class":`, anyValue, `input is not valid JSON: it ends after 9 bytes, before the JSON value is complete`},
		{`nul`, anyValue, `input is not valid JSON: it ends after 3 bytes, before the JSON value is complete`},
		{``, anyValue, `input is empty`},
		{"  \n", anyValue, `input is empty`},
		{`[1]`, object, `input is a JSON array, not what was wanted`},
		{`"s"`, object, `input is a JSON string, not what was wanted`},
		{`42`, array, `input is a JSON number, not what was wanted`},
		{`true`, array, `input is a JSON boolean, not what was wanted`},
		{`{"class":[1]}`, func() any { return new(line) }, `input: "class" is a JSON array, not a string`},
		{`{"n":1.5}`, func() any { return new(line) }, `input: "n" is a JSON number, not a whole number`},
		{`{"n":"1"}`, func() any { return new(line) }, `input: "n" is a JSON string, not a whole number`},
		{`{"queu":"x"}`, func() any { return new(line) }, `input has an unknown field "queu"`},
	} {
		dec := json.NewDecoder(bytes.NewReader([]byte(tc.in)))
		dec.DisallowUnknownFields()
		v := tc.into()
		var err error
		if _, ok := v.(*any); ok { // exactly json.Unmarshal's errors
			err = json.Unmarshal([]byte(tc.in), v)
		} else {
			err = dec.Decode(v)
		}
		if err == nil {
			t.Errorf("%q: decoded without error", tc.in)
			continue
		}
		if got := jsonerr.Explain("input", "what was wanted", []byte(tc.in), err); got != tc.want {
			t.Errorf("%q (%v):\n got %s\nwant %s", tc.in, err, got, tc.want)
		}
	}
}

func anyValue() any { return new(any) }
func object() any   { return new(map[string]json.RawMessage) }
func array() any    { return new([]json.RawMessage) }

func TestKind(t *testing.T) {
	for in, want := range map[string]string{
		`[1]`: "a JSON array", `{}`: "a JSON object", `"x"`: "a JSON string", `-1`: "a JSON number",
		`true`: "a JSON boolean", `null`: "null", "number 1.5": "a JSON number", "object": "a JSON object",
	} {
		if got := jsonerr.Kind(in); got != want {
			t.Errorf("Kind(%q) = %q, want %q", in, got, want)
		}
	}
}
