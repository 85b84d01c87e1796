// Package docscheck holds no code, only tests: they keep the documentation
// (README.md, docs/, the examples' and the chart's Markdown) navigable by
// checking that every relative link, and every "docs/….md#anchor" or
// "README.md#anchor" a Go comment cites, names a file that exists and, for
// an anchor into a Markdown file, one of its headings.
package docscheck
