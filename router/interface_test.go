package router

import "switchyard/internal/jsonscan"

// The gateway passes a *jsonscan.MetadataView as the request's metadata.
var _ MetadataGetter = (*jsonscan.MetadataView)(nil)
