"""The API's request pipeline: body limits, one unit of work per request, idempotency keys.

:class:`ApiUnitOfWork` is a pure ASGI middleware wrapped around ``/api/`` paths. For each
request it

1. refuses bodies over the configured limit (413, checked on ``Content-Length`` and while
   reading, so a lying client is stopped too);
2. opens one SQLAlchemy session and puts it in ``request.state.session`` for the handler;
3. for a POST with ``Idempotency-Key``, reserves the key in that same transaction (see
   :mod:`siyu.kit.idempotency`);
4. buffers the response, commits when the status is below 400 (rolls back otherwise), and only
   then sends the response — so a client never sees success for a write that did not commit.

File uploads (paths under ``upload_prefixes``, e.g. ``/api/v1/imports``) are different: a body of
hundreds of megabytes must not be held in memory, so for them the body is **not** buffered but
passed through to the handler (Starlette's multipart parser spools the file to a temporary file)
while the middleware counts the bytes against the larger ``max_upload_bytes``. ``Idempotency-Key``
is not honoured there (there is no buffered body to fingerprint); an import is idempotent by its
rows' event ids instead. The handler may commit the session itself as it goes (an import commits
each chunk), and the middleware still commits what is left, or rolls it back, at the end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siyu.kit import idempotency
from siyu.kit.clock import utcnow
from siyu.kit.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE

FINISHING_THREADS = 40

log = logging.getLogger("siyu.http")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    pass


def _too_large(path: str, limit: int, declared: str | None = None) -> tuple[int, bytes]:
    detail = (
        f"the body has {declared} bytes; the limit is {limit}"
        if declared is not None
        else f"the body exceeds the limit of {limit} bytes"
    )
    return _problem(413, "payload-too-large", "Request body too large", detail, path)


def _problem(status: int, slug: str, title: str, detail: str, path: str) -> tuple[int, bytes]:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, "instance": path}
    return status, json.dumps(body, ensure_ascii=False).encode()


async def _send_bytes(send: Send, status: int, body: bytes, content_type: str, extra: list[Any]) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_finishing: anyio.CapacityLimiter | None = None


async def _finish(func: Callable[..., Any], *args: Any) -> None:
    """Commit, roll back or close a request's session in a worker thread of its own pool.

    Handlers run in the default thread pool (40 threads). If commits queued there too, forty
    handlers waiting on row locks (a hot coupon, a member's points account) would hold every
    thread while the commits that release those locks wait for one: the process stops. Ends of
    transactions therefore get their own threads.
    """
    global _finishing
    if _finishing is None:
        _finishing = anyio.CapacityLimiter(FINISHING_THREADS)
    await anyio.to_thread.run_sync(func, *args, limiter=_finishing)


async def _close(session: Session) -> None:
    """Close a request's session; only one that still holds a transaction (and so may roll back
    over the network) is closed in a worker thread — after a commit, a rollback, or when the
    request never touched the database, closing is instant and a thread hand-off would cost more
    than the whole close."""
    if session.in_transaction():
        await _finish(session.close)
    else:
        session.close()


class ApiUnitOfWork:
    """See the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        session_factory: Callable[[], sessionmaker[Session]],
        read_session_factory: Callable[[], sessionmaker[Session]],
        max_body_bytes: int,
        prefix: str = "/api/",
        upload_prefixes: tuple[str, ...] = (),
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.session_factory = session_factory
        self.read_session_factory = read_session_factory
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix
        self.upload_prefixes = upload_prefixes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        upload = method not in READ_METHODS and path.startswith(self.upload_prefixes)
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            status, body = _too_large(path, limit, declared)
            await _send_bytes(send, status, body, PROBLEM_MEDIA_TYPE, [])
            return

        if upload:
            await self._handle_upload(scope, receive, send, method, path)
            return

        if method in READ_METHODS:
            session = self.read_session_factory()()
            scope.setdefault("state", {})["session"] = session
            try:
                await self.app(scope, receive, send)
            finally:
                await _close(session)
            return

        try:
            body_bytes = await self._read_body(receive)
        except BodyTooLarge:
            status, body = _too_large(path, self.max_body_bytes)
            await _send_bytes(send, status, body, PROBLEM_MEDIA_TYPE, [])
            return

        session = self.session_factory()()
        scope.setdefault("state", {})["session"] = session
        try:
            await self._handle_write(scope, send, method, path, headers, body_bytes, session)
        finally:
            await _close(session)

    async def _handle_upload(
        self, scope: Scope, receive: Receive, send: Send, method: str, path: str
    ) -> None:
        """A write whose body streams to the handler, counted against ``max_upload_bytes``."""
        received = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_upload_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        session = self.session_factory()()
        scope.setdefault("state", {})["session"] = session
        try:
            try:
                await self.app(scope, counting_receive, capture)
            except BodyTooLarge:
                too_large = True
            status = int(start.get("status", 500))
            if too_large:
                await _finish(session.rollback)
                status, body = _too_large(path, self.max_upload_bytes)
                await _send_bytes(send, status, body, PROBLEM_MEDIA_TYPE, [])
                return
            if status < 400:
                try:
                    await _finish(session.commit)
                except (IntegrityError, OperationalError) as exc:
                    log.warning("commit failed on %s %s: %s", method, path, exc)
                    await _finish(session.rollback)
                    status, body = _problem(
                        409,
                        "write-conflict",
                        "Write conflict",
                        "the change conflicted with a concurrent one and was not saved; retry the request",
                        path,
                    )
                    await _send_bytes(send, status, body, PROBLEM_MEDIA_TYPE, [])
                    return
            else:
                await _finish(session.rollback)
            await send(
                {"type": "http.response.start", "status": status, "headers": list(start.get("headers", []))}
            )
            await send({"type": "http.response.body", "body": b"".join(chunks)})
        finally:
            await _close(session)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _handle_write(
        self,
        scope: Scope,
        send: Send,
        method: str,
        path: str,
        headers: dict[str, str],
        body_bytes: bytes,
        session: Session,
    ) -> None:
        idem_key = headers.get(idempotency.HEADER) if method == "POST" else None
        principal = idempotency.principal_of(headers.get("authorization"))
        if idem_key is not None:
            if not idempotency.valid_key(idem_key):
                status, body = _problem(
                    400,
                    "bad-idempotency-key",
                    "Bad Idempotency-Key",
                    f"Idempotency-Key must be 1–{idempotency.MAX_KEY_LENGTH} printable characters",
                    path,
                )
                await _send_bytes(send, status, body, PROBLEM_MEDIA_TYPE, [])
                return
            fingerprint = idempotency.request_fingerprint(method, path, body_bytes)
            replay = await run_in_threadpool(self._reserve, session, principal, idem_key, fingerprint, path)
            if replay is not None:
                status, content_type, body, extra = replay
                await _send_bytes(send, status, body, content_type, extra)
                return

        delivered = False

        async def replay_receive() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body_bytes, "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, replay_receive, capture)
        status = int(start.get("status", 500))
        response_headers: list[Any] = list(start.get("headers", []))
        body = b"".join(chunks)

        if idem_key is None and not session.in_transaction():
            # The handler wrote nothing through the session (a read-only POST, or a claim that
            # committed on its own): nothing to commit or roll back, no thread hand-off.
            pass
        elif status < 400:
            content_type = next(
                (v.decode("latin-1") for k, v in response_headers if k.lower() == b"content-type"),
                "application/json",
            )
            try:
                await _finish(
                    self._commit,
                    session,
                    principal,
                    idem_key,
                    idempotency.StoredResponse(status, content_type, body),
                )
            except (IntegrityError, OperationalError) as exc:
                log.warning("commit failed on %s %s: %s", method, path, exc)
                await _finish(session.rollback)
                status, body = _problem(
                    409,
                    "write-conflict",
                    "Write conflict",
                    "the change conflicted with a concurrent one and was not saved; retry the request",
                    path,
                )
                await _send_bytes(send, status, body, PROBLEM_MEDIA_TYPE, [])
                return
        else:
            await _finish(session.rollback)

        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _reserve(
        session: Session, principal: str, key: str, fingerprint: str, path: str
    ) -> tuple[int, str, bytes, list[Any]] | None:
        try:
            idempotency.reserve(session, principal, key, fingerprint, utcnow())
            return None
        except IntegrityError:
            session.rollback()
        existing = idempotency.find(session, principal, key)
        session.rollback()
        if existing is None:  # the other request rolled back between our insert and read
            idempotency.reserve(session, principal, key, fingerprint, utcnow())
            return None
        if existing.request_hash != fingerprint:
            status, body = _problem(
                409,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was already used with a different request; use a new key",
                path,
            )
            return status, PROBLEM_MEDIA_TYPE, body, []
        if existing.status_code is None or existing.response_body is None:
            status, body = _problem(
                409,
                "idempotency-key-in-flight",
                "Request in flight",
                "a request with this Idempotency-Key is still being processed; retry shortly",
                path,
            )
            return status, PROBLEM_MEDIA_TYPE, body, []
        return (
            existing.status_code,
            existing.content_type or "application/json",
            existing.response_body,
            [(b"idempotent-replayed", b"true")],
        )

    @staticmethod
    def _commit(
        session: Session, principal: str, key: str | None, response: idempotency.StoredResponse
    ) -> None:
        if key is not None:
            idempotency.complete(session, principal, key, response)
        session.commit()
