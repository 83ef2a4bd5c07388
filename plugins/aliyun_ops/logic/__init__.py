"""Pure logic (no I/O): naming, provenance tags, target selection, error budgets, retention, reports."""
