"""Redemption routes (brand staff or the brand's shop): look a code up at the till, redeem
it with an order or hold it while the payment runs, confirm the hold, release or reverse
it when the order is cancelled."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from discount_codes.auth import CurrentPrincipal
from discount_codes.campaign.schemas import discount_of
from discount_codes.db import DatabaseDep, SessionDep
from discount_codes.kit.timestamps import utcnow
from discount_codes.problems import from_error, problem_responses
from discount_codes.redemption import holds, rules, service
from discount_codes.redemption.repository import RedemptionRecord
from discount_codes.redemption.schemas import (
    Amount,
    CampaignBrief,
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


async def clock() -> datetime:
    """The time these routes decide holds and redemption windows by. A dependency, so a
    test moves past a hold's end (``app.dependency_overrides``) instead of waiting. Async
    on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
    hand-off per request for reading the clock."""
    return utcnow()


Now = Annotated[datetime, Depends(clock)]


def _money(value: str | None, currency: str | None) -> Amount | None:
    if value is None or currency is None:
        return None
    return Amount.model_construct(value=value, currency=currency)


def _brief(record: RedemptionRecord) -> RedemptionBrief:
    held = record.status == "held"
    return RedemptionBrief(
        id=record.id,
        order_id=record.order_id,
        status="held" if held else "redeemed",
        amount=_money(record.amount_value, record.amount_currency),
        discount_amount=_money(record.discount_amount_value, record.amount_currency),
        redeemed_at=None if held else record.redeemed_at,
        expires_at=record.expires_at if held else None,
    )


def _out(record: RedemptionRecord) -> RedemptionOut:
    return RedemptionOut(
        code=record.code,
        campaign_id=record.campaign_id,
        claim_id=record.claim_id,
        **_brief(record).model_dump(),
    )


@router.get(
    "/brands/{brand_id}/codes/{code}",
    summary="Look a code up at the till",
    description="Whether the code a shopper typed can be redeemed now, and why not: "
    "`not-claimed`, `already-redeemed`, `code-held` (another order's payment holds it) or "
    "`code-expired`; and the campaign's name and discount, so the till knows what to give. "
    "A code of another brand and a code that does not exist both answer "
    "`404 code-not-found`, after the same work.",
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
    brand_id: BrandId, code: TypedCode, principal: CurrentPrincipal, session: SessionDep, now: Now
) -> CodeLookupOut:
    view = await service.look_up(session, principal, brand_id, code, now=now)
    found = view.found
    return CodeLookupOut(
        code=found.code,
        campaign_id=found.campaign_id,
        status=view.status,
        claim_id=found.claim_id,
        claimed_at=found.claimed_at,
        redemption=None if view.live is None else _brief(view.live),
        redeemable=view.reason is None,
        reason=view.reason,
        campaign=CampaignBrief(name=found.campaign_name, discount=discount_of(found.discount)),
    )


@router.post(
    "/brands/{brand_id}/codes/{code}/redemptions",
    status_code=status.HTTP_201_CREATED,
    summary="Redeem a code with an order, or hold it during payment",
    description="Records that the code was used with the order. A code is redeemed at most "
    "once, whatever the concurrency: the same `order_id` again answers `200` with the same "
    "redemption; another order is refused (`409 code-already-redeemed`) until the "
    "redemption is reversed. With `amount` and a campaign discount, `discount_amount` says "
    'what to take off. With `"hold": true` the code is held for the order until '
    "`expires_at` (`status: held`; another order meanwhile: `409 code-held`): confirm it "
    "once paid, release it (`DELETE`) if the payment fails; past `expires_at` the code is "
    "free again by itself. The answer is sent only once the redemption is stored.",
    responses={
        200: {
            "model": RedemptionOut,
            "description": "This order already redeemed or holds the code.",
        },
        **problem_responses(
            401,
            403,
            404,
            409,
            410,
            422,
            s404="The brand has no such code (`code-not-found`)",
            s409="Never handed out (`code-not-claimed`), redeemed with another order "
            "(`code-already-redeemed`), held for another order's payment (`code-held`), or "
            "the amount is below the discount's minimum order (`minimum-order-not-met`)",
            s422="Not a valid body, or `amount` in another currency than the campaign's "
            "discount (`validation-failed`)",
            s410="Past the campaign's `redeem_until` (`code-expired`)",
        ),
    },
)
async def redeem_code(
    brand_id: BrandId,
    code: TypedCode,
    body: RedemptionCreate,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    response: Response,
    now: Now,
) -> RedemptionOut:
    result = await service.redeem_code(
        db,
        principal,
        brand_id,
        code,
        order_id=body.order_id,
        amount=body.amount,
        now=now,
        hold_ttl_s=body.hold_ttl_s if body.hold else None,
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return _out(result.redemption)


@router.post(
    "/redemptions/{redemption_id}/confirm",
    summary="Confirm a held code (the payment went through)",
    description="The hold becomes a redemption (`status: redeemed`) and only now is "
    "`discount_code.redeemed` recorded. Confirming again answers the same redemption. "
    "After `expires_at`, or once released: `410 hold-expired` (the code may be another "
    "order's by then).",
    responses=problem_responses(
        401,
        403,
        404,
        409,
        410,
        422,
        s409="The redemption was reversed (`conflict`)",
        s410="The hold ended or was released (`hold-expired`)",
    ),
)
async def confirm_redemption(
    redemption_id: RedemptionId, principal: CurrentPrincipal, session: SessionDep, now: Now
) -> RedemptionOut:
    result = await holds.confirm(session, principal, redemption_id, now=now)
    if result.problem is not None:  # the hold's expiry, noticed here, is committed
        return from_error(result.problem)  # type: ignore[return-value]
    assert result.redemption is not None
    return _out(result.redemption)


@router.delete(
    "/redemptions/{redemption_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Reverse a redemption or release a hold",
    description="The order was cancelled: the redemption stops counting and the code can be "
    "redeemed again. The brand is told (`discount_code.redemption_reversed`). A held code "
    "is released (nothing was redeemed: no event). Idempotent.",
    responses=problem_responses(401, 403, 404, 422),
)
async def reverse_redemption(
    redemption_id: RedemptionId, principal: CurrentPrincipal, session: SessionDep, now: Now
) -> Response:
    await holds.reverse(session, principal, redemption_id, now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
