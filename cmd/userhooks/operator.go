package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/apiserver"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/subscription/stores"
)

// The operator commands work on the database, not through the API: they
// make the keys the API asks for.

const apiKeysUsage = `usage: userhooks apikeys <command> [flags]

commands (operator tasks, on the database named by --store / USERHOOKS_STORE):
  create  --account ACCOUNT [--name TEXT]   issue a key; prints it, once
  list    --account ACCOUNT                 the account's keys, revoked ones too
  revoke  --account ACCOUNT --id ID         the key stops working at once

Run "userhooks apikeys <command> -h" for the flags of a command.
`

// defaultStore is where `worker dev` keeps its database.
const defaultStore = ".userhooks/userhooks.db"

// apiKeyView is an API key as the CLI prints it: never the key itself,
// except in the answer of create.
type apiKeyView struct {
	ID            string     `json:"id"`
	AccountID     string     `json:"account_id"`
	Name          string     `json:"name"`
	DisplayPrefix string     `json:"display_prefix"`
	Active        bool       `json:"active"`
	CreatedAt     time.Time  `json:"created_at"`
	LastUsedAt    *time.Time `json:"last_used_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
}

func viewKey(k apikey.Key) apiKeyView {
	v := apiKeyView{ID: k.ID, AccountID: k.AccountID, Name: k.Name, DisplayPrefix: k.DisplayPrefix, Active: k.Active(), CreatedAt: k.CreatedAt}
	if !k.LastUsedAt.IsZero() {
		v.LastUsedAt = &k.LastUsedAt
	}
	if !k.RevokedAt.IsZero() {
		v.RevokedAt = &k.RevokedAt
	}
	return v
}

func apiKeys(ctx context.Context, args []string, stdout io.Writer) error {
	verb, err := subcommand("apikeys", args, apiKeysUsage, stdout, "create", "list", "revoke")
	if err != nil {
		return err
	}
	c := newCommand("apikeys " + verb)
	var (
		store, account, name, id string
		asJSON                   bool
	)
	c.fs.StringVar(&store, "store", envOr("USERHOOKS_STORE", defaultStore), "the database of subscriptions and API keys: "+stores.Supported+" (env USERHOOKS_STORE)")
	c.requiredString(&account, "account", "account ID")
	switch verb {
	case "create":
		c.fs.StringVar(&name, "name", "", `what the key is for, e.g. "billing service, production"`)
	case "revoke":
		c.requiredString(&id, "id", "key ID (from apikeys list)")
	}
	c.fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := c.parse(args[1:], stdout); err != nil {
		return err
	}
	// The rule of apikey.Store.Create, checked before the store is opened.
	if !validID(account) {
		return usageError{fmt.Sprintf("--account must be an account ID: 1 to %d letters, digits and . _ : -, starting with a letter or digit", apikey.MaxAccountIDLength)}
	}
	keys, err := openKeys(ctx, store)
	if err != nil {
		return err
	}
	defer keys.Close()

	switch verb {
	case "create":
		k, plaintext, err := keys.Create(ctx, account, name)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, struct {
				apiKeyView
				Key string `json:"key"`
			}{viewKey(k), plaintext})
		}
		fmt.Fprintf(stdout, "Created API key %s for account %s\n  key  %s\n(the key is shown only now: keep it in %s or a file named by --api-key-file)\n",
			k.ID, k.AccountID, plaintext, envAPIKey)
		return nil
	case "list":
		ks, err := keys.List(ctx, account)
		if err != nil {
			return err
		}
		views := make([]apiKeyView, len(ks))
		for i, k := range ks {
			views[i] = viewKey(k)
		}
		if asJSON {
			return writeJSON(stdout, views)
		}
		if len(views) == 0 {
			fmt.Fprintf(stdout, "Account %s has no API keys.\n", account)
			return nil
		}
		tw := newTable(stdout)
		row(tw, "ID", "PREFIX", "NAME", "STATUS", "CREATED", "LAST USED")
		for _, v := range views {
			status := "active"
			if !v.Active {
				status = "revoked " + fmtTime(v.RevokedAt)
			}
			row(tw, v.ID, v.DisplayPrefix+"…", v.Name, status, fmtTime(&v.CreatedAt), fmtTime(v.LastUsedAt))
		}
		return tw.Flush()
	default: // revoke
		if err := keys.Revoke(ctx, account, id); err != nil {
			if errors.Is(err, apikey.ErrNotFound) {
				return fmt.Errorf("account %s has no API key %s (see userhooks apikeys list --account %s)", account, id, account)
			}
			return err
		}
		if asJSON {
			return writeJSON(stdout, map[string]any{"id": id, "account_id": account, "revoked": true})
		}
		fmt.Fprintf(stdout, "API key %s of account %s revoked: it stops working at once\n", id, account)
		return nil
	}
}

// openKeys opens the API key store in the database that dsn names. A
// SQLite file must exist already: a mistyped --store must not leave an
// empty database behind, with a key that the API never sees.
func openKeys(ctx context.Context, dsn string) (*apikey.SQLStore, error) {
	if path, ok := stores.SQLitePath(dsn); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no database at %s (the worker and the API create it when they start; or check --store / USERHOOKS_STORE): %w", path, err)
		}
	}
	return apiserver.OpenKeys(ctx, dsn)
}

// codecKeys prints a new payload encryption key as KEYID:BASE64KEY.
func codecKeys(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "generate" {
		return usageError{"usage: userhooks codec-keys generate [--id ID]"}
	}
	c := newCommand("codec-keys generate")
	id := c.fs.String("id", "k"+time.Now().UTC().Format("20060102"), "key ID, stored with every payload it encrypts")
	if err := c.parse(args[1:], stdout); err != nil {
		return err
	}
	key, err := payloadcodec.GenerateKey()
	if err != nil {
		return err
	}
	// Validate the ID the way a keyring will when it is read back.
	line := payloadcodec.FormatKey(*id, key)
	if _, err := payloadcodec.ParseKeyring(line); err != nil {
		return usageError{fmt.Sprintf("--id: %v", err)}
	}
	fmt.Fprintln(stdout, line)
	return nil
}
