package decoder

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.SourceURL = "postgres://app@localhost/shop"
	valid.SpoolDir = t.TempDir()
	tests := []struct {
		name   string
		change func(*Config)
		fields []string // the fields reported invalid, in order
	}{
		{"defaults with a source", func(*Config) {}, nil},
		{"heartbeats disabled", func(c *Config) { c.HeartbeatInterval = 0 }, nil},
		{"key=value source", func(c *Config) { c.SourceURL = "host=/run/postgresql dbname=shop" }, nil},
		{"no source", func(c *Config) { c.SourceURL = "" }, []string{"SourceURL"}},
		{"unparsable source", func(c *Config) { c.SourceURL = "postgres://app:pw@host:port/db" }, []string{"SourceURL"}},
		{"upper-case slot", func(c *Config) { c.Slot = "DeltaView" }, []string{"Slot"}},
		{"slot with a dash", func(c *Config) { c.Slot = "delta-view" }, []string{"Slot"}},
		{"slot too long", func(c *Config) { c.Slot = strings.Repeat("s", 64) }, []string{"Slot"}},
		{"slot of 63 characters", func(c *Config) { c.Slot = strings.Repeat("s", 63) }, nil},
		{"no publication", func(c *Config) { c.Publication = "" }, []string{"Publication"}},
		{"publication with spaces and quotes", func(c *Config) { c.Publication = `My "Pub"` }, nil},
		{"publication too long", func(c *Config) { c.Publication = strings.Repeat("p", 64) }, []string{"Publication"}},
		{"zero status interval", func(c *Config) { c.StatusInterval = 0 }, []string{"StatusInterval"}},
		{"spool directory missing", func(c *Config) { c.SpoolDir = "/nonexistent/deltaview-spool" }, []string{"SpoolDir"}},
		{"negative heartbeat", func(c *Config) { c.HeartbeatInterval = -time.Second }, []string{"HeartbeatInterval"}},
		{"everything wrong", func(c *Config) { *c = Config{HeartbeatInterval: -1} },
			[]string{"SourceURL", "Slot", "Publication", "StatusInterval", "HeartbeatInterval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.change(&cfg)
			err := cfg.Validate()
			var fields []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var ce *ConfigError
					if !errors.As(e, &ce) {
						t.Fatalf("%T is not a *ConfigError: %v", e, e)
					}
					fields = append(fields, ce.Field)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("invalid fields %v, want %v (error: %v)", fields, tt.fields, err)
			}
		})
	}
}

func TestTableNameQuoted(t *testing.T) {
	tests := []struct {
		in   TableName
		want string
	}{
		{TableName{"public", "items"}, `"public"."items"`},
		{TableName{"My Schema", `Odd "Name"`}, `"My Schema"."Odd ""Name"""`},
		{TableName{"s", "it's"}, `"s"."it's"`},
	}
	for _, tt := range tests {
		if got := tt.in.Quoted(); got != tt.want {
			t.Errorf("%#v.Quoted() = %s, want %s", tt.in, got, tt.want)
		}
	}
}
