"""dropsearch.controller."""
