package retrieval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"switchyard/gateway"
	"switchyard/internal/retrieve"
)

// Attributes of a vector store file carry its ACL in three reserved keys,
// each a comma-separated list (attribute values are strings, numbers or
// booleans); the other attributes are the document's metadata, which
// filters see.
const (
	attrACLTenants = "acl_tenants"
	attrACLGroups  = "acl_groups"
	attrACLKeys    = "acl_keys"
)

// OpenAI's bounds of attributes and metadata: 16 keys of up to 64
// characters, string values of up to 512 characters.
const (
	maxAttrKeys   = 16
	maxAttrKeyLen = 64
	maxAttrValLen = 512
)

// parseAttributes parses the attributes of a request: a JSON object of
// up to 16 keys whose values are strings, numbers or booleans, or null
// (none). Numbers become float64.
func parseAttributes(raw json.RawMessage, param string) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, errInvalid(param, "Invalid '%s': expected an object of string, number or boolean values.", param)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, errInvalid(param, "Invalid '%s': %s", param, strings.TrimPrefix(err.Error(), "json: "))
	}
	if len(m) > maxAttrKeys {
		return nil, errInvalid(param, "Invalid '%s': %d keys, at most %d.", param, len(m), maxAttrKeys)
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		p := param + "." + k
		if k == "" || !utf8.ValidString(k) || utf8.RuneCountInString(k) > maxAttrKeyLen {
			return nil, errInvalid(param, "Invalid '%s': key %q must be 1 to %d characters.", param, k, maxAttrKeyLen)
		}
		switch v := m[k].(type) {
		case string:
			if utf8.RuneCountInString(v) > maxAttrValLen {
				return nil, errInvalid(p, "Invalid '%s': a string value is at most %d characters.", p, maxAttrValLen)
			}
			out[k] = v
		case bool:
			out[k] = v
		case json.Number:
			f, err := v.Float64()
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, errInvalid(p, "Invalid '%s': %s is not a finite number.", p, v)
			}
			out[k] = f
		default:
			return nil, errInvalid(p, "Invalid '%s': values are strings, numbers or booleans, got %s.", p, describeJSON(m[k]))
		}
	}
	return out, nil
}

// describeJSON names the kind of a decoded JSON value.
func describeJSON(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// aclOf splits attributes into the document's ACL and metadata, as the
// caller p may set them. A caller may only narrow what its own scope
// sees:
//
//   - without acl_* keys, the ACL is the caller's scope: its tenant, else
//     its key; on an open gateway (p nil) none (public);
//   - a caller with a tenant always gets its tenant in the ACL, and
//     acl_tenants may name only it;
//   - a caller without a tenant always gets exactly its own key in
//     acl_keys, and may not set acl_tenants;
//   - acl_groups (and, for a caller with a tenant, acl_keys) narrow
//     further.
//
// Anything else is a 403 permission_error, so that no caller can make a
// document that another tenant's (or another key's) searches find.
func aclOf(attrs map[string]any, p *gateway.Principal, param string) (retrieve.ACL, map[string]any, error) {
	var acl retrieve.ACL
	var meta map[string]any
	given := map[string][]string{}
	for k, v := range attrs {
		switch k {
		case attrACLTenants, attrACLGroups, attrACLKeys:
			s, ok := v.(string)
			if !ok {
				return acl, nil, errInvalid(param+"."+k, "Invalid '%s.%s': a comma-separated string of names.", param, k)
			}
			given[k] = splitNames(s)
		default:
			if meta == nil {
				meta = map[string]any{}
			}
			meta[k] = v
		}
	}
	acl.Groups = given[attrACLGroups]
	switch {
	case p == nil:
		// An open gateway: the caller's scope is everything; any ACL
		// narrows it.
		acl.Tenants, acl.Keys = given[attrACLTenants], given[attrACLKeys]
	case p.Tenant != "":
		for _, t := range given[attrACLTenants] {
			if t != p.Tenant {
				return acl, nil, errPermission(param+"."+attrACLTenants, "'%s.%s' may name only your own tenant (%s).", param, attrACLTenants, p.Tenant)
			}
		}
		acl.Tenants = []string{p.Tenant}
		acl.Keys = given[attrACLKeys]
	default:
		if _, ok := given[attrACLTenants]; ok {
			return acl, nil, errPermission(param+"."+attrACLTenants, "'%s.%s' may not be set by a key without a tenant.", param, attrACLTenants)
		}
		if k, ok := given[attrACLKeys]; ok && !(len(k) == 1 && k[0] == p.KeyID) {
			return acl, nil, errPermission(param+"."+attrACLKeys, "'%s.%s' must be exactly your own key (%s): a key without a tenant may only narrow to itself.", param, attrACLKeys, p.KeyID)
		}
		acl.Keys = []string{p.KeyID}
	}
	for _, l := range [][]string{acl.Tenants, acl.Groups, acl.Keys} {
		if len(l) > 64 {
			return acl, nil, errInvalid(param, "Invalid '%s': an ACL list holds at most 64 names.", param)
		}
	}
	return acl, meta, nil
}

// splitNames splits a comma-separated list, trimming spaces, dropping
// empty items and repeats.
func splitNames(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// parseMetadata parses a vector store's metadata: up to 16 string values,
// keys of up to 64 characters, values of up to 512; null is none.
func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errInvalid("metadata", "Invalid 'metadata': expected an object of string values.")
	}
	if len(m) > maxAttrKeys {
		return nil, errInvalid("metadata", "Invalid 'metadata': %d keys, at most %d.", len(m), maxAttrKeys)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		switch {
		case k == "" || utf8.RuneCountInString(k) > maxAttrKeyLen:
			return nil, errInvalid("metadata", "Invalid 'metadata': key %q must be 1 to %d characters.", k, maxAttrKeyLen)
		case !ok:
			return nil, errInvalid("metadata."+k, "Invalid 'metadata.%s': values are strings.", k)
		case utf8.RuneCountInString(s) > maxAttrValLen:
			return nil, errInvalid("metadata."+k, "Invalid 'metadata.%s': at most %d characters.", k, maxAttrValLen)
		}
		out[k] = s
	}
	return out, nil
}

// chunkingOut is a vector store file's chunking_strategy: static with the
// collection's settings when OpenAI's bounds allow (100 to 4096 tokens),
// else other.
type chunkingOut struct {
	Type   string        `json:"type"`
	Static *staticChunks `json:"static,omitempty"`
}

type staticChunks struct {
	MaxChunkSizeTokens int `json:"max_chunk_size_tokens"`
	ChunkOverlapTokens int `json:"chunk_overlap_tokens"`
}

// chunkingOf returns the chunking_strategy of a collection's files.
func chunkingOf(c *Coll) chunkingOut {
	mt, ov := c.Spec.Chunking.MaxTokens, max(c.Spec.Chunking.OverlapTokens, 0)
	if mt < 100 || mt > 4096 || ov > mt/2 {
		return chunkingOut{Type: "other"}
	}
	return chunkingOut{Type: "static", Static: &staticChunks{MaxChunkSizeTokens: mt, ChunkOverlapTokens: ov}}
}

// checkChunking checks a request's chunking_strategy against the
// collection's: auto (or none) is it; static must be its settings, since
// a collection chunks all its documents one way (collections[].chunking).
func checkChunking(raw json.RawMessage, c *Coll, param string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var cs struct {
		Type   string          `json:"type"`
		Static json.RawMessage `json:"static"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cs); err != nil {
		return errInvalid(param, "Invalid '%s': expected {\"type\": \"auto\"} or {\"type\": \"static\", \"static\": {...}}.", param)
	}
	switch cs.Type {
	case "auto":
		return nil
	case "static":
	default:
		return errInvalid(param+".type", "Invalid '%s.type': %q (want auto or static).", param, cs.Type)
	}
	var st struct {
		Max     *int `json:"max_chunk_size_tokens"`
		Overlap *int `json:"chunk_overlap_tokens"`
	}
	dec = json.NewDecoder(bytes.NewReader(cs.Static))
	dec.DisallowUnknownFields()
	if len(cs.Static) == 0 || dec.Decode(&st) != nil || st.Max == nil || st.Overlap == nil {
		return errInvalid(param+".static", "Invalid '%s.static': expected {\"max_chunk_size_tokens\": N, \"chunk_overlap_tokens\": M}.", param)
	}
	if *st.Max < 100 || *st.Max > 4096 || *st.Overlap < 0 || *st.Overlap > *st.Max/2 {
		return errInvalid(param+".static", "Invalid '%s.static': max_chunk_size_tokens is 100 to 4096 and chunk_overlap_tokens at most half of it.", param)
	}
	mt, ov := c.Spec.Chunking.MaxTokens, max(c.Spec.Chunking.OverlapTokens, 0)
	if *st.Max != mt || *st.Overlap != ov {
		return errInvalid(param, "Vector store %s chunks every file with max_chunk_size_tokens %d and chunk_overlap_tokens %d (collections[].chunking for a collection of the config); a file cannot be chunked otherwise: use {\"type\": \"auto\"}.", c.Name, mt, ov)
	}
	return nil
}
