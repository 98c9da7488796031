"""Redemption routes (brand staff or the brand's shop): look a code up at the till, redeem
it with an order, reverse it when the order is cancelled."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from discount_codes.auth import CurrentPrincipal
from discount_codes.db import SessionDep
from discount_codes.problems import problem_responses
from discount_codes.redemption import rules, service
from discount_codes.redemption.repository import RedemptionRecord
from discount_codes.redemption.schemas import (
    Amount,
    CodeLookupOut,
    RedemptionBrief,
    RedemptionCreate,
    RedemptionOut,
)

router = APIRouter(tags=["redemptions"])

BrandId = Annotated[
    str, Path(max_length=128, description="The brand's id (issued by the marketplace).")
]
TypedCode = Annotated[
    str,
    Path(
        max_length=rules.MAX_TYPED_LENGTH,
        description="The code as the shopper typed it: case, hyphens and spaces are ignored, "
        "O reads as 0 and I or L as 1, and the batch's prefix may be left out.",
        examples=["SPRING-7KQ2-M9XD-4TRA", "7kq2 m9xd 4tra"],
    ),
]
RedemptionId = Annotated[str, Path(max_length=64, description="The redemption's id.")]


def _amount(record: RedemptionRecord) -> Amount | None:
    if record.amount_value is None or record.amount_currency is None:
        return None
    return Amount.model_construct(value=record.amount_value, currency=record.amount_currency)


def _out(record: RedemptionRecord) -> RedemptionOut:
    return RedemptionOut(
        id=record.id,
        code=record.code,
        campaign_id=record.campaign_id,
        claim_id=record.claim_id,
        order_id=record.order_id,
        amount=_amount(record),
        redeemed_at=record.redeemed_at,
    )


@router.get(
    "/brands/{brand_id}/codes/{code}",
    summary="Look a code up at the till",
    description="Whether the code a shopper typed can be redeemed now, and why not: "
    "`not-claimed`, `already-redeemed` or `code-expired`. A code of another brand and a "
    "code that does not exist both answer `404 code-not-found`, after the same work.",
    responses=problem_responses(
        401,
        403,
        404,
        422,
        s404="The brand has no such code (`code-not-found`)",
        s422="The path's code cannot be a code: too long, or characters other than letters, "
        "digits, hyphens and spaces (`validation-failed`)",
    ),
)
async def look_up_code(
    brand_id: BrandId, code: TypedCode, principal: CurrentPrincipal, session: SessionDep
) -> CodeLookupOut:
    view = await service.look_up(session, principal, brand_id, code)
    found, live = view.found, view.found.redemption
    return CodeLookupOut(
        code=found.code,
        campaign_id=found.campaign_id,
        status=view.status,
        claim_id=found.claim_id,
        claimed_at=found.claimed_at,
        redemption=None
        if live is None
        else RedemptionBrief(
            id=live.id, order_id=live.order_id, amount=_amount(live), redeemed_at=live.redeemed_at
        ),
        redeemable=view.reason is None,
        reason=view.reason,
    )


@router.post(
    "/brands/{brand_id}/codes/{code}/redemptions",
    status_code=status.HTTP_201_CREATED,
    summary="Redeem a code with an order",
    description="Records that the code was used with the order. A code is redeemed at most "
    "once, whatever the concurrency: the same `order_id` again answers `200` with the same "
    "redemption; another order is refused (`409 code-already-redeemed`) until the "
    "redemption is reversed. The answer is sent only once the redemption is stored.",
    responses={
        200: {"model": RedemptionOut, "description": "This order already redeemed the code."},
        **problem_responses(
            401,
            403,
            404,
            409,
            410,
            422,
            s404="The brand has no such code (`code-not-found`)",
            s409="Never handed out (`code-not-claimed`), or redeemed with another order "
            "(`code-already-redeemed`)",
            s410="Past the campaign's `redeem_until` (`code-expired`)",
        ),
    },
)
async def redeem_code(
    brand_id: BrandId,
    code: TypedCode,
    body: RedemptionCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> RedemptionOut:
    result = await service.redeem_code(
        session, principal, brand_id, code, order_id=body.order_id, amount=body.amount
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return _out(result.redemption)


@router.delete(
    "/redemptions/{redemption_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Reverse a redemption",
    description="The order was cancelled: the redemption stops counting and the code can be "
    "redeemed again. The brand is told (`discount_code.redemption_reversed`). Idempotent.",
    responses=problem_responses(401, 403, 404, 422),
)
async def reverse_redemption(
    redemption_id: RedemptionId, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.reverse_redemption(session, principal, redemption_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
