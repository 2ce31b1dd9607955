"""The web dashboard: pages served by the API itself (plain HTML, CSS and vanilla JavaScript; no build step, no CDN).

:func:`~dropsearch.api.ui.routes.install_ui` adds ``/`` (redirect to ``/ui/``), ``/ui/`` (the caller's searches),
``/ui/searches/{search_id}`` (one search, live) and ``/ui/static/...`` to an app. The pages are static shells: the
browser keeps the API key in ``sessionStorage`` and calls the same authenticated ``/v1`` routes as any client.
"""
