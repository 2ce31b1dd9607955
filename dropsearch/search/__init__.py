"""dropsearch.search."""
