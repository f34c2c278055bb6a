package respool_test

import (
	"fmt"

	"switchyard/internal/respool"
)

type client struct{ url string }

func (c *client) Close() error { fmt.Println("closing", c.url); return nil }

// A reload: the new generation takes its uses before the old one gives its
// back, so an unchanged client is kept and a dropped one is closed.
func ExampleGet() {
	pool := respool.New()
	connect := func(url string) func() (*client, error) {
		return func() (*client, error) { fmt.Println("connecting", url); return &client{url}, nil }
	}
	key := func(url string) string { k, _ := respool.Key("redis", url); return k }

	gen1 := pool.Lease()
	a1, _ := respool.Get(gen1, key("redis://a"), connect("redis://a"))
	_, _ = respool.Get(gen1, key("redis://b"), connect("redis://b"))

	gen2 := pool.Lease() // the reload's generation: only a remains
	a2, _ := respool.Get(gen2, key("redis://a"), connect("redis://a"))
	fmt.Println("same client:", a1 == a2)
	_ = gen1.Release() // gen1 retires

	_ = gen2.Release() // shutdown
	// Output:
	// connecting redis://a
	// connecting redis://b
	// same client: true
	// closing redis://b
	// closing redis://a
}
