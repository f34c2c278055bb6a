package plugins

import (
	"slices"
	"testing"

	"switchyard/gateway"
)

func TestRegisterAll(t *testing.T) {
	reg := gateway.NewRegistry()
	RegisterAll(reg)
	if got, want := reg.Kinds(), []string{"agent", "cache", "defaults", "guard", "headers", "ratelimit", "retrieval"}; !slices.Equal(got, want) {
		t.Errorf("registered kinds = %v, want %v", got, want)
	}
	if got, want := reg.BackendKinds(), []string{"kserve", "openai", "sim"}; !slices.Equal(got, want) {
		t.Errorf("registered backend kinds = %v, want %v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering the built-in stages twice did not panic")
		}
	}()
	RegisterAll(reg)
}
