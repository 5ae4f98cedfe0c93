package api

// RoutePatterns returns the ServeMux pattern of every route, for the test
// that holds the OpenAPI document and the routes to each other.
func RoutePatterns() []string {
	var patterns []string
	for _, rt := range (&server{}).routes() {
		patterns = append(patterns, rt.pattern)
	}
	return patterns
}
