"""A brand developer generates a Python client from the served ``/openapi.json`` with
openapi-python-client, and it just works: no generator warning, typed answers, and every
error a typed ``Problem`` (not ``None``). The brand's walk-through runs through it against
a live server: create a campaign, generate codes, claim, a refused claim, the event feed."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ..conftest import ServerFactory, Tokens
from .helpers import docs_file, document

#: Live-server tests run on SQLite only: the document and the client do not depend on it.
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
BIN = Path(sys.executable).parent
PACKAGE = "brand_client"


def _generate(source: list[str], out: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """``openapi-python-client generate`` as the docs show it (its ruff hooks on PATH)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            *source,
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(out),
            "--fail-on-warning",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "client-config.yaml"
    path.write_text(docs_file("client-config.yaml"))
    return path


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[Path]:
    """Where the client package goes; imported from there, and forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path / PACKAGE
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


@SQLITE
def test_the_generated_client_runs_the_brand_walkthrough_with_typed_problems(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, tmp_path: Path, generated: Path
) -> None:
    server = live_server()
    result = _generate(["--url", f"{server.url}/openapi.json"], generated, _config(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output

    client_module = importlib.import_module(PACKAGE)

    open_clients = ExitStack()

    def client(token: str) -> Any:
        made = client_module.AuthenticatedClient(base_url=server.url, token=token)
        return open_clients.enter_context(made)

    with open_clients:
        _walk(client, tokens, brand_id)


def _walk(client: Callable[[str], Any], tokens: Tokens, brand_id: str) -> None:
    models = _module("models")
    create_campaign = _module("api.campaigns.create_campaign")
    get_campaign = _module("api.campaigns.get_campaign")
    update_campaign = _module("api.campaigns.update_campaign")
    create_code_batch = _module("api.codes.create_code_batch")
    import_codes = _module("api.codes.import_codes")
    File = _module("types").File
    list_codes = _module("api.codes.list_codes")
    claim_code = _module("api.claims.claim_code")
    list_events = _module("api.events.list_events")

    staff = client(tokens.token(f"staff-of-{brand_id}", brands=[brand_id]))
    shopper_id = f"shopper-{brand_id}"
    shopper = client(
        tokens.token(shopper_id, email=f"{shopper_id}@example.com", name="Ann Example")
    )

    created = create_campaign.sync_detailed(
        brand_id,
        client=staff,
        body=models.CampaignCreate(name="Generated", status=models.CampaignCreateStatus.PAUSED),
    )
    assert created.status_code == 201
    campaign = created.parsed
    assert isinstance(campaign, models.CampaignOut)
    assert campaign.status == models.CampaignOutStatus.PAUSED
    assert created.headers["location"] == f"/v1/campaigns/{campaign.id}"

    batch = create_code_batch.sync(campaign.id, client=staff, body=models.BatchCreate(count=5))
    assert isinstance(batch, models.BatchOut), batch
    assert (batch.status, batch.generated) == (models.BatchOutStatus.COMPLETED, 5)
    codes = list_codes.sync(campaign.id, client=staff)
    assert isinstance(codes, models.PageCodeOut)
    assert len(codes.items) == 5

    # The brand's own codes: a CSV file (Excel's semicolons), uploaded as multipart.
    def csv_file(content: bytes) -> Any:
        return File(payload=io.BytesIO(content), file_name="codes.csv", mime_type="text/csv")

    upload = csv_file(b"code;discount\r\nSHOP-0001;10\r\nSHOP-0002;20\r\nshop-0001;10\r\n")
    imported = import_codes.sync(campaign.id, client=staff, body=models.ImportCodesBody(upload))
    assert isinstance(imported, models.ImportResult), imported
    assert (imported.imported, imported.duplicates, imported.repeated) == (2, 0, 1)
    assert imported.repeated_codes == ["shop-0001"]
    again = import_codes.sync(
        campaign.id,
        client=staff,
        body=models.ImportCodesBody(csv_file(b"SHOP-0002\nSHOP-0003\n")),
    )
    assert isinstance(again, models.ImportResult), again
    assert (again.imported, again.duplicate_codes) == (1, ["SHOP-0002"])
    # A picture picked by mistake: a typed problem that says what the file is.
    picture = File(payload=io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(32)), file_name="logo.png")
    refused = import_codes.sync(campaign.id, client=staff, body=models.ImportCodesBody(picture))
    assert isinstance(refused, models.Problem), refused
    assert refused.status == 422 and "PNG image" in refused.detail
    codes = list_codes.sync(campaign.id, client=staff)
    assert isinstance(codes, models.PageCodeOut)
    assert len(codes.items) == 8

    # A validation error: a typed Problem with its field errors, not None.
    invalid = create_code_batch.sync_detailed(
        campaign.id, client=staff, body=models.BatchCreate(count=0)
    )
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, models.Problem)
    assert invalid.parsed.type_ == "/problems/validation-failed"
    assert [e.loc for e in invalid.parsed.errors] == [["body", "count"]]
    assert all(isinstance(e, models.FieldError) for e in invalid.parsed.errors)

    # A paused campaign: 409 campaign-not-active, typed.
    paused = claim_code.sync(
        campaign.id, client=shopper, body=models.ClaimCreate(share_contact=True)
    )
    assert isinstance(paused, models.Problem)
    assert (paused.status, paused.type_) == (409, "/problems/campaign-not-active")
    opened = update_campaign.sync(
        campaign.id,
        client=staff,
        body=models.CampaignUpdate(status=models.CampaignUpdateStatusType0.ACTIVE),
    )
    assert isinstance(opened, models.CampaignOut)

    # The shopper does not consent: 422 consent-required, read as a typed Problem.
    refused = claim_code.sync_detailed(
        campaign.id, client=shopper, body=models.ClaimCreate(share_contact=False)
    )
    assert refused.status_code == 422
    problem = refused.parsed
    assert isinstance(problem, models.Problem)
    assert problem.type_ == "/problems/consent-required"
    assert problem.title == "Consent to share contact details is required"
    assert problem.status == 422
    assert "share_contact" in problem.detail

    claimed = claim_code.sync_detailed(
        campaign.id, client=shopper, body=models.ClaimCreate(share_contact=True)
    )
    assert claimed.status_code == 201
    claim = claimed.parsed
    assert isinstance(claim, models.ClaimOut)
    assert claim.shared_contact.email == f"{shopper_id}@example.com"
    again = claim_code.sync_detailed(
        campaign.id, client=shopper, body=models.ClaimCreate(share_contact=True)
    )
    assert again.status_code == 200
    assert isinstance(again.parsed, models.ClaimOut)
    assert again.parsed.code == claim.code

    # Unknown campaign and a bad token: typed problems too.
    missing = get_campaign.sync("01a21795-fcf8-7de1-ac08-000000000000", client=staff)
    assert isinstance(missing, models.Problem)
    assert missing.type_ == "/problems/not-found"
    anonymous = get_campaign.sync(campaign.id, client=client("not-a-token"))
    assert isinstance(anonymous, models.Problem)
    assert anonymous.type_ == "/problems/unauthenticated"

    # The event feed holds the claim, with what the brand was told.
    feed = list_events.sync(brand_id, client=staff, limit=100)
    assert isinstance(feed, models.EventPage)
    types = [e.type_ for e in feed.items]
    assert types == ["code_batch.completed", "discount_code.claimed"], types
    event = feed.items[1]
    assert event.data["claim_id"] == claim.id
    assert event.data["code"] == claim.code
    assert event.data["user"]["email"] == f"{shopper_id}@example.com"


@pytest.mark.slow  # the generator, then mypy --strict twice: most of the fast tier's time
def test_the_docs_script_type_checks_against_the_generated_client(
    tmp_path: Path, generated: Path
) -> None:
    """docs/api.md's script (run by the walk-through test) is also strictly typed."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document()))
    result = _generate(["--path", str(spec)], tmp_path / "discount_codes_client", _config(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    script = tmp_path / "brand_client.py"
    script.write_text(docs_file("brand_client.py"))
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            str(script),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # and mypy does check it: a problem's `type_` is a str, not a number
    script.write_text(docs_file("brand_client.py") + "\nstatus: int = refused.type_\n")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 1 and "Incompatible types in assignment" in checked.stdout


def test_without_any_setting_the_generator_makes_the_code_import_cleanly(
    tmp_path: Path, generated: Path
) -> None:
    """The import's body is a multipart upload, which the generator supports as it is: no
    setting, no warning, and the operation is there (a ``text/csv``-only body was skipped)."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document()))
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    result = _generate(["--path", str(spec)], generated, empty)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    import_codes = _module("api.codes.import_codes")
    body = _module("models").ImportCodesBody
    assert "file" in body.__annotations__
    assert callable(import_codes.sync_detailed)
