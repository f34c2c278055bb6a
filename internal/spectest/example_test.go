package spectest_test

import (
	"errors"
	"fmt"

	"switchyard/internal/spectest"
)

func ExampleSpec_Validate() {
	s, err := spectest.Load()
	if errors.Is(err, spectest.ErrNoSpec) {
		fmt.Println("spec absent")
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	err = s.Validate("ErrorResponse", []byte(`{"error":{"message":"x","type":"invalid_request_error","code":null}}`))
	fmt.Println(err)
	// Prints (no Output comment, since the spec may be absent):
	// spectest: body does not match ErrorResponse:
	//   at /error: missing property 'param'
}
