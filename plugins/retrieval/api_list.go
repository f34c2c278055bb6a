package retrieval

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"
)

// listParams are the query parameters of a list, as OpenAI's: limit,
// order (asc or desc by creation, desc by default), and the cursors
// after and before, each the id of an object of the list.
type listParams struct {
	limit         int
	desc          bool
	after, before string
	filter        string // a vector store file status (vector store file lists)
}

// parseList parses a list's query parameters; def and maxLimit bound
// limit. withBefore and withFilter say whether the list takes them.
func parseList(args *fasthttp.Args, def, maxLimit int, withBefore, withFilter bool) (listParams, error) {
	p := listParams{limit: def, desc: true}
	var err error
	args.VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		switch key := string(k); key {
		case "limit":
			n, perr := strconv.Atoi(string(v))
			if perr != nil || n < 1 || n > maxLimit {
				err = errInvalid("limit", "Invalid 'limit': %q must be an integer from 1 to %d.", v, maxLimit)
				return
			}
			p.limit = n
		case "order":
			switch string(v) {
			case "asc":
				p.desc = false
			case "desc":
				p.desc = true
			default:
				err = errInvalid("order", "Invalid 'order': %q (want asc or desc).", v)
			}
		case "after":
			p.after = string(v)
		case "before":
			if !withBefore {
				return
			}
			p.before = string(v)
		case "filter":
			if !withFilter {
				return
			}
			switch s := string(v); s {
			case statusInProgress, statusCompleted, statusFailed, statusCancelled:
				p.filter = s
			default:
				err = errInvalid("filter", "Invalid 'filter': %q (want in_progress, completed, failed or cancelled).", v)
			}
		}
	})
	return p, err
}

// listKey orders a list: by creation time, then id.
type listKey struct {
	created int64
	id      string
}

func (a listKey) compare(b listKey) int {
	if c := cmp.Compare(a.created, b.created); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// paginate sorts items in the order p asks and returns the page of at
// most p.limit items after p.after and before p.before, and whether more
// items follow it (in the direction of the walk: after the page when
// walking forward, before it with only before set). A cursor is found in
// items by id, else placed by the time in an id the APIs made (an object
// deleted between two pages); another unknown cursor is a 400.
func paginate[T any](items []T, key func(T) listKey, p listParams) ([]T, bool, error) {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b T) int {
		c := key(a).compare(key(b))
		if p.desc {
			return -c
		}
		return c
	})
	cursor := func(id, param string) (listKey, error) {
		for _, it := range sorted {
			if k := key(it); k.id == id {
				return k, nil
			}
		}
		if t, ok := idTime(id); ok {
			return listKey{created: t, id: id}, nil
		}
		return listKey{}, errInvalid(param, "Invalid '%s': no object %q in this list.", param, id)
	}
	// pos reports whether k comes strictly after c in the walk's order.
	after := func(k, c listKey) bool {
		if p.desc {
			return k.compare(c) < 0
		}
		return k.compare(c) > 0
	}
	lo, hi := 0, len(sorted)
	if p.after != "" {
		c, err := cursor(p.after, "after")
		if err != nil {
			return nil, false, err
		}
		for lo < hi && !after(key(sorted[lo]), c) {
			lo++
		}
	}
	if p.before != "" {
		c, err := cursor(p.before, "before")
		if err != nil {
			return nil, false, err
		}
		for hi > lo && !after(c, key(sorted[hi-1])) {
			hi--
		}
	}
	if hi-lo <= p.limit {
		return sorted[lo:hi], false, nil
	}
	if p.before != "" && p.after == "" {
		// Walking back: the items just before the cursor.
		return sorted[hi-p.limit : hi], true, nil
	}
	return sorted[lo : lo+p.limit], true, nil
}

// listPage is a list answer: ListFilesResponse, ListVectorStoresResponse,
// ListVectorStoreFilesResponse.
type listPage[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	FirstID string `json:"first_id"`
	LastID  string `json:"last_id"`
	HasMore bool   `json:"has_more"`
}

func newListPage[T any](data []T, hasMore bool, id func(T) string) listPage[T] {
	pg := listPage[T]{Object: "list", Data: data, HasMore: hasMore}
	if pg.Data == nil {
		pg.Data = []T{}
	}
	if len(data) > 0 {
		pg.FirstID, pg.LastID = id(data[0]), id(data[len(data)-1])
	}
	return pg
}
