"""HTML reports (issue: comparison reports)."""
