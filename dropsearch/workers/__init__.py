"""dropsearch.workers."""
