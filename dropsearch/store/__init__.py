"""dropsearch.store."""
