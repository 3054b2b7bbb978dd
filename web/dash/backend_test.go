package dash

import "hearth/web/api"

// The API's operations layer is the dashboard's backend, with no adapter.
var _ Backend = (*api.Service)(nil)
