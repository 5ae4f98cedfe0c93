// Package temporalconn connects userhooks processes to a Temporal cluster:
// configuration from flags and environment (address, namespace, TLS, API
// key, payload encryption keys), and a zap logger adapted to the Temporal
// SDK.
package temporalconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/payloadcodec"
)

// Config says how to reach Temporal. The zero value is not usable; start
// from FromEnv.
type Config struct {
	Address   string
	Namespace string
	TaskQueue string
	// TLS client certificate and key (mTLS), and a CA bundle to verify the
	// server; all optional. TLS is on when any of them, or APIKey, is set.
	TLSCertFile string
	TLSKeyFile  string
	TLSCAFile   string
	// TLSServerName overrides the name the server certificate is checked
	// against.
	TLSServerName string
	// APIKey authenticates to Temporal Cloud or a cluster that takes keys.
	// Never logged.
	APIKey string

	// Payload encryption (see package payloadcodec). Events carry personal
	// data, so every workflow and activity payload is encrypted unless
	// PlaintextHistory says otherwise: exactly one of CodecKeys,
	// CodecKeysFile and PlaintextHistory must be set. Every worker and
	// client of a namespace needs the same keys.
	//
	// CodecKeys is a keyring in the format of payloadcodec.ParseKeyring
	// ("KEYID:BASE64KEY,…", active key first). Never logged.
	CodecKeys string
	// CodecKeysFile is a file holding such a keyring (one key per line).
	CodecKeysFile string
	// PlaintextHistory stores payloads unencrypted.
	PlaintextHistory bool
}

// Environment variables read by FromEnv. The TEMPORAL_* names are the ones
// the Temporal CLI uses.
const (
	EnvAddress       = "TEMPORAL_ADDRESS"
	EnvNamespace     = "TEMPORAL_NAMESPACE"
	EnvTLSCert       = "TEMPORAL_TLS_CERT"
	EnvTLSKey        = "TEMPORAL_TLS_KEY"
	EnvTLSCA         = "TEMPORAL_TLS_CA"
	EnvTLSServerName = "TEMPORAL_TLS_SERVER_NAME"
	EnvAPIKey        = "TEMPORAL_API_KEY"
	EnvTaskQueue     = "USERHOOKS_TASK_QUEUE"

	EnvCodecKeys        = "USERHOOKS_CODEC_KEYS"
	EnvCodecKeysFile    = "USERHOOKS_CODEC_KEYS_FILE"
	EnvPlaintextHistory = "USERHOOKS_PLAINTEXT_HISTORY"
)

// FromEnv returns the configuration given by the environment, with defaults
// for a local development server.
func FromEnv(defaultTaskQueue string) Config {
	return Config{
		Address:       getenv(EnvAddress, "localhost:7233"),
		Namespace:     getenv(EnvNamespace, "default"),
		TaskQueue:     getenv(EnvTaskQueue, defaultTaskQueue),
		TLSCertFile:   os.Getenv(EnvTLSCert),
		TLSKeyFile:    os.Getenv(EnvTLSKey),
		TLSCAFile:     os.Getenv(EnvTLSCA),
		TLSServerName: os.Getenv(EnvTLSServerName),
		APIKey:        os.Getenv(EnvAPIKey),

		CodecKeys:        os.Getenv(EnvCodecKeys),
		CodecKeysFile:    os.Getenv(EnvCodecKeysFile),
		PlaintextHistory: os.Getenv(EnvPlaintextHistory) == "true",
	}
}

// RegisterFlags binds the configuration to command-line flags whose
// defaults are the current values (so flags override the environment).
// The API key and the codec keys have no flag: command lines are visible
// to other users.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Address, "temporal-address", c.Address, "Temporal frontend host:port (env "+EnvAddress+")")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "Temporal namespace (env "+EnvNamespace+")")
	fs.StringVar(&c.TaskQueue, "task-queue", c.TaskQueue, "task queue of the userhooks workers (env "+EnvTaskQueue+")")
	fs.StringVar(&c.TLSCertFile, "tls-cert", c.TLSCertFile, "client certificate file for mTLS (env "+EnvTLSCert+")")
	fs.StringVar(&c.TLSKeyFile, "tls-key", c.TLSKeyFile, "client key file for mTLS (env "+EnvTLSKey+")")
	fs.StringVar(&c.TLSCAFile, "tls-ca", c.TLSCAFile, "CA bundle that signs the server certificate (env "+EnvTLSCA+")")
	fs.StringVar(&c.TLSServerName, "tls-server-name", c.TLSServerName, "server name to verify (env "+EnvTLSServerName+")")
	fs.StringVar(&c.CodecKeysFile, "codec-keys-file", c.CodecKeysFile, "file of the keys that encrypt payloads in history, active key first (env "+EnvCodecKeysFile+"; or the keys themselves in "+EnvCodecKeys+")")
	fs.BoolVar(&c.PlaintextHistory, "plaintext-history", c.PlaintextHistory, "do not encrypt payloads: user data is stored in clear in Temporal history (env "+EnvPlaintextHistory+"=true)")
}

// ErrNoCodecKeys is returned (wrapped) by Keyring when the configuration
// neither gives payload encryption keys nor turns encryption off.
var ErrNoCodecKeys = errors.New("payload encryption needs keys: set " + EnvCodecKeysFile + " to a key file (make one with `userhooks codec-keys generate`) or " +
	EnvCodecKeys + " to the keys, or use -plaintext-history (" + EnvPlaintextHistory + "=true) to keep user data unencrypted in Temporal history")

// Keyring returns the payload encryption keys of the configuration, or nil
// when PlaintextHistory is set. It fails when none or more than one of
// CodecKeys, CodecKeysFile and PlaintextHistory is set, or when the keys do
// not parse; errors never contain key material.
func (c Config) Keyring() (*payloadcodec.Keyring, error) {
	set := 0
	for _, on := range []bool{c.CodecKeys != "", c.CodecKeysFile != "", c.PlaintextHistory} {
		if on {
			set++
		}
	}
	switch {
	case set == 0:
		return nil, ErrNoCodecKeys
	case set > 1:
		return nil, fmt.Errorf("payload encryption: set only one of %s, %s and %s", EnvCodecKeys, EnvCodecKeysFile, EnvPlaintextHistory)
	case c.PlaintextHistory:
		return nil, nil
	case c.CodecKeysFile != "":
		return payloadcodec.ReadKeyringFile(c.CodecKeysFile)
	}
	k, err := payloadcodec.ParseKeyring(c.CodecKeys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvCodecKeys, err)
	}
	return k, nil
}

// DataConverter returns the data converter of the configuration: one that
// encrypts payloads with its keys, or, with PlaintextHistory,
// converter.GetDefaultDataConverter(). Code that reads payloads below the
// SDK client (package deliveries) needs the same converter as the client.
func (c Config) DataConverter() (converter.DataConverter, error) {
	keys, err := c.Keyring()
	if err != nil {
		return nil, err
	}
	if keys == nil {
		return converter.GetDefaultDataConverter(), nil
	}
	return payloadcodec.NewDataConverter(keys), nil
}

// ClientOptions turns the configuration into SDK client options, with a
// data converter that encrypts payloads unless PlaintextHistory is set.
func (c Config) ClientOptions(logger *zap.Logger) (client.Options, error) {
	opts := client.Options{
		HostPort:  c.Address,
		Namespace: c.Namespace,
		Logger:    NewLogger(logger),
	}
	dc, err := c.DataConverter()
	if err != nil {
		return client.Options{}, err
	}
	if dc != converter.GetDefaultDataConverter() {
		opts.DataConverter = dc
		opts.FailureConverter = payloadcodec.NewFailureConverter(dc)
	}
	if c.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(c.APIKey)
	}
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return client.Options{}, err
	}
	opts.ConnectionOptions.TLS = tlsCfg
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCertFile == "" && c.TLSKeyFile == "" && c.TLSCAFile == "" && c.APIKey == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return nil, errors.New("TLS needs both a certificate and a key file, or neither")
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS key pair %s: %w", c.TLSCertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", c.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Dial connects to Temporal. Each customize function may adjust the client
// options first, for instance to set a MetricsHandler.
func (c Config) Dial(logger *zap.Logger, customize ...func(*client.Options)) (client.Client, error) {
	opts, err := c.ClientOptions(logger)
	if err != nil {
		return nil, err
	}
	for _, f := range customize {
		f(&opts)
	}
	cl, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", c.Address, c.Namespace, err)
	}
	return cl, nil
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
