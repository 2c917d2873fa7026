package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// decode reads the request's JSON object into dst, refusing unknown
// fields and values of the wrong type; false when it answered the error:
// 413 for a body over MaxBody, 400 naming the field for the rest.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	msg := ""
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", tooBig.Limit))
		return false
	case errors.Is(err, io.EOF):
		msg = "bad JSON: empty body: send a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "bad JSON: the body ends inside the object"
	case errors.As(err, &syntax):
		msg = fmt.Sprintf("bad JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field != "":
		msg = fmt.Sprintf("bad JSON: field %q must be %s, not %s", typ.Field, jsonType(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &typ):
		msg = fmt.Sprintf("bad JSON: send an object, not %s", typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		msg = "bad JSON: " + strings.TrimPrefix(err.Error(), "json: ") + " (not taken here)"
	default:
		msg = "bad JSON: " + strings.TrimPrefix(err.Error(), "json: ")
	}
	writeError(w, http.StatusBadRequest, msg)
	return false
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint", "uint32", "uint64", "float64":
		return "a number"
	}
	return kind
}

// missing answers 400 naming the first required field left out (nil);
// false when all are there.
func missing(w http.ResponseWriter, fields ...any) bool {
	for i := 0; i+1 < len(fields); i += 2 {
		if p, ok := fields[i+1].(*string); ok && p == nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bad JSON: missing field %q", fields[i]))
			return true
		}
	}
	return false
}

// queryInt reads an optional whole-number query parameter; false when it
// answered a bad one.
func queryInt(w http.ResponseWriter, r *http.Request, name string, dst *int) bool {
	v := r.URL.Query().Get(name)
	if v == "" {
		return true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad query parameter %s=%q: use a whole number", name, v))
		return false
	}
	*dst = n
	return true
}
