"""Member-models API: request a refit (a background job), read fits and a member's scores."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from siyu.kit.clock import utcnow
from siyu.kit.problems import NotFound
from siyu.models import facade
from siyu.models.schemas import FitList, FitOut, MemberScoresOut
from siyu.models.scoring import ScoreName
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["models"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.MODELS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.MODELS_WRITE))]


def _out(view: facade.FitView) -> FitOut:
    return FitOut.model_validate(view, from_attributes=True)


@router.post(
    "/models/refit",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Refit CLV, P(alive), churn risk and high-potential, and rewrite members' scores (a job)",
)
def refit(ctx: Writer) -> FitOut:
    return _out(facade.request_refit(ctx.session, ctx.merchant_id, now=utcnow()))


@router.get("/models/fits", summary="The latest fits, newest first (status, parameters, AUC, errors)")
def list_fits(ctx: Reader, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> FitList:
    return FitList(items=[_out(v) for v in facade.latest_fits(ctx.session, ctx.merchant_id, limit=limit)])


@router.get("/models/fits/{fit_id}", summary="One fit")
def get_fit(fit_id: str, ctx: Reader) -> FitOut:
    view = facade.fit(ctx.session, ctx.merchant_id, fit_id)
    if view is None:
        raise NotFound(f"no model fit {fit_id}")
    return _out(view)


@router.get("/members/{member_id}/scores", tags=["members"], summary="A member's model scores")
def member_scores(member_id: str, ctx: Reader) -> MemberScoresOut:
    view = facade.member_scores(ctx.session, ctx.merchant_id, member_id)
    if view is None:
        raise NotFound(f"no member {member_id}")
    scores = dict(view.scores)
    clv = scores.pop(ScoreName.CLV, None)
    return MemberScoresOut(
        member_id=view.member_id,
        clv_fen=None if clv is None else int(clv),
        scores=scores,
        computed_at=view.computed_at,
        churn_band=view.churn_band,
    )
