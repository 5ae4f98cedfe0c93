package event

import _ "embed" // for the envelope's JSON Schema

// SchemaID is the $id of Schema: a stable name for version 1 of the
// envelope, not necessarily an address that resolves.
const SchemaID = "https://userhooks.dev/schemas/event/v1/envelope.schema.json"

// Schema is the JSON Schema (draft 2020-12) of the event envelope, with a
// description of every field, for receivers that validate bodies or generate
// types in other languages. Every body Marshal produces for a valid event
// conforms to it. Like Decode, it tolerates unknown fields; DecodeStrict's
// rejection of them and the MaxBodyBytes limit are not in it. Decode is
// slightly more lenient than the schema: it reads null as an absent field,
// matches field names case-insensitively and accepts a few timestamps that
// are not strict RFC 3339. Treat Schema as read-only.
//
//go:embed envelope.schema.json
var Schema []byte
