"""Building blocks specific to the bundled DAGs (params, validation, reporting)."""
