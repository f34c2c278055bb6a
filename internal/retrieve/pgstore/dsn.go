package pgstore

import (
	"errors"
	"net/url"
	"strings"
)

// dsnPassword returns the password written in a DSN, URL
// (postgres://user:pw@host/db, or ?password=pw) or key=value
// (password=pw, or password='p w'), "" when there is none.
func dsnPassword(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// Unparsable: take what lies between the user's colon and @.
			rest := dsn[strings.Index(dsn, "//")+2:]
			if at := strings.LastIndexByte(rest, '@'); at >= 0 {
				if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
					return rest[c+1 : at]
				}
			}
			return ""
		}
		if p, ok := u.User.Password(); ok {
			return p
		}
		return u.Query().Get("password")
	}
	for s := dsn; s != ""; {
		s = strings.TrimLeft(s, " \t\n\r")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return ""
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t\n\r")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			i := 1
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			s = s[min(i+1, len(s)):]
		} else {
			i := strings.IndexAny(s, " \t\n\r")
			if i < 0 {
				i = len(s)
			}
			val.WriteString(s[:i])
			s = s[i:]
		}
		if key == "password" {
			return val.String()
		}
	}
	return ""
}

// scrub returns err, or when its message holds the password (or its URL
// escaping), an error with the same message, the password replaced: the
// chain is dropped, as unwrapping would give the password back.
func scrub(err error, pw string) error {
	if err == nil || pw == "" {
		return err
	}
	msg := err.Error()
	out := msg
	for _, p := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
		if p != "" {
			out = strings.ReplaceAll(out, p, "[redacted]")
		}
	}
	if out == msg {
		return err
	}
	return errors.New(out)
}
