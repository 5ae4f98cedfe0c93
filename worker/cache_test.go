package main

import (
	"strings"
	"testing"
)

func TestParseConfig_StickyCache(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		args    []string
		want    int
		wantErr string
	}{
		{"default", "", nil, defaultStickyCache, ""},
		{"from the environment", "300", nil, 300, ""},
		{"the flag wins", "300", []string{"-sticky-cache", "5000"}, 5000, ""},
		{"zero", "", []string{"-sticky-cache", "0"}, 0, "want 1 to 1000000"},
		{"negative", "-5", nil, 0, "want 1 to 1000000"},
		{"not a number", "lots", nil, 0, envStickyCache + `="lots": not a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearHealthEnv(t)
			t.Setenv(envEndpointMaxInFlight, "")
			t.Setenv(envStickyCache, tt.env)
			cfg, err := parseConfig(append([]string{"-store", "x.db"}, tt.args...), true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig error = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if cfg.stickyCache != tt.want {
				t.Errorf("stickyCache = %d, want %d", cfg.stickyCache, tt.want)
			}
		})
	}
}
