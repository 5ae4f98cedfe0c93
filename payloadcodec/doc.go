// Package payloadcodec encrypts Temporal payloads, so the user data that
// events carry (emails, names) is stored in workflow histories as
// ciphertext, and serves the codec server protocol, so the Temporal Web UI
// and CLI can show decrypted payloads to operators allowed to see them.
//
// # Wire format
//
// Encode marshals each whole payload (metadata and data) as protobuf and
// encrypts it with AES-256-GCM under the keyring's active key. The result is
// a payload with
//
//	metadata["encoding"]          = "binary/encrypted"   (MetadataEncodingEncrypted)
//	metadata["encryption-key-id"] = key ID               (MetadataEncryptionKeyID)
//	data                          = nonce (12 random bytes) || ciphertext || tag (16 bytes)
//
// and the key ID, as bytes, is the GCM additional authenticated data, so a
// payload whose key ID was changed does not decrypt. The encoding name and
// metadata key are the ones of Temporal's encryption samples.
//
// Decode reverses this for payloads whose encoding is "binary/encrypted" and
// returns every other payload unchanged, so histories written before
// encryption was turned on still decode and replay.
//
// Payloads are not compressed before encryption: events are at most 64 KiB,
// far below Temporal's payload limits, and compressing attacker-influenced
// text next to secrets before encrypting leaks through the ciphertext length
// (as in CRIME and BREACH). Chain converter.NewZlibCodec in front if that
// trade-off ever changes; payloads written without it still decode.
//
// # Keys and rotation
//
// A Keyring holds AES-256 keys by ID. The active key encrypts; every key
// decrypts. To rotate, first give every worker and client the new key as a
// non-active one (so all of them can read what it will encrypt), then make it
// active, and remove the old key only once no history that it encrypted is
// retained. Rotate well before a key has encrypted 2^32 payloads: nonces are
// random, and AES-GCM's safety margin for random nonces ends there.
//
// # Codec server
//
// NewHTTPHandler serves POST …/encode and …/decode as the Web UI and the
// `temporal` CLI call them, behind a bearer token, an optional namespace
// allowlist, CORS for the Web UI's origin and a request body cap.
package payloadcodec
