package decoder

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"URL with password", "postgres://app:s3cret@db.example.com:5432/shop?sslmode=require", "postgres://app:xxxxx@db.example.com:5432/shop?sslmode=require"},
		{"postgresql scheme", "postgresql://app:pw@localhost/db", "postgresql://app:xxxxx@localhost/db"},
		{"password containing @ and :", "postgres://app:p@ss:w0rd@host/db", "postgres://app:xxxxx@host/db"},
		{"percent-encoded password", "postgres://app:p%40ss@host/db", "postgres://app:xxxxx@host/db"},
		{"empty user", "postgres://:pw@host/db", "postgres://:xxxxx@host/db"},
		{"several hosts", "postgres://app:pw@h1:5432,h2:5433/db", "postgres://app:xxxxx@h1:5432,h2:5433/db"},
		{"URL without password is unchanged", "postgres://app@host/db?host=/run/pg&port=5433", "postgres://app@host/db?host=/run/pg&port=5433"},
		{"URL without user information", "postgres:///db?host=/run/postgresql", "postgres:///db?host=/run/postgresql"},
		{"password query parameter", "postgres://app@host/db?sslmode=disable&password=pw&x=1", "postgres://app@host/db?sslmode=disable&password=xxxxx&x=1"},
		{"sslpassword query parameter", "postgres://host/db?sslpassword=pw", "postgres://host/db?sslpassword=xxxxx"},
		{"@ in the query is not user information", "postgres://app@host/db?application_name=a:b@c", "postgres://app@host/db?application_name=a:b@c"},
		{"key=value", "host=db user=app password=s3cret dbname=shop", "host=db user=app password=xxxxx dbname=shop"},
		{"key = value with spaces", "host=db password = s3cret dbname=shop", "host=db password = xxxxx dbname=shop"},
		{"quoted value with spaces and escaped quote", `host=db password='a b\'c' dbname=shop`, "host=db password=xxxxx dbname=shop"},
		{"upper-case key", "PASSWORD=pw host=db", "PASSWORD=xxxxx host=db"},
		{"key=value sslpassword", "host=db sslpassword=pw", "host=db sslpassword=xxxxx"},
		{"key=value without password is unchanged", "host=/run/postgresql port=5432 dbname=x", "host=/run/postgresql port=5432 dbname=x"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrorsHidePasswords(t *testing.T) {
	for _, url := range []string{
		"postgres://app:s3cret@host:notaport/db",
		"postgres://app:s3cret@host/db?sslmode=bogus",
		"host=db password=s3cret sslmode=bogus",
		"host=db password='s3cret",
	} {
		_, err := parseSourceConfig(url)
		if err == nil {
			t.Errorf("%q parsed", url)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error for %q shows the password: %v", url, err)
		}
	}
}
