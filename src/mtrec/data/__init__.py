"""Data: sources, the exposure-log schema, negative exposures, splits, torch datasets."""
