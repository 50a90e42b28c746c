"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

Services raise :class:`Problem` subclasses; the handlers installed by
:func:`install_problem_handlers` turn them, FastAPI's validation errors, Starlette's HTTP errors
and anything unexpected into problem documents. Bad input is always a 4xx, never a 500.

Each problem has a stable ``type`` URI (``https://siyu.dev/problems/<slug>``) that clients can
switch on, a ``title``, a human ``detail``, and for validation errors an ``errors`` list whose
items name the bad field with a JSON pointer into the request body (``/stores/0/name``) or, for
query, path and header parameters, the parameter name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://siyu.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("siyu.problems")


class Problem(Exception):
    """An error a client can act on; subclasses fix the status and type."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJson(Problem):
    status, slug, title = 400, "malformed-json", "Malformed JSON"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class UnprocessableEntity(Problem):
    status, slug, title = 422, "validation-error", "Invalid request"


def invalid_field(pointer: str, detail: str) -> UnprocessableEntity:
    """A 422 naming the one field (JSON pointer) that is wrong, shaped like validation errors."""
    return UnprocessableEntity(detail, extra={"errors": [{"pointer": pointer, "detail": detail}]})


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="siyu"'} if problem.status == 401 else None
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.to_dict(instance), status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def json_pointer(parts: Sequence[str | int]) -> str:
    """RFC 6901 pointer for a location inside a JSON document."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped) if escaped else ""


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI/Pydantic error dicts → problem ``errors`` items with pointers."""
    items: list[dict[str, Any]] = []
    for error in errors:
        loc = list(error.get("loc", ()))
        where = loc[0] if loc else "body"
        rest = loc[1:] if where in ("body", "query", "path", "header", "cookie") else loc
        item: dict[str, Any] = {"detail": error.get("msg", "invalid"), "code": error.get("type", "invalid")}
        if where == "body":
            item["pointer"] = json_pointer(rest)
        else:
            item["in"] = where
            item["parameter"] = ".".join(str(p) for p in rest)
        items.append(item)
    return items


def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        ctx = first.get("ctx") or {}
        detail = "the request body is not valid JSON" + (f": {ctx['error']}" if ctx.get("error") else "")
        return problem_response(MalformedJson(detail), request)
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
        return problem_response(MalformedJson("a JSON request body is required"), request)
    problem = UnprocessableEntity(
        f"{len(errors)} invalid field{'s' if len(errors) != 1 else ''}",
        extra={"errors": validation_errors(errors)},
    )
    return problem_response(problem, request)


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
}


def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    problem = Problem(str(exc.detail) if exc.detail else title)
    problem.status, problem.slug, problem.title = exc.status_code, slug, title
    response = problem_response(problem, request)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


def _integrity_handler(request: Request, exc: Exception) -> JSONResponse:
    """A unique key taken by a concurrent writer between our check and our insert: retry."""
    log.info("integrity conflict on %s %s: %s", request.method, request.url.path, exc)
    problem = Conflict("a concurrent request changed the same data first; retry the request")
    problem.slug = "write-conflict"
    return problem_response(problem, request)


BUSY_MARKERS = ("database is locked", "deadlock detected", "could not obtain lock", "lock timeout")


def _operational_handler(request: Request, exc: Exception) -> JSONResponse:
    """The database was too busy (SQLite's busy timeout, a PostgreSQL deadlock or lock timeout):
    nothing was written, so the client should retry — a 503 with ``Retry-After``, not a 500."""
    if not any(marker in str(exc).lower() for marker in BUSY_MARKERS):
        return _unexpected_handler(request, exc)
    log.warning("database busy on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
    return _retry_soon(request, "database-busy", "the database is busy")


def _retry_soon(request: Request, slug: str, why: str) -> JSONResponse:
    """A 503 saying nothing was saved and the client may retry in a second."""
    problem = ServiceUnavailable(f"{why}; nothing was saved — retry the request shortly")
    problem.slug = slug
    response = problem_response(problem, request)
    response.headers["Retry-After"] = "1"
    return response


def _pool_timeout_handler(request: Request, exc: Exception) -> JSONResponse:
    """No pooled connection freed up in time: the server is overloaded (requests arrive faster
    than the database answers them). Nothing was written; shed the load with a 503 the client
    retries after a moment, instead of a 500 that reads as a bug."""
    log.warning("overloaded on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
    return _retry_soon(request, "overloaded", "the server is overloaded")


def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem("an unexpected error occurred; it has been logged")
    problem.status, problem.slug, problem.title = 500, "internal-error", "Internal error"
    return problem_response(problem, request)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem document."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(IntegrityError, _integrity_handler)
    app.add_exception_handler(OperationalError, _operational_handler)
    app.add_exception_handler(PoolTimeout, _pool_timeout_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
