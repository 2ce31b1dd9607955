"""Real HTTP for the end-to-end tests: the package's threaded uvicorn server under the names the tests use."""

from __future__ import annotations

from dropsearch.api.threaded_server import free_port, serve_in_thread

serve = serve_in_thread

__all__ = ["free_port", "serve"]
