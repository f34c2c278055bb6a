package retrieval

import "switchyard/gateway"

// fileIDPrefix starts the ids of the Files API's files.
const fileIDPrefix = "file-"

// apiState is what the Files and Vector Stores APIs keep per generation.
type apiState struct{}

// registerAPI adds the Files and Vector Stores endpoints (being built).
func registerAPI(reg *gateway.Registry) {}

// openAPI prepares the APIs' state when the generation is built (env.Live
// false: validation only).
func (l *Library) openAPI(env *gateway.Env) error { return nil }

// closeAPI releases it when the generation retires.
func (l *Library) closeAPI() error { return nil }
