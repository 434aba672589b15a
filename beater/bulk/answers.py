"""The shipper's answer: the engine's own, streamed from its spool, or as estrom rewrote it.

Items refused by the writer's screen are put back in the engine's answer
(``beater/bulk/screen.py``), a ``filter_path`` is applied to the answer the
engine gave in full (``beater/bulk/filter_path.py``), and every item refused
means no request to the engine at all: its answer is made here.
"""

from __future__ import annotations

import json
from typing import IO

from twisted.protocols.basic import FileSender
from twisted.web.http import Request

from beater.bulk.filter_path import FilterPath
from beater.bulk.items import compact
from beater.bulk.screen import Screened, refused_only_answer
from beater.http.drain import close_after
from beater.http.forwarder import EngineAnswer, forwarded_headers
from common.http import answered_or_gone


async def send_answer(request: Request, answer: EngineAnswer, draining: bool) -> None:
    """The engine's status, headers and body, streamed from the spool; ``draining``: the connection closes after."""
    try:
        if answered_or_gone(request):
            return
        request.setResponseCode(answer.status, answer.phrase)
        for name, values in forwarded_headers(answer.headers).getAllRawHeaders():
            request.responseHeaders.setRawHeaders(name, values)
        if draining:
            close_after(request)
        if request.method == b"HEAD":
            length = answer.headers.getRawHeaders(b"content-length", [b"0"])[0]
            request.setHeader(b"content-length", length)
            request.finish()
            return
        request.setHeader(b"content-length", str(answer.length).encode())
        await FileSender().beginFileTransfer(answer.body, request)
        if not answered_or_gone(request):
            request.finish()
    finally:
        answer.body.close()


async def answer_refused(request: Request, screened: Screened, wanted: FilterPath | None) -> None:
    """Every item refused: answered as the engine would, without asking it (its filter_path too)."""
    body = refused_only_answer(screened.refused)
    if wanted is not None:
        body = compact(wanted.apply(json.loads(body)))
    request.setResponseCode(200)
    request.setHeader(b"content-type", b"application/json; charset=UTF-8")
    request.setHeader(b"content-length", str(len(body)).encode())
    request.write(body)
    request.finish()


def replace_body(answer: EngineAnswer, body: IO[bytes]) -> None:
    """Answer with ``body`` (rewritten from the engine's) instead of the engine's own."""
    answer.body.close()
    answer.body = body
    body.seek(0, 2)
    answer.length = body.tell()
    body.seek(0)


def is_json(answer: EngineAnswer) -> bool:
    """Whether the engine says its answer is JSON."""
    kind = (answer.headers.getRawHeaders(b"content-type") or [b""])[0]
    return b"json" in kind.lower()
