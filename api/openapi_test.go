package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/event"
)

func TestOpenAPI_DocumentsExactlyTheRegisteredRoutes(t *testing.T) {
	d := openAPI(t)
	var documented []string
	paths := d.raw["paths"].(map[string]any)
	for path, item := range paths {
		for method := range item.(map[string]any) {
			switch method {
			case "get", "post", "patch", "delete", "put", "head", "options", "trace":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	registered := api.RoutePatterns()
	slices.Sort(documented)
	slices.Sort(registered)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered but not in the OpenAPI document", r)
		}
	}
	for _, o := range documented {
		if !slices.Contains(registered, o) {
			t.Errorf("operation %s is in the OpenAPI document but not registered", o)
		}
	}
}

func TestOpenAPI_EveryOperationIsComplete(t *testing.T) {
	d := openAPI(t)
	ids := map[string]string{}
	for path, item := range d.raw["paths"].(map[string]any) {
		for method, v := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			op := v.(map[string]any)
			name := strings.ToUpper(method) + " " + path
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s has no operationId", name)
			} else if other, dup := ids[id]; dup {
				t.Errorf("%s and %s share operationId %s", name, other, id)
			}
			ids[id] = name
			responses := op["responses"].(map[string]any)
			_, public := op["security"]
			if !public {
				if _, ok := responses["401"]; !ok {
					t.Errorf("%s needs an API key but documents no 401", name)
				}
				if _, ok := responses["500"]; !ok {
					t.Errorf("%s documents no 500", name)
				}
			}
			// Every path parameter of the template is declared.
			declared := map[string]bool{}
			for _, list := range []any{item.(map[string]any)["parameters"], op["parameters"]} {
				params, _ := list.([]any)
				for _, p := range params {
					pm := p.(map[string]any)
					if ref, ok := pm["$ref"].(string); ok {
						v, _ := d.lookup(strings.TrimPrefix(ref, "#"))
						pm = v.(map[string]any)
					}
					if pm["in"] == "path" {
						declared[pm["name"].(string)] = true
					}
				}
			}
			for _, seg := range strings.Split(path, "/") {
				if pname, ok := strings.CutPrefix(seg, "{"); ok && !declared[strings.TrimSuffix(pname, "}")] {
					t.Errorf("%s does not declare path parameter %s", name, seg)
				}
			}
		}
	}
}

func TestOpenAPI_EveryComponentSchemaCompiles(t *testing.T) {
	d := openAPI(t)
	for name := range d.raw["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := d.schema("/components/schemas/" + name); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
}

// The event schemas of the document are the envelope's (event.Schema), its
// $defs moved to components: a change to the envelope must be copied here.
func TestOpenAPI_EventSchemasMatchTheEnvelope(t *testing.T) {
	var env map[string]any
	if err := json.Unmarshal(event.Schema, &env); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{
		"identifier": "EventIdentifier", "stringList": "EventStringList",
		"user": "EventUser", "previousAttributes": "EventPreviousAttributes",
	}
	var rewrite func(v any) any
	rewrite = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, x := range v {
				if ref, ok := x.(string); ok && k == "$ref" && strings.HasPrefix(ref, "#/$defs/") {
					out[k] = "#/components/schemas/" + names[strings.TrimPrefix(ref, "#/$defs/")]
					continue
				}
				out[k] = rewrite(x)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = rewrite(x)
			}
			return out
		}
		return v
	}
	defs := env["$defs"].(map[string]any)
	delete(env, "$defs")
	delete(env, "$schema")
	delete(env, "$id")
	var doc map[string]any
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	if !reflect.DeepEqual(schemas["Event"], rewrite(env)) {
		t.Error("components.schemas.Event differs from event/envelope.schema.json: copy the envelope's change into api/openapi.json")
	}
	for def, name := range names {
		if !reflect.DeepEqual(schemas[name], rewrite(defs[def])) {
			t.Errorf("components.schemas.%s differs from the envelope's $defs.%s", name, def)
		}
	}
}

func TestOpenAPI_IsServedWithoutAKey(t *testing.T) {
	h := newHarness(t)
	r := h.get("", "/v1/openapi.json").want(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.Equal(r.body, api.OpenAPI()) {
		t.Error("served document differs from api.OpenAPI()")
	}
	if v := r.json(t)["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", v)
	}
	h.get("", "/v1/openapi.json?x=1").want(t, http.StatusBadRequest)
}

// The checker that every test answer goes through must be able to fail.
func TestOpenAPI_CheckerRejectsNonConformingAnswers(t *testing.T) {
	d := openAPI(t)
	tests := []struct{ schema, body string }{
		{"/components/schemas/Problem", `{"type":"about:blank","title":"Not Found"}`},
		{"/components/schemas/Problem", `{"type":"about:blank","title":"Not Found","status":404,"extra":1}`},
		{"/components/schemas/Subscription", `{"id":"x"}`},
		{"/components/schemas/SubscriptionWithSecret", `{"id":"0193a5c2-7e1f-7b3a-9c4d-2f1e0a9b8c7d","account_id":"a","url":"https://x.example","event_types":[],"description":"","enabled":true,"schedule":null,"secrets":[{"active":true,"expires_at":null}],"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`},
		{"/components/schemas/Subscription", `{"id":"0193a5c2-7e1f-7b3a-9c4d-2f1e0a9b8c7d","account_id":"a","url":"https://x.example","event_types":[],"description":"","enabled":true,"schedule":null,"secrets":[{"active":true,"expires_at":null}],"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","secret":"whsec_x"}`},
		{"/components/schemas/Delivery", `{"event_id":"e","subscription_id":"s","account_id":"a","event_type":"user.created","user_id":"u","status":"lost","attempts":1,"workflow_id":"w","run_id":"r","started_at":null,"closed_at":null,"endpoint":"https://x","redelivery_of":null}`},
		{"/components/schemas/PublishResponse", `{"event_id":"e","workflow_id":"w","run_id":"r","duplicate":false,"event":{"id":"e"}}`},
		{"/components/schemas/SecretInfo", `{"active":true,"expires_at":"tomorrow"}`},
	}
	for _, tt := range tests {
		sch, err := d.schema(tt.schema)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal([]byte(tt.body), &v); err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err == nil {
			t.Errorf("%s accepts %s", tt.schema, tt.body)
		}
	}
}
