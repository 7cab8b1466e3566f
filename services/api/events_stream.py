"""GET /v1/jobs/{id}/events: the job document's changes as Server-Sent Events, from a Firestore snapshot
listener (no polling).

Each SSE event is the whole job view, with id = the document's version (`event_count`, +1 per event the projector
applied): ids only grow, so a client reconnecting with `Last-Event-ID: n` gets the first version after n and
nothing it has seen. A version is the job's full state, so skipped intermediate versions lose nothing. Before the
projector has seen the job, one `PENDING` view is sent with id 0. The stream ends after a terminal state, or
after `max_s` (the client reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from . import views
from .store import ApiStore, Doc


def parse_last_event_id(value: str | None) -> int | None:
    """The version a reconnecting client has seen; None (start over) for a missing or foreign value."""
    if value is None:
        return None
    try:
        seen = int(value.strip())
    except ValueError:
        return None
    return seen if seen >= 0 else None


def _sse(view: Mapping[str, Any], event_id: int) -> dict[str, str]:
    return {"event": "job", "id": str(event_id), "data": json.dumps(view, separators=(",", ":"))}


async def job_events(
    job_id: str, claim: Doc | None, last_seen: int | None, store: ApiStore, max_s: float
) -> AsyncIterator[dict[str, str]]:
    loop = asyncio.get_running_loop()
    changes: asyncio.Queue[Doc | None] = asyncio.Queue()

    def on_change(doc: Doc | None) -> None:  # on the listener's thread
        with contextlib.suppress(RuntimeError):  # the loop closed: the stream is gone anyway
            loop.call_soon_threadsafe(changes.put_nowait, doc)

    unsubscribe = store.watch(job_id, on_change)
    deadline = time.monotonic() + max_s
    seen = last_seen
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                doc = await asyncio.wait_for(changes.get(), timeout=remaining)
            except TimeoutError:
                return
            if doc is None:
                if seen is None and claim is not None:
                    seen = 0
                    yield _sse(views.pending_view(job_id, claim), 0)
                continue
            current = views.version(doc)
            if seen is not None and current <= seen:
                if views.is_terminal(str(doc.get("status"))):
                    return  # a client that has seen the end reconnected: nothing more will come
                continue
            seen = current
            view = views.job_view(doc)
            yield _sse(view, current)
            if views.is_terminal(view["status"]):
                return
    finally:
        await asyncio.to_thread(unsubscribe)
