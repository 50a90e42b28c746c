"""The FastAPI application factory: API routers, problem handlers, the unit of work, the console."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

import siyu
import siyu.wiring  # listeners of every module
from siyu.analytics import service as analytics
from siyu.analytics.endpoints import router as analytics_router
from siyu.analytics.endpoints_worth import router as analytics_worth_router
from siyu.analytics.mirror_endpoints import router as analytics_mirror_router
from siyu.analytics.mirror_loop import embedded_sync
from siyu.campaigns.endpoints import router as campaigns_router
from siyu.campaigns.journey_endpoints import router as journeys_router
from siyu.campaigns.results_endpoints import router as campaign_results_router
from siyu.channels import facade as channels
from siyu.channels.endpoints import router as channels_router
from siyu.config import Settings, load_settings
from siyu.coupons.endpoints import router as coupons_router
from siyu.db import AsyncStatements, Database, is_postgres
from siyu.decisions.endpoints import router as decisions_router
from siyu.events.endpoints import router as events_router
from siyu.housekeeping import background_upkeep
from siyu.imports.endpoints import router as imports_router
from siyu.kit.http import ApiUnitOfWork
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import ServiceUnavailable, install_problem_handlers
from siyu.kit.runtime import tune_gc
from siyu.lifecycle.endpoints import router as lifecycle_router
from siyu.members.endpoints import router as members_router
from siyu.messaging.endpoints import router as messaging_router
from siyu.models.endpoints import router as models_router
from siyu.outbox.endpoints import router as outbox_router
from siyu.outbox.worker import BackgroundWorker, Worker, policy_of
from siyu.points.endpoints import router as points_router
from siyu.reachability.endpoints import router as reachability_router
from siyu.segments.endpoints import router as segments_router
from siyu.tenancy.auth import request_session
from siyu.tenancy.endpoints import router as tenancy_router
from siyu.tenancy.schemas import Health
from siyu.tiers.endpoints import router as tiers_router

log = logging.getLogger("siyu")

API_PREFIX = "/api/v1"
LOOP_CONNECTIONS = 8
"""PostgreSQL connections per process for statements run from the event loop (see lifespan)."""

DESCRIPTION = """
Siyu (私域) manages a merchant's **user assets** along the C-CARE model.

**Authentication.** Every call except `/health` needs an API key: `Authorization: Bearer sy_…`.
Keys carry scopes; a missing scope is a 403. Provider (服务商) keys act for a merchant by naming it
in the `Siyu-Merchant` header, and only while the merchant's grant (代运营授权) is active.

**Errors** are RFC 9457 `application/problem+json`; validation errors list each bad field as a
JSON pointer. **Lists** are cursor-paginated (`limit`, `cursor` → `next_cursor`).
**Retries**: send `Idempotency-Key` on a POST; a retry with the same body returns the first
response (`Idempotent-Replayed: true`), a different body with the same key is a 409.
"""

health_router = APIRouter()


@health_router.get("/health", tags=["health"], summary="Liveness and database reachability")
def health(request: Request, session: Annotated[Session, Depends(request_session)]) -> Health:
    db: Database = request.app.state.db
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable: %s", exc)
        raise ServiceUnavailable("the state store does not answer") from None
    return Health(status="ok", version=siyu.__version__, database=db.engine.dialect.name)


DOCS_ASSETS = "/static/api-docs"


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` served from assets inside the installed packages.

    FastAPI's defaults load them from a CDN, which leaves the docs blank on a machine without
    internet access; the ``fastapi-offline`` package ships Swagger UI 5 (needed for OpenAPI 3.1)
    and ReDoc, and we serve its files ourselves.
    """
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="api-docs-assets")
    openapi_url = app.openapi_url or f"{API_PREFIX}/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def embedded_worker(settings: Settings, db: Database) -> BackgroundWorker | None:
    """The outbox worker inside ``siyu serve`` (``SIYU_WORKER_EMBEDDED=false``: run ``siyu worker``)."""
    if not settings.worker_embedded:
        return None
    worker = BackgroundWorker(
        Worker(db, batch=settings.worker_batch, poll=settings.worker_poll, policy=policy_of(settings))
    )
    worker.start()
    return worker


def _prewarm(root: Path) -> None:
    try:
        analytics.prewarm(root)
    except Exception:  # a cold first request is all it costs
        logging.getLogger("siyu.analytics").exception("analytics mirror prewarm failed")


def create_app(
    settings: Settings | None = None, *, db: Database | None = None, console: bool | None = None
) -> FastAPI:
    """Build the application. Tests pass their own ``db``; ``siyu serve`` passes nothing."""
    settings = settings or load_settings()
    db = db or Database(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_gc()
        # PostgreSQL connections for one-statement writes run from the event loop (the coupon
        # claim), owned by this loop: opened on first use, closed at shutdown.
        statements = AsyncStatements(db.engine, LOOP_CONNECTIONS) if is_postgres(db.engine) else None
        app.state.loop_statements = statements
        worker = embedded_worker(settings, db)
        mirror_sync = embedded_sync(settings, db)
        if mirror_sync is not None:  # the mirror's file footers read before the first dashboard asks
            threading.Thread(
                target=_prewarm,
                args=(settings.resolved_analytics_dir,),
                name="siyu-analytics-prewarm",
                daemon=True,
            ).start()
        try:
            if settings.upkeep:
                async with background_upkeep(db):
                    yield
            else:
                yield
        finally:
            if mirror_sync is not None:
                await run_in_threadpool(mirror_sync.stop)
            if worker is not None:
                await run_in_threadpool(worker.stop)
            app.state.loop_statements = None
            if statements is not None:
                await statements.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Siyu API",
        version=siyu.__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.vault = IdentifierVault(settings.resolved_secret_key())
    channels.use_vault(app.state.vault)  # outbox handlers seal and unseal channel secrets with it
    install_problem_handlers(app)
    app.include_router(health_router, prefix=API_PREFIX)
    app.include_router(tenancy_router, prefix=API_PREFIX)
    app.include_router(events_router, prefix=API_PREFIX)
    app.include_router(members_router, prefix=API_PREFIX)
    app.include_router(imports_router, prefix=API_PREFIX)
    app.include_router(reachability_router, prefix=API_PREFIX)
    app.include_router(lifecycle_router, prefix=API_PREFIX)
    app.include_router(coupons_router, prefix=API_PREFIX)
    app.include_router(points_router, prefix=API_PREFIX)
    app.include_router(tiers_router, prefix=API_PREFIX)
    app.include_router(messaging_router, prefix=API_PREFIX)
    app.include_router(outbox_router, prefix=API_PREFIX)
    app.include_router(channels_router, prefix=API_PREFIX)
    app.include_router(segments_router, prefix=API_PREFIX)
    app.include_router(campaigns_router, prefix=API_PREFIX)
    app.include_router(journeys_router, prefix=API_PREFIX)
    app.include_router(campaign_results_router, prefix=API_PREFIX)
    app.include_router(decisions_router, prefix=API_PREFIX)
    app.include_router(analytics_worth_router, prefix=API_PREFIX)
    app.include_router(models_router, prefix=API_PREFIX)
    app.include_router(analytics_mirror_router, prefix=API_PREFIX)
    app.include_router(analytics_router, prefix=API_PREFIX)
    app.add_middleware(
        ApiUnitOfWork,
        session_factory=lambda: db.sessions,
        read_session_factory=lambda: db.read_sessions,
        max_body_bytes=settings.max_body_bytes,
        upload_prefixes=(f"{API_PREFIX}/imports",),
        max_upload_bytes=settings.max_upload_bytes,
    )

    install_offline_docs(app)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(
            "/console" if (console if console is not None else settings.console) else "/docs"
        )

    if console if console is not None else settings.console:
        from siyu.console import mount_console

        mount_console(app, settings=settings, db=db)
    return app
