package main

import (
	"strings"
	"testing"
)

func TestParseConfig_EndpointMaxInFlight(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		args    []string
		want    int
		wantErr string
	}{
		{"default: no limit", "", nil, 0, ""},
		{"from the environment", "4", nil, 4, ""},
		{"the flag wins", "4", []string{"-endpoint-max-in-flight", "9"}, 9, ""},
		{"largest", "", []string{"-endpoint-max-in-flight", "1000"}, 1000, ""},
		{"too large", "", []string{"-endpoint-max-in-flight", "1001"}, 0, "want 0 (no limit) to 1000"},
		{"negative", "-1", nil, 0, "want 0 (no limit) to 1000"},
		{"not a number", "many", nil, 0, envEndpointMaxInFlight + `="many": not a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearHealthEnv(t)
			t.Setenv(envEndpointMaxInFlight, tt.env)
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
			if cfg.endpointMaxInFlight != tt.want {
				t.Errorf("endpointMaxInFlight = %d, want %d", cfg.endpointMaxInFlight, tt.want)
			}
		})
	}
}
