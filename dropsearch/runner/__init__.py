"""dropsearch.runner."""
