"""A small Python client of the dropsearch HTTP API (httpx), over its ``/v1`` routes.

Example::

    >>> client = Client("http://127.0.0.1:8000", api_key="ds_...")  # doctest: +SKIP
    >>> search = client.submit({"model": {"name": "convnet"}, "dataset": {"name": "digits"}})  # doctest: +SKIP
    >>> for event in client.events(search["id"]):  # doctest: +SKIP
    ...     print(event["event"], event["data"])
    >>> pattern = client.best(search["id"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ApiError", "Client", "FINAL_STATUSES", "parse_sse"]

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class ApiError(Exception):
    """The API answered with an error status; ``detail`` is the server's explanation."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class Client:
    """Talk to a dropsearch API.

    Args:
        base_url: e.g. ``"http://127.0.0.1:8000"``.
        api_key: the bearer key (``ds_...``).
        timeout: seconds for each ordinary request. Default: 30.0
        transport: an httpx transport (e.g. ``httpx.ASGITransport`` in tests). Default: real HTTP
    """

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response

    def submit(self, spec: Mapping[str, Any] | Any) -> dict[str, Any]:
        """Submit a job spec (a dict, or a :class:`~dropsearch.search.spec.SearchSpec`); returns the new search."""
        body = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)
        return self._request("POST", "/v1/searches", json=body).json()

    def get(self, search_id: str) -> dict[str, Any]:
        """One search: status, progress, best reward."""
        return self._request("GET", f"/v1/searches/{search_id}").json()

    def list(self, *, limit: int = 50, offset: int = 0, status: str | None = None) -> dict[str, Any]:
        """One page of your searches, newest first: ``{"data": [...], "count": total}``."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        return self._request("GET", "/v1/searches", params=params).json()

    def trials(self, search_id: str, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """One page of a search's trials by index: ``{"data": [...], "count": total}``."""
        params = {"limit": limit, "offset": offset}
        return self._request("GET", f"/v1/searches/{search_id}/trials", params=params).json()

    def all_trials(self, search_id: str) -> list[dict[str, Any]]:
        """Every trial of a search by index (all pages)."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.trials(search_id, limit=200, offset=len(out))
            out += page["data"]
            if not page["data"] or len(out) >= page["count"]:
                return out

    def trials_csv(self, search_id: str) -> str:
        """Every trial of a search as one CSV table (one row per trial, per-epoch metrics as columns)."""
        return self._request("GET", f"/v1/searches/{search_id}/trials", params={"format": "csv"}).text

    def extend(self, search_id: str, trials: int) -> dict[str, Any]:
        """Continue a succeeded search with ``trials`` more trials (same controller); returns the queued search."""
        return self._request("POST", f"/v1/searches/{search_id}/extend", json={"trials": trials}).json()

    def spec_schema(self) -> dict[str, Any]:
        """The JSON schema of a job spec (what ``POST /v1/searches`` accepts)."""
        return self._request("GET", "/v1/spec-schema").json()

    def cancel(self, search_id: str) -> dict[str, Any]:
        """Cancel a search (queued: at once; running: the runner stops it); returns the search."""
        return self._request("POST", f"/v1/searches/{search_id}/cancel").json()

    def resume(self, search_id: str) -> dict[str, Any]:
        """Queue a failed or cancelled search again (finished trials are kept); returns the search."""
        return self._request("POST", f"/v1/searches/{search_id}/resume").json()

    def best(self, search_id: str, *, path: str | Path | None = None) -> dict[str, Any]:
        """The best pattern document with provenance; also written to ``path`` when given."""
        response = self._request("GET", f"/v1/searches/{search_id}/best")
        if path is not None:
            Path(path).write_bytes(response.content)
        return response.json()

    def plot(self, search_id: str) -> bytes:
        """The reward plot as PNG bytes."""
        return self._request("GET", f"/v1/searches/{search_id}/plot.png").content

    def mask(self, trial_id: str, *, seed: int = 0) -> bytes:
        """The picture of a trial's dropout masks as PNG bytes."""
        return self._request("GET", f"/v1/trials/{trial_id}/mask.png", params={"seed": seed}).content

    def catalog(self) -> dict[str, Any]:
        """Models, datasets and variants the server knows."""
        return self._request("GET", "/v1/catalog").json()

    def events(
        self, search_id: str, *, after: int = 0, reconnects: int = 3, read_timeout: float | None = 60.0
    ) -> Iterator[dict[str, Any]]:
        """Follow a search's server-sent events until the server ends the stream.

        Yields ``{"id": int | None, "event": kind, "data": parsed JSON}``; the last one is ``event == "end"`` with
        the final status. A dropped connection is resumed after the last event id, at most ``reconnects`` times.

        Raises:
            ApiError: for an error status (e.g. 404 for an unknown search).
        """
        cursor, failures = after, 0
        while True:
            try:
                for message in self._stream_once(search_id, cursor, read_timeout):
                    if message["id"] is not None:
                        cursor = message["id"]
                    yield message
                    if message["event"] == "end":
                        return
                return  # the server closed the stream without an end event
            except (httpx.TransportError, httpx.RemoteProtocolError):
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(2.0, 0.2 * failures))

    def _stream_once(self, search_id: str, after: int, read_timeout: float | None) -> Iterator[dict[str, Any]]:
        headers = {"Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = str(after)
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        with self._http.stream("GET", f"/v1/searches/{search_id}/events", headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                try:
                    detail = response.json().get("detail", response.text)
                except ValueError:
                    detail = response.text
                raise ApiError(response.status_code, detail)
            yield from parse_sse(response.iter_lines())

    def wait(self, search_id: str, timeout: float = 3600.0, *, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the search is succeeded, failed or cancelled; returns it.

        Raises:
            TimeoutError: naming the search and its last status after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            search = self.get(search_id)
            if search["status"] in FINAL_STATUSES:
                return search
            if time.monotonic() >= deadline:
                raise TimeoutError(f"search {search_id} still {search['status']} after {timeout} s")
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse server-sent-event lines into ``{"id", "event", "data"}`` dicts (comments and ``retry`` skipped)."""
    event_id: int | None = None
    kind, data = "message", []
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    parsed: Any = json.loads(text)
                except ValueError:
                    parsed = text
                yield {"id": event_id, "event": kind, "data": parsed}
            event_id, kind, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            event_id = int(value) if value.isdigit() else None
        elif field == "event":
            kind = value
        elif field == "data":
            data.append(value)
