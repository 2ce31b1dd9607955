"""dropsearch.api."""
