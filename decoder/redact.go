package decoder

import (
	"net/url"
	"regexp"
	"strings"
)

// redacted replaces passwords in connection strings.
const redacted = "xxxxx"

var (
	// urlScheme recognises postgres:// and postgresql:// URLs.
	urlScheme = regexp.MustCompile(`^(?i)postgres(?:ql)?://`)
	// urlPassword matches the password of a URL's user information, which
	// ends at the last '@' before the path, query or fragment.
	urlPassword = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/?#]*:)[^/?#]*@`)
	// queryPassword matches password and sslpassword query parameters.
	queryPassword = regexp.MustCompile(`(?i)([?&](?:ssl)?password=)[^&#]*`)
	// dsnPassword matches password and sslpassword in a key=value
	// connection string, quoted or not.
	dsnPassword = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|\S*)`)
)

// RedactURL returns the connection string s, a postgres:// URL or a
// key=value string, with its passwords replaced by "xxxxx", for logs and
// error messages. Everything else is left as it was.
func RedactURL(s string) string {
	if urlScheme.MatchString(s) {
		s = urlPassword.ReplaceAllString(s, "${1}"+redacted+"@")
		return queryPassword.ReplaceAllString(s, "${1}"+redacted)
	}
	return dsnPassword.ReplaceAllString(s, "${1}"+redacted)
}

// scrubPasswords removes from msg every password that RedactURL would
// remove from connString, for error texts from parsers that quote the
// connection string they were given.
func scrubPasswords(msg, connString string) string {
	var secrets []string
	if urlScheme.MatchString(connString) {
		if m := urlPassword.FindStringSubmatch(connString); m != nil {
			secrets = append(secrets, strings.TrimSuffix(m[0][len(m[1]):], "@"))
		}
		for _, m := range queryPassword.FindAllStringSubmatch(connString, -1) {
			secrets = append(secrets, m[0][len(m[1]):])
		}
	} else {
		for _, m := range dsnPassword.FindAllStringSubmatch(connString, -1) {
			secrets = append(secrets, m[0][len(m[1]):])
		}
	}
	for _, s := range secrets {
		variants := []string{s, strings.Trim(s, "'")}
		if u, err := url.QueryUnescape(s); err == nil {
			variants = append(variants, u)
		}
		if u, err := url.PathUnescape(s); err == nil {
			variants = append(variants, u)
		}
		for _, v := range variants {
			if v != "" {
				msg = strings.ReplaceAll(msg, v, redacted)
			}
		}
	}
	return msg
}
