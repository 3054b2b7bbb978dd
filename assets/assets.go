// Package assets holds the files the dashboard serves as they are: the
// stylesheet, the small scripts, and noVNC (copied from its npm package by
// `task assets`, not committed).
package assets

import "embed"

// Static is the tree under static/, served at /static/.
//
//go:embed all:static
var Static embed.FS
