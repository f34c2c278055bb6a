package retrieval_test

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchyard/internal/gwtest"
)

// testACL is the property test's own model of a document's ACL, written
// from the rules (docs/retrieval-api.md), not from the code under test.
type testACL struct{ tenants, groups, keys []string }

func (a testACL) admits(key string) bool {
	p := apiPrincipals[key]
	if len(a.tenants) > 0 && (p.tenant == "" || !slices.Contains(a.tenants, p.tenant)) {
		return false
	}
	if len(a.keys) > 0 && !slices.Contains(a.keys, key) {
		return false
	}
	if len(a.groups) > 0 {
		for _, g := range p.groups {
			if slices.Contains(a.groups, g) {
				return true
			}
		}
		return false
	}
	return true
}

func testScope(key string) string {
	if t := apiPrincipals[key].tenant; t != "" {
		return "tenant:" + t
	}
	return "key:" + key
}

// TestAPIACLProperty: random principals, files, attributes (ACLs, some
// not allowed), vector stores, detaches and deletes; then no principal
// ever gets a chunk, a listed file, a count or file content outside its
// ACL, through search, file content, vector store file content or lists,
// and lists show exactly what it may see.
func TestAPIACLProperty(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("SWITCHYARD_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (SWITCHYARD_PROPERTY_SEED=%d to repeat)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, ""))
	keys := sortedMapKeys(apiKeys)
	pick := func(l []string) string { return l[rng.IntN(len(l))] }
	subset := func(l []string) []string {
		var out []string
		for _, s := range l {
			if rng.IntN(3) == 0 {
				out = append(out, s)
			}
		}
		return out
	}

	type file struct {
		owner string // key
		word  string
	}
	files := map[string]*file{}             // id -> file
	docs := map[string]map[string]testACL{} // vector store -> file id -> ACL
	stores := map[string]string{"docs": ""} // vector store -> creator's scope ("" for the config's)
	docs["docs"] = map[string]testACL{}

	var attached, refused, hidden, checks int
	for i := range 120 {
		key := pick(keys)
		switch op := rng.IntN(10); {
		case op < 3 || len(files) == 0: // upload
			word := fmt.Sprintf("zorblax%d", i)
			id := upload(t, g.URL, apiKeys[key], word+".md", "# "+word+"\n\nThe shared gizmo handbook mentions "+word+".\n")
			files[id] = &file{owner: key, word: word}
		case op < 4: // a vector store
			var vs struct {
				ID string `json:"id"`
			}
			do(t, "POST", g.URL+"/v1/vector_stores", apiKeys[key], `{}`).decode(t, &vs)
			stores[vs.ID], docs[vs.ID] = testScope(key), map[string]testACL{}
		case op < 8: // attach a file with random attributes
			// Mostly what the caller may use; sometimes anything.
			id, vs := pick(sortedMapKeys(files)), pick(sortedMapKeys(stores))
			if rng.IntN(5) != 0 {
				var own, open []string
				for fid, f := range files {
					if testScope(f.owner) == testScope(key) {
						own = append(own, fid)
					}
				}
				for sid, sc := range stores {
					if sc == "" || sc == testScope(key) {
						open = append(open, sid)
					}
				}
				sort.Strings(own)
				sort.Strings(open)
				if len(own) > 0 {
					id = pick(own)
				}
				vs = pick(open)
			}
			attrs := map[string]any{"n": float64(i)}
			p := apiPrincipals[key]
			want := testACL{}
			allowed := true
			if rng.IntN(2) == 0 {
				gr := subset([]string{"hr", "eng", "staff"})
				attrs["acl_groups"] = strings.Join(gr, ",")
				want.groups = gr
			}
			if rng.IntN(3) == 0 {
				ks := subset(keys)
				attrs["acl_keys"] = strings.Join(ks, ",")
				want.keys = ks
				if p.tenant == "" && !(len(ks) == 1 && ks[0] == key) {
					allowed = false
				}
			}
			if rng.IntN(4) == 0 {
				ts := subset([]string{"acme", "globex"})
				attrs["acl_tenants"] = strings.Join(ts, ",")
				for _, tn := range ts {
					if tn != p.tenant {
						allowed = false
					}
				}
				if p.tenant == "" {
					allowed = false
				}
			}
			if p.tenant != "" {
				want.tenants = []string{p.tenant}
			} else {
				want.keys = []string{key}
			}
			_, r := attachFile(t, g.URL, apiKeys[key], vs, id, attrs)
			visible := (stores[vs] == "" || stores[vs] == testScope(key)) && testScope(files[id].owner) == testScope(key)
			switch {
			case !visible:
				hidden++
				if r.status != 404 {
					t.Fatalf("%s attaches %s to %s it may not see: %d %s", key, id, vs, r.status, r.body)
				}
			case !allowed:
				refused++
				if r.status != 403 {
					t.Fatalf("%s attaches %s with %v: %d %s, want 403", key, id, attrs, r.status, r.body)
				}
			default:
				if r.status != 200 {
					t.Fatalf("%s attaches %s with %v: %d %s", key, id, attrs, r.status, r.body)
				}
				docs[vs][id] = want
				attached++
			}
		case op < 9: // detach
			vs := pick(sortedMapKeys(stores))
			if len(docs[vs]) == 0 {
				continue
			}
			id := pick(sortedMapKeys(docs[vs]))
			r := do(t, "DELETE", g.URL+"/v1/vector_stores/"+vs+"/files/"+id, apiKeys[key], nil)
			if r.status == 200 {
				if !docs[vs][id].admits(key) || testScope(files[id].owner) != testScope(key) {
					t.Fatalf("%s detached %s from %s, which it may not", key, id, vs)
				}
				delete(docs[vs], id)
			}
		default: // delete a file
			id := pick(sortedMapKeys(files))
			r := do(t, "DELETE", g.URL+"/v1/files/"+id, apiKeys[key], nil)
			if (r.status == 200) != (testScope(files[id].owner) == testScope(key)) {
				t.Fatalf("%s deletes %s of %s: %d", key, id, files[id].owner, r.status)
			}
			if r.status == 200 {
				delete(files, id)
				for _, d := range docs {
					delete(d, id)
				}
			}
		}
	}

	defer func() {
		t.Logf("%d attached, %d refused (403), %d not visible (404), %d vector stores, %d files; %d per-document checks", attached, refused, hidden, len(stores), len(files), checks)
	}()
	for _, key := range keys {
		k := apiKeys[key]
		// Files: exactly the scope's; content to those every document admits.
		var mine []string
		for id, f := range files {
			if testScope(f.owner) == testScope(key) {
				mine = append(mine, id)
			}
		}
		sort.Strings(mine)
		got := listIDs(t, g.URL+"/v1/files?order=asc", k)
		sort.Strings(got)
		if !slices.Equal(got, mine) {
			t.Errorf("%s lists files %v, want %v", key, got, mine)
		}
		for id, f := range files {
			want := 404
			if testScope(f.owner) == testScope(key) {
				want = 200
				for _, d := range docs {
					if acl, ok := d[id]; ok && !acl.admits(key) {
						want = 403
					}
				}
			}
			if r := do(t, "GET", g.URL+"/v1/files/"+id+"/content", k, nil); r.status != want {
				t.Errorf("%s: content of %s (%s's): %d, want %d", key, id, f.owner, r.status, want)
			}
		}
		for vs, scope := range stores {
			if scope != "" && scope != testScope(key) {
				if r := do(t, "GET", g.URL+"/v1/vector_stores/"+vs+"/files", k, nil); r.status != 404 {
					t.Errorf("%s lists the files of %s: %d", key, vs, r.status)
				}
				continue
			}
			var want []string
			for id, acl := range docs[vs] {
				if acl.admits(key) {
					want = append(want, id)
				}
			}
			sort.Strings(want)
			var got []string
			for _, id := range listIDs(t, g.URL+"/v1/vector_stores/"+vs+"/files?limit=100", k) {
				if strings.HasPrefix(id, "file-") {
					got = append(got, id)
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s lists in %s %v, want %v", key, vs, got, want)
			}
			var obj struct {
				FileCounts struct{ Total int } `json:"file_counts"`
			}
			do(t, "GET", g.URL+"/v1/vector_stores/"+vs, k, nil).decode(t, &obj)
			sources := 0
			if vs == "docs" {
				sources = 1
			}
			if obj.FileCounts.Total != len(want)+sources {
				t.Errorf("%s: %s counts %d files, it may see %d", key, vs, obj.FileCounts.Total, len(want)+sources)
			}
			// Search finds nothing it may not see, and each file it may
			// see by its word.
			for _, id := range searchIDs(t, g.URL, k, vs, map[string]any{"query": "shared gizmo handbook", "max_num_results": 50}) {
				if acl, ok := docs[vs][id]; strings.HasPrefix(id, "file-") && (!ok || !acl.admits(key)) {
					t.Errorf("%s: search of %s returns %s outside its ACL", key, vs, id)
				}
			}
			for id, acl := range docs[vs] {
				ids := searchIDs(t, g.URL, k, vs, map[string]any{"query": files[id].word, "max_num_results": 5})
				checks++
				if found := slices.Contains(ids, id); found != acl.admits(key) {
					t.Errorf("%s: search of %s for %s's word finds it: %v, want %v", key, vs, id, found, acl.admits(key))
				}
				want := 404
				if acl.admits(key) {
					want = 200
				}
				if r := do(t, "GET", g.URL+"/v1/vector_stores/"+vs+"/files/"+url.PathEscape(id)+"/content", k, nil); r.status != want {
					t.Errorf("%s: content of %s in %s: %d, want %d", key, id, vs, r.status, want)
				}
			}
		}
	}
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
