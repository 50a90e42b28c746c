"""FastAPI dependencies: bearer-key authentication, scopes, merchant or provider context.

A handler declares exactly one of these::

    ctx: MerchantCtx = Depends(merchant_context(Scope.STORES_READ))
    ctx: ProviderCtx = Depends(provider_context(Scope.MERCHANTS_CREATE))
    ctx: AnyCtx = Depends(any_context(Scope.KEYS_READ))

Provider keys choose the merchant they act for with the ``Siyu-Merchant`` header.

Pitfall: this module must not use ``from __future__ import annotations``. FastAPI reads the
dependency functions' annotations at run time, and the factories below build them from closure
variables (``Depends(inner)``) that a string annotation cannot resolve — the parameter would
silently turn into a required query parameter.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.crypto import hash_api_key
from siyu.kit.problems import BadRequest, Forbidden, Unauthorized
from siyu.tenancy.access import (
    LAST_USED_RESOLUTION,
    Principal,
    authenticate_cached,
    principals,
    touch_last_used,
)
from siyu.tenancy.scopes import Scope

MERCHANT_HEADER = "Siyu-Merchant"

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sy_…`")


def request_session(request: Request) -> Session:
    """The session of this request's unit of work (opened by the API middleware)."""
    session = request.scope.get("state", {}).get("session")
    if session is None:  # pragma: no cover - every /api route is wrapped by the middleware
        raise RuntimeError("no unit of work for this request")
    assert isinstance(session, Session)
    return session


@dataclass(frozen=True, slots=True)
class AnyCtx:
    """An authenticated request: its session and principal."""

    session: Session
    principal: Principal

    @property
    def actor(self) -> str:
        return self.principal.actor


@dataclass(frozen=True, slots=True)
class MerchantCtx(AnyCtx):
    """A request acting for one merchant."""

    merchant_id: str


@dataclass(frozen=True, slots=True)
class ProviderCtx(AnyCtx):
    """A provider acting for itself (not for a merchant)."""

    provider_id: str


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    siyu_merchant: Annotated[
        str | None,
        Header(alias=MERCHANT_HEADER, description="provider keys: the merchant to act for (needs a grant)"),
    ] = None,
) -> AnyCtx:
    """Async, so that a request whose key is in :data:`~siyu.tenancy.access.principals` does not
    pay a worker-thread hand-off for authentication; a cache miss reads the key in a worker thread."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`")
    session = request_session(request)
    now = utcnow()
    secret = credentials.credentials
    secret_hash = hash_api_key(secret)
    found = principals.get(secret_hash, siyu_merchant)
    if found is None:
        found = await run_in_threadpool(
            authenticate_cached, session, secret=secret, now=now, acting_for=siyu_merchant
        )
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
        await run_in_threadpool(_record_use, request, session, found.principal.key_id)
        principals.used(secret_hash, siyu_merchant, now)
    return AnyCtx(session=session, principal=found.principal)


def _record_use(request: Request, session: Session, key_id: str) -> None:
    """On writes, in the request's transaction; on reads, in a short transaction of its own."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        db: Database = request.app.state.db
        with db.unit_of_work() as write:
            touch_last_used(write, key_id, utcnow())
    else:
        touch_last_used(session, key_id, utcnow())


def _check_scopes(principal: Principal, scopes: tuple[Scope, ...]) -> None:
    missing = [s.value for s in scopes if s not in principal.scopes]
    if missing:
        raise Forbidden(f"this key lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


def any_context(*scopes: Scope) -> Callable[..., Awaitable[AnyCtx]]:
    async def dependency(ctx: Annotated[AnyCtx, Depends(current_principal)]) -> AnyCtx:
        _check_scopes(ctx.principal, scopes)
        return ctx

    return dependency


def merchant_context(*scopes: Scope) -> Callable[..., Awaitable[MerchantCtx]]:
    async def dependency(ctx: Annotated[AnyCtx, Depends(current_principal)]) -> MerchantCtx:
        if ctx.principal.merchant_id is None:
            raise BadRequest(
                f"provider keys must name the merchant to act for in the {MERCHANT_HEADER} header"
            )
        _check_scopes(ctx.principal, scopes)
        return MerchantCtx(
            session=ctx.session, principal=ctx.principal, merchant_id=ctx.principal.merchant_id
        )

    return dependency


def provider_context(*scopes: Scope) -> Callable[..., Awaitable[ProviderCtx]]:
    async def dependency(ctx: Annotated[AnyCtx, Depends(current_principal)]) -> ProviderCtx:
        if ctx.principal.provider_id is None or ctx.principal.merchant_id is not None:
            raise Forbidden("only a provider key, acting for itself, may do this")
        _check_scopes(ctx.principal, scopes)
        return ProviderCtx(
            session=ctx.session, principal=ctx.principal, provider_id=ctx.principal.provider_id
        )

    return dependency


def merchant_owned_context(*scopes: Scope) -> Callable[..., Awaitable[MerchantCtx]]:
    """Merchant context with the merchant's *own* key: providers may not do this even with a grant."""

    inner = merchant_context(*scopes)

    async def dependency(ctx: Annotated[MerchantCtx, Depends(inner)]) -> MerchantCtx:
        if ctx.principal.is_delegated:
            raise Forbidden("only the merchant's own keys may do this, not a provider acting under a grant")
        return ctx

    return dependency
