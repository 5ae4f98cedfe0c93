package payloadcodec

import (
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload, as in Temporal's encryption samples.
const (
	// MetadataEncodingEncrypted is the "encoding" of an encrypted payload.
	MetadataEncodingEncrypted = "binary/encrypted"
	// MetadataEncryptionKeyID names the key that encrypted the payload.
	MetadataEncryptionKeyID = "encryption-key-id"
)

// Errors that Decode wraps; match them with errors.Is.
var (
	// ErrUnknownKeyID: the payload names a key that is not in the keyring,
	// typically because it was removed while histories it encrypted were
	// still retained.
	ErrUnknownKeyID = errors.New("encryption key ID not in the keyring")
	// ErrDecrypt: the payload does not authenticate under the key of its key
	// ID: the data or the key ID were altered, or that ID names another key
	// in this keyring than the one that encrypted the payload.
	ErrDecrypt = errors.New("decryption failed: payload altered, or a different key under this key ID")
	// ErrMalformed: the payload says it is encrypted but is not of this
	// package's format.
	ErrMalformed = errors.New("malformed encrypted payload")
)

// Codec encrypts and decrypts payloads with a Keyring; see the package
// documentation for the format. It is safe for concurrent use.
type Codec struct {
	keys *Keyring
}

var _ converter.PayloadCodec = (*Codec)(nil)

// NewCodec returns a payload codec that encrypts with k's active key and
// decrypts with any of k's keys.
func NewCodec(k *Keyring) converter.PayloadCodec {
	return &Codec{keys: k}
}

// NewDataConverter returns Temporal's default data converter with every
// payload encrypted by NewCodec(k). Workers and every client that starts,
// signals or queries userhooks workflows must use it (with keyrings that
// hold the same keys), or their payloads are written in clear or cannot be
// read.
func NewDataConverter(k *Keyring) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), NewCodec(k))
}

// NewFailureConverter returns the SDK's default failure converter, but with
// the details of failures converted by dc. Give it to every client that has
// dc as its data converter: the SDK's own default converts failure details
// (such as a failed attempt's record with the receiver's response excerpt,
// or a failed delivery's result) with the default data converter, in
// clear, whatever the client's data converter. Messages and stack traces
// stay readable without the codec server; userhooks puts no user data in
// them.
func NewFailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc})
}

// Encode encrypts each payload with the active key. It does not change its
// arguments.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	kid := c.keys.ActiveKeyID()
	aead, ok := c.keys.lookup(kid)
	if !ok {
		return payloads, errors.New("payloadcodec: encode: the keyring has no active key")
	}
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("payloadcodec: encode payload %d: %w", i, err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncodingEncrypted),
				MetadataEncryptionKeyID:    []byte(kid),
			},
			Data: aead.Seal(nil, nil, plain, []byte(kid)),
		}
	}
	return out, nil
}

// Decode decrypts each payload encoded by Encode and passes any other
// payload through unchanged (histories recorded before encryption still
// decode). Errors name the payload's key ID, never key material, and wrap
// ErrUnknownKeyID, ErrDecrypt or ErrMalformed. It does not change its
// arguments.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncodingEncrypted {
			out[i] = p
			continue
		}
		rawID, ok := p.GetMetadata()[MetadataEncryptionKeyID]
		if !ok {
			return payloads, fmt.Errorf("payloadcodec: decode payload %d: no %s in its metadata: %w", i, MetadataEncryptionKeyID, ErrMalformed)
		}
		kid := string(rawID)
		aead, ok := c.keys.lookup(kid)
		if !ok {
			return payloads, fmt.Errorf("payloadcodec: decode payload %d: key ID %s: %w", i, quoteID(kid), ErrUnknownKeyID)
		}
		plain, err := aead.Open(nil, nil, p.GetData(), rawID)
		if err != nil {
			return payloads, fmt.Errorf("payloadcodec: decode payload %d: key ID %s: %w", i, quoteID(kid), ErrDecrypt)
		}
		dec := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, dec); err != nil {
			// Authenticated, so written with our key, yet not a payload.
			return payloads, fmt.Errorf("payloadcodec: decode payload %d: key ID %s: decrypted data is not a payload: %w", i, quoteID(kid), ErrMalformed)
		}
		out[i] = dec
	}
	return out, nil
}

// quoteID quotes a key ID read from a payload, which may be anything, for
// an error message of bounded length.
func quoteID(id string) string {
	if len(id) > MaxKeyIDLen {
		return fmt.Sprintf("%q…", id[:MaxKeyIDLen])
	}
	return fmt.Sprintf("%q", id)
}
