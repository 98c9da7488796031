"""Code routes (brand staff): batches, listing, CSV export and import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from discount_codes.auth import CurrentPrincipal
from discount_codes.codes import batches, export, imports
from discount_codes.codes.schemas import BatchCreate, BatchOut, CodeOut, CodeStatus, ImportResult
from discount_codes.codes.upload import FILE_FIELD
from discount_codes.config import SettingsDep
from discount_codes.db import DatabaseDep, SessionDep
from discount_codes.kit.pagination import CursorQuery, LimitQuery, Page
from discount_codes.problems import problem_responses

router = APIRouter(tags=["codes"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key and body within 24 h: the same batch. Same key, other body: 409.",
    ),
]


@router.post(
    "/campaigns/{campaign_id}/code-batches",
    status_code=status.HTTP_201_CREATED,
    summary="Generate codes for a campaign",
    description=(
        "Makes `count` new codes, unique across all the brand's codes: `length` random "
        "symbols after `prefix`, or shaped by a `pattern` such as `SPRING-####-####` (each "
        "`#` one symbol of `charset`). Up to 10,000 codes (the service's inline limit) are "
        "made within the request: `201` with the completed batch. Larger batches answer "
        "`202` with `Location: /v1/code-batches/{id}`; the worker makes them, taking turns "
        "with other brands' batches, and `generated` grows as it goes. A replay with the "
        "same `Idempotency-Key` answers the same batch (`200`, or `202` while it runs). "
        "Refused before any work starts: `422 code-space-too-dense` if the brand's codes of "
        "this length and prefix would fill more than one in a million possible ones, "
        "`422 pattern-too-small` if a pattern has fewer than 1,000 possible codes per code "
        "of its shape."
    ),
    responses={
        200: {"model": BatchOut, "description": "Replay of an earlier request (same key)"},
        202: {"model": BatchOut, "description": "Queued for the worker; see `Location`"},
        **problem_responses(401, 403, 404, 409, 410, 422),
    },
)
async def create_code_batch(
    campaign_id: str,
    body: BatchCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BatchOut:
    answer = await batches.create_batch(
        session,
        principal,
        campaign_id,
        body,
        idempotency_key=idempotency_key,
        settings=settings,
    )
    batch = answer.batch
    response.headers["Location"] = f"/v1/code-batches/{batch.id}"
    if batch.status in ("pending", "running"):
        response.status_code = status.HTTP_202_ACCEPTED
    elif not answer.created:
        response.status_code = status.HTTP_200_OK
    return batch


@router.get(
    "/campaigns/{campaign_id}/code-batches",
    summary="List a campaign's code batches",
    description="Newest first, cursor-paginated: each batch with what was requested, how many "
    "codes it made and when, so a brand sees what it already generated before asking again.",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_code_batches(
    campaign_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[BatchOut]:
    return await batches.list_batches(session, principal, campaign_id, cursor=cursor, limit=limit)


@router.get(
    "/code-batches/{batch_id}",
    summary="Read a code batch",
    description="Progress of a batch: `generated` grows while it runs; `completed_at` is set "
    "when all `requested` codes exist.",
    responses=problem_responses(401, 403, 404),
)
async def get_code_batch(
    batch_id: str, principal: CurrentPrincipal, session: SessionDep
) -> BatchOut:
    return await batches.get_batch(session, principal, batch_id)


@router.get(
    "/campaigns/{campaign_id}/codes",
    summary="List a campaign's codes",
    description="Oldest first, cursor-paginated; `status` filters available or claimed codes.",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_codes(
    campaign_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    status: Annotated[CodeStatus | None, Query(description="Only these codes.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[CodeOut]:
    return await export.list_codes(
        session, principal, campaign_id, status=status, cursor=cursor, limit=limit
    )


@router.get(
    "/campaigns/{campaign_id}/codes.csv",
    summary="Export a campaign's codes as CSV",
    description="Streamed `code,status,claimed_at,batch_id`, oldest first; constant memory "
    "however many codes the campaign has.",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {"example": "code,status,claimed_at,batch_id\r\n"}},
            "description": "The codes, one per row",
        },
        **problem_responses(401, 403, 404),
    },
)
async def export_codes(
    campaign_id: str, principal: CurrentPrincipal, session: SessionDep, db: DatabaseDep
) -> StreamingResponse:
    campaign = await export.authorise_export(session, principal, campaign_id)
    return StreamingResponse(
        await export.export_csv(db, campaign.id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="codes-{campaign.id}.csv"'},
    )


#: One body documented: ``multipart/form-data`` with a ``file`` part, the upload every
#: client generator and browser form supports. ``text/csv`` and ``text/plain`` bodies are
#: accepted as well (the description says so) but not documented as bodies of their own:
#: openapi-python-client skips a ``text/csv`` body, and with two bodies it writes an
#: annotation it does not import (openapi-generators/openapi-python-client#1451).
_IMPORT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {
                    FILE_FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "The codes: a CSV file (comma-, semicolon- or "
                        "tab-separated, a header naming a `code` column, or one code per "
                        "line), UTF-8 or UTF-16 with a byte-order mark.",
                    }
                },
            },
        },
    },
}


@router.post(
    "/campaigns/{campaign_id}/code-imports",
    status_code=status.HTTP_201_CREATED,
    summary="Import the brand's own codes",
    description=(
        "A file in the `file` part of a `multipart/form-data` upload, or the body itself "
        "as `text/csv` (or `text/plain`): one code per line (4..64 of `A-Z0-9-`), or a "
        "CSV whose header names a `code` column, comma- or semicolon-separated; up to "
        "50 MiB. Codes are stored normalised (upper case, no hyphens, O->0, I/L->1). "
        "Codes the brand already had are counted as `duplicates`, lines repeating an "
        "earlier line's code as `repeated`; invalid lines are listed in `rejected`. A "
        "file that is not text (an image, a workbook, another encoding) is refused with "
        "`422`, saying what it is. All or nothing: a storage error imports nothing."
    ),
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses=problem_responses(401, 403, 404, 410, 413, 415, 422),
)
async def import_codes(
    campaign_id: str, principal: CurrentPrincipal, session: SessionDep, request: Request
) -> ImportResult:
    return await imports.import_codes(
        session,
        principal,
        campaign_id,
        content_type=request.headers.get("content-type"),
        chunks=request.stream(),
    )
