package api

import (
	_ "embed" // for the OpenAPI document
	"net/http"
	"slices"
)

// openAPIDocument is the OpenAPI 3.1 description of the API, written by
// hand. Tests check that it lists exactly the routes the handler serves and
// that every answer the tests see conforms to it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document (JSON) that describes the API, as
// served at GET /v1/openapi.json.
func OpenAPI() []byte { return slices.Clone(openAPIDocument) }

// serveOpenAPI serves the document. It needs no API key: the API's shape is
// no secret.
func (s *server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if err := parseQuery(r).err(); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDocument)
}
