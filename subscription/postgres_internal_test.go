package subscription

import (
	"strings"
	"testing"
	"time"
)

func TestPostgresPoolConfig_DefaultsUnlessTheDSNSetsThem(t *testing.T) {
	t.Setenv("PGAPPNAME", "")
	t.Setenv("PGCONNECT_TIMEOUT", "")
	type settings struct {
		maxConns                   int32
		idle, lifetime, jitter     time.Duration
		connectTimeout             time.Duration
		applicationName            string
		poolParamsSentToPostgreSQL bool
	}
	defaults := settings{
		postgresMaxConns, postgresMaxConnIdleTime, postgresMaxConnLifetime,
		postgresMaxConnLifetimeJitter, postgresConnectTimeout, postgresApplicationName, false,
	}
	tests := []struct {
		name, dsn string
		want      settings
	}{
		{"URL without settings", "postgres://app@db:5432/userhooks", defaults},
		{"keyword/value without settings", "host=db user=app dbname=userhooks", defaults},
		{
			"URL with every setting",
			"postgres://app@db/userhooks?pool_max_conns=3&pool_max_conn_idle_time=1m&pool_max_conn_lifetime=2h&pool_max_conn_lifetime_jitter=1s&connect_timeout=2&application_name=billing",
			settings{3, time.Minute, 2 * time.Hour, time.Second, 2 * time.Second, "billing", false},
		},
		{
			"keyword/value with some settings",
			"host=db user=app pool_max_conns = 25 connect_timeout=7",
			settings{25, postgresMaxConnIdleTime, postgresMaxConnLifetime, postgresMaxConnLifetimeJitter, 7 * time.Second, postgresApplicationName, false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := postgresPoolConfig(tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			var sent bool
			for k := range cfg.ConnConfig.RuntimeParams {
				sent = sent || strings.HasPrefix(k, "pool_")
			}
			got := settings{
				cfg.MaxConns, cfg.MaxConnIdleTime, cfg.MaxConnLifetime, cfg.MaxConnLifetimeJitter,
				cfg.ConnConfig.ConnectTimeout, cfg.ConnConfig.RuntimeParams["application_name"], sent,
			}
			if got != tc.want {
				t.Errorf("settings = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPostgresPoolConfig_EnvironmentSettingsWin(t *testing.T) {
	t.Setenv("PGAPPNAME", "from-env")
	t.Setenv("PGCONNECT_TIMEOUT", "3")
	cfg, err := postgresPoolConfig("postgres://app@db/userhooks")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ConnConfig.RuntimeParams["application_name"]; got != "from-env" {
		t.Errorf("application_name = %q, want PGAPPNAME's from-env", got)
	}
	if got := cfg.ConnConfig.ConnectTimeout; got != 3*time.Second {
		t.Errorf("connect timeout = %v, want PGCONNECT_TIMEOUT's 3s", got)
	}
}
