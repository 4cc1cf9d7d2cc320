"""Reports: PDF pages, tables and the summary, drawn from the tidy tables alone (no torch, no training)."""
