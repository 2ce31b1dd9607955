"""dropsearch.api: the HTTP API (FastAPI): routes, auth, server-sent events, plots.

``create_app(settings)`` builds the app; ``uvicorn dropsearch.api.app:app`` serves one built from the
environment. This package imports the store and the job spec, never torch or Ray at import time (the mask
picture route imports torch lazily).
"""

from dropsearch.api.app import create_app

__all__ = ["create_app"]
