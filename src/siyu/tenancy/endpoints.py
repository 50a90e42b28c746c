"""The tenancy API: merchants, stores, staff, API keys and provider grants (thin handlers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, make_page, page_params
from siyu.kit.problems import NotFound
from siyu.tenancy import access, service
from siyu.tenancy import repository as repo
from siyu.tenancy.auth import (
    AnyCtx,
    MerchantCtx,
    ProviderCtx,
    any_context,
    merchant_context,
    merchant_owned_context,
    provider_context,
)
from siyu.tenancy.models import ApiKey, ProviderGrant, Staff, StaffRole
from siyu.tenancy.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    GrantCreate,
    GrantOut,
    MerchantCreate,
    MerchantOut,
    MerchantUpdate,
    StaffCreate,
    StaffOut,
    StaffUpdate,
    StoreCreate,
    StoreOut,
    StoreUpdate,
    WhoAmI,
)
from siyu.tenancy.scopes import GRANTABLE_SCOPES, Scope, sorted_scopes

router = APIRouter()
Paging = Annotated[PageRequest, Depends(page_params)]
CREATED = status.HTTP_201_CREATED


# ---------------------------------------------------------------- the caller


@router.get("/whoami", tags=["api keys"], summary="The calling key: its merchant or provider and scopes")
async def whoami(ctx: Annotated[AnyCtx, Depends(any_context())]) -> WhoAmI:
    """Check a key without touching any data (integrators' first call; the API's cheapest
    authenticated request, which ``bench/coupons.py`` uses as the framework ceiling)."""
    p = ctx.principal
    return WhoAmI(
        key_id=p.key_id,
        merchant_id=p.merchant_id,
        provider_id=p.provider_id,
        grant_id=p.grant_id,
        scopes=sorted_scopes(p.scopes),
    )


# ---------------------------------------------------------------- merchants


@router.get("/merchants", tags=["merchants"], summary="Merchants this key may act for")
def list_merchants(
    ctx: Annotated[AnyCtx, Depends(any_context(Scope.MERCHANT_READ))], page: Paging
) -> Page[MerchantOut]:
    p = ctx.principal
    if p.merchant_id is not None:
        ids = [p.merchant_id]
    else:
        assert p.provider_id is not None
        ids = repo.granted_merchant_ids(ctx.session, p.provider_id)
    rows = repo.list_merchants(ctx.session, ids, page)
    items, cursor = make_page(rows, page, lambda m: m.id)
    return Page(items=[MerchantOut.model_validate(m) for m in items], next_cursor=cursor)


@router.post("/merchants", tags=["merchants"], status_code=CREATED, summary="Onboard a merchant (providers)")
def create_merchant(
    body: MerchantCreate, ctx: Annotated[ProviderCtx, Depends(provider_context(Scope.MERCHANTS_CREATE))]
) -> MerchantOut:
    """A provider onboards a merchant and receives a grant with the key's delegable scopes."""
    now = utcnow()
    merchant = service.create_merchant(
        ctx.session,
        name=body.name,
        timezone=body.timezone,
        currency=body.currency,
        now=now,
        provider_id=ctx.provider_id,
    )
    access.create_grant(
        ctx.session,
        merchant.id,
        provider_id=ctx.provider_id,
        scopes=sorted_scopes(ctx.principal.scopes & GRANTABLE_SCOPES),
        now=now,
        actor=ctx.actor,
        note="granted at onboarding",
    )
    return MerchantOut.model_validate(merchant)


def _own_merchant(ctx: MerchantCtx, merchant_id: str) -> MerchantOut:
    merchant = repo.get_merchant(ctx.session, merchant_id) if merchant_id == ctx.merchant_id else None
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}")
    return MerchantOut.model_validate(merchant)


@router.get("/merchants/{merchant_id}", tags=["merchants"])
def get_merchant(
    merchant_id: str, ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.MERCHANT_READ))]
) -> MerchantOut:
    return _own_merchant(ctx, merchant_id)


@router.patch("/merchants/{merchant_id}", tags=["merchants"])
def update_merchant(
    merchant_id: str,
    body: MerchantUpdate,
    ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.MERCHANT_WRITE))],
) -> MerchantOut:
    _own_merchant(ctx, merchant_id)
    merchant = repo.get_merchant(ctx.session, merchant_id)
    assert merchant is not None
    updated = service.update_merchant(
        ctx.session, merchant, now=utcnow(), **body.model_dump(exclude_unset=True)
    )
    return MerchantOut.model_validate(updated)


# ---------------------------------------------------------------- stores


@router.get("/stores", tags=["stores"])
def list_stores(
    ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STORES_READ))], page: Paging
) -> Page[StoreOut]:
    rows = repo.list_stores(ctx.session, ctx.merchant_id, page)
    items, cursor = make_page(rows, page, lambda s: s.id)
    return Page(items=[StoreOut.model_validate(s) for s in items], next_cursor=cursor)


@router.post("/stores", tags=["stores"], status_code=CREATED)
def create_store(
    body: StoreCreate, ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STORES_WRITE))]
) -> StoreOut:
    store = service.create_store(
        ctx.session, ctx.merchant_id, service.StoreFields(**body.model_dump()), now=utcnow()
    )
    return StoreOut.model_validate(store)


def _store(ctx: MerchantCtx, store_id: str) -> StoreOut:
    store = repo.get_store(ctx.session, ctx.merchant_id, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    return StoreOut.model_validate(store)


@router.get("/stores/{store_id}", tags=["stores"])
def get_store(
    store_id: str, ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STORES_READ))]
) -> StoreOut:
    return _store(ctx, store_id)


@router.patch("/stores/{store_id}", tags=["stores"])
def update_store(
    store_id: str,
    body: StoreUpdate,
    ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STORES_WRITE))],
) -> StoreOut:
    store = repo.get_store(ctx.session, ctx.merchant_id, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    fields = service.StoreFields(**body.model_dump(exclude_unset=True))
    return StoreOut.model_validate(service.update_store(ctx.session, store, fields, now=utcnow()))


# ---------------------------------------------------------------- staff


def _staff_out(ctx: MerchantCtx, rows: list[Staff]) -> list[StaffOut]:
    stores = repo.staff_store_ids(ctx.session, ctx.merchant_id, [s.id for s in rows])
    return [
        StaffOut(
            id=s.id,
            merchant_id=s.merchant_id,
            login=s.login,
            display_name=s.display_name,
            role=StaffRole(s.role),
            active=s.active,
            store_ids=stores[s.id],
            created_at=s.created_at,
            last_login_at=s.last_login_at,
        )
        for s in rows
    ]


@router.get("/staff", tags=["staff"])
def list_staff(
    ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STAFF_READ))], page: Paging
) -> Page[StaffOut]:
    rows = repo.list_staff(ctx.session, ctx.merchant_id, page)
    items, cursor = make_page(rows, page, lambda s: s.id)
    return Page(items=_staff_out(ctx, items), next_cursor=cursor)


@router.post("/staff", tags=["staff"], status_code=CREATED)
def create_staff(
    body: StaffCreate, ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STAFF_WRITE))]
) -> StaffOut:
    staff = service.create_staff(
        ctx.session,
        ctx.merchant_id,
        login=body.login,
        display_name=body.display_name,
        role=body.role,
        password=body.password,
        store_ids=body.store_ids,
        now=utcnow(),
        actor=ctx.actor,
    )
    return _staff_out(ctx, [staff])[0]


def _get_staff(ctx: MerchantCtx, staff_id: str) -> Staff:
    staff = repo.get_staff(ctx.session, ctx.merchant_id, staff_id)
    if staff is None:
        raise NotFound(f"no staff {staff_id}")
    return staff


@router.get("/staff/{staff_id}", tags=["staff"])
def get_staff(
    staff_id: str, ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STAFF_READ))]
) -> StaffOut:
    return _staff_out(ctx, [_get_staff(ctx, staff_id)])[0]


@router.patch("/staff/{staff_id}", tags=["staff"])
def update_staff(
    staff_id: str,
    body: StaffUpdate,
    ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.STAFF_WRITE))],
) -> StaffOut:
    staff = service.update_staff(
        ctx.session,
        _get_staff(ctx, staff_id),
        now=utcnow(),
        actor=ctx.actor,
        **body.model_dump(exclude_unset=True),
    )
    return _staff_out(ctx, [staff])[0]


# ---------------------------------------------------------------- API keys


def _owner(ctx: AnyCtx) -> dict[str, str | None]:
    if ctx.principal.merchant_id is not None:
        return {"merchant_id": ctx.principal.merchant_id, "provider_id": None}
    return {"merchant_id": None, "provider_id": ctx.principal.provider_id}


@router.get("/api-keys", tags=["api keys"], summary="Keys of this merchant (or of this provider)")
def list_api_keys(
    ctx: Annotated[AnyCtx, Depends(any_context(Scope.KEYS_READ))], page: Paging
) -> Page[ApiKeyOut]:
    rows = repo.list_api_keys(ctx.session, page, **_owner(ctx))
    items, cursor = make_page(rows, page, lambda k: k.id)
    return Page(items=[ApiKeyOut.model_validate(k) for k in items], next_cursor=cursor)


@router.post(
    "/api-keys", tags=["api keys"], status_code=CREATED, summary="Create a key (its secret is shown once)"
)
def create_api_key(
    body: ApiKeyCreate, ctx: Annotated[AnyCtx, Depends(any_context(Scope.KEYS_WRITE))]
) -> ApiKeyCreated:
    issued = access.issue_api_key(
        ctx.session,
        name=body.name,
        scopes=body.scopes,
        now=utcnow(),
        actor=ctx.actor,
        allowed=ctx.principal.scopes,
        **_owner(ctx),
    )
    out = ApiKeyOut.model_validate(issued.key)
    return ApiKeyCreated(**out.model_dump(), secret=issued.secret)


def _get_key(ctx: AnyCtx, key_id: str) -> ApiKey:
    key = repo.get_api_key(ctx.session, key_id, **_owner(ctx))
    if key is None:
        raise NotFound(f"no API key {key_id}")
    return key


@router.get("/api-keys/{key_id}", tags=["api keys"])
def get_api_key(key_id: str, ctx: Annotated[AnyCtx, Depends(any_context(Scope.KEYS_READ))]) -> ApiKeyOut:
    return ApiKeyOut.model_validate(_get_key(ctx, key_id))


@router.post("/api-keys/{key_id}/revoke", tags=["api keys"], summary="Revoke a key (effective at once)")
def revoke_api_key(key_id: str, ctx: Annotated[AnyCtx, Depends(any_context(Scope.KEYS_WRITE))]) -> ApiKeyOut:
    key = access.revoke_api_key(ctx.session, _get_key(ctx, key_id), now=utcnow(), actor=ctx.actor)
    return ApiKeyOut.model_validate(key)


# ---------------------------------------------------------------- provider grants


@router.get("/grants", tags=["grants"], summary="Grants this merchant gave (or this provider holds)")
def list_grants(
    ctx: Annotated[AnyCtx, Depends(any_context(Scope.GRANTS_READ))], page: Paging
) -> Page[GrantOut]:
    p = ctx.principal
    if p.merchant_id is not None:
        rows = repo.list_grants(ctx.session, page, merchant_id=p.merchant_id, provider_id=p.provider_id)
    else:
        rows = repo.list_grants(ctx.session, page, provider_id=p.provider_id)
    items, cursor = make_page(rows, page, lambda g: g.id)
    return Page(items=[GrantOut.model_validate(g) for g in items], next_cursor=cursor)


@router.post("/grants", tags=["grants"], status_code=CREATED, summary="Authorise a provider (代运营授权)")
def create_grant(
    body: GrantCreate, ctx: Annotated[MerchantCtx, Depends(merchant_owned_context(Scope.GRANTS_WRITE))]
) -> GrantOut:
    grant = access.create_grant(
        ctx.session,
        ctx.merchant_id,
        provider_id=body.provider_id,
        scopes=body.scopes,
        note=body.note,
        now=utcnow(),
        actor=ctx.actor,
    )
    return GrantOut.model_validate(grant)


def _get_grant(ctx: AnyCtx, grant_id: str) -> ProviderGrant:
    p = ctx.principal
    if p.merchant_id is not None:
        grant = repo.get_grant(ctx.session, p.merchant_id, grant_id)
        if grant is not None and p.provider_id is not None and grant.provider_id != p.provider_id:
            grant = None
    else:
        assert p.provider_id is not None
        grant = repo.get_grant_for_provider(ctx.session, p.provider_id, grant_id)
    if grant is None:
        raise NotFound(f"no grant {grant_id}")
    return grant


@router.get("/grants/{grant_id}", tags=["grants"])
def get_grant(grant_id: str, ctx: Annotated[AnyCtx, Depends(any_context(Scope.GRANTS_READ))]) -> GrantOut:
    return GrantOut.model_validate(_get_grant(ctx, grant_id))


@router.post("/grants/{grant_id}/revoke", tags=["grants"], summary="Revoke a grant (effective at once)")
def revoke_grant(
    grant_id: str, ctx: Annotated[MerchantCtx, Depends(merchant_owned_context(Scope.GRANTS_WRITE))]
) -> GrantOut:
    grant = access.revoke_grant(ctx.session, _get_grant(ctx, grant_id), now=utcnow(), actor=ctx.actor)
    return GrantOut.model_validate(grant)
