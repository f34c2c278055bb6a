package retrieve

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ACL says who may see a document. Each non-empty list is a requirement and
// all of them must hold: the principal's tenant is one of Tenants, one of
// its groups is one of Groups, its key is one of Keys. An empty list does
// not restrict, so the zero ACL lets everyone see the document. So
// {Tenants: [acme], Groups: [hr]} is "members of hr within acme", never
// "anyone at acme or anyone in a group called hr elsewhere".
type ACL struct {
	Tenants []string `json:"tenants,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Keys    []string `json:"keys,omitempty"`
}

// Principal is who makes a search: the gateway's authenticated key, its
// tenant and its groups.
type Principal struct {
	KeyID  string
	Tenant string
	Groups []string
}

// maxACLEntries bounds each list of an ACL.
const maxACLEntries = 256

// IsPublic reports whether the ACL lets everyone see the document.
func (a ACL) IsPublic() bool {
	return len(a.Tenants) == 0 && len(a.Groups) == 0 && len(a.Keys) == 0
}

// Allows reports whether p may see a document with this ACL.
func (a ACL) Allows(p Principal) bool {
	if len(a.Tenants) > 0 && (p.Tenant == "" || !slices.Contains(a.Tenants, p.Tenant)) {
		return false
	}
	if len(a.Keys) > 0 && (p.KeyID == "" || !slices.Contains(a.Keys, p.KeyID)) {
		return false
	}
	if len(a.Groups) > 0 {
		for _, g := range p.Groups {
			if g != "" && slices.Contains(a.Groups, g) {
				return true
			}
		}
		return false
	}
	return true
}

// canonical returns the ACL with each list sorted and without repeats, and
// a string that is equal for equal ACLs (the key of its class).
func (a ACL) canonical() (ACL, string, error) {
	var b strings.Builder
	var out ACL
	for i, l := range [3]*[]string{&a.Tenants, &a.Groups, &a.Keys} {
		name := [3]string{"tenants", "groups", "keys"}[i]
		if len(*l) > maxACLEntries {
			return ACL{}, "", fmt.Errorf("acl.%s: %d entries, at most %d", name, len(*l), maxACLEntries)
		}
		for j, s := range *l {
			if s == "" || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				return ACL{}, "", fmt.Errorf("acl.%s[%d]: %q is not a non-empty UTF-8 name without NUL", name, j, s)
			}
		}
		c := slices.Compact(slices.Sorted(slices.Values(*l)))
		if len(c) == 0 {
			c = nil
		}
		*[3]*[]string{&out.Tenants, &out.Groups, &out.Keys}[i] = c
		b.WriteString(name)
		for _, s := range c {
			b.WriteByte(0)
			b.WriteString(s)
		}
		b.WriteByte(1)
	}
	return out, b.String(), nil
}
