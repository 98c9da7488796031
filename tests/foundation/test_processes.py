"""Real processes: `serve --workers 2` answers, SIGTERM lets an in-flight request finish
and exits 0, and no token or secret reaches the logs."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx

from ..conftest import ServerFactory, Tokens, poll
from ..edge.helpers import RawRequest, post_head


async def test_sigterm_finishes_in_flight_requests_then_exits_0(
    live_server: ServerFactory, tokens: Tokens, brand_id: str
) -> None:
    server = live_server("--workers", "1")
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps({"name": "Graceful shutdown"}).encode()
    half = len(body) // 2
    token = tokens.token(f"staff-{brand_id}", brands=[brand_id])

    async def refuses_connections() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True
        writer.close()
        return False

    request = await RawRequest(port).open()
    try:
        await request.send(post_head(f"/v1/brands/{brand_id}/campaigns", len(body), token))
        await request.send(body[:half])
        # The server has read the headers (so the request is in flight) once its kernel
        # holds nothing unread of the connection.
        await poll(request.server_has_read_all, timeout=30)
        server.process.send_signal(signal.SIGTERM)
        await poll(refuses_connections, timeout=30)  # shutting down: it takes nothing new
        await request.send(body[half:])
        status, _, answer = await request.response()
    finally:
        request.close()
    assert status == 201, answer
    assert json.loads(answer)["name"] == "Graceful shutdown"
    code = await asyncio.to_thread(server.process.wait, 30)
    assert code == 0, server.logs()


async def test_two_api_processes_serve_and_logs_hold_no_secrets(
    live_server: ServerFactory, tokens: Tokens, brand_id: str
) -> None:
    server = live_server("--workers", "2")
    brand_token = tokens.token(f"staff-{brand_id}", brands=[brand_id])
    shopper_email = "very.private.person@example.com"
    shopper_token = tokens.token("shopper-secret-1", email=shopper_email, name="Private Person")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        statuses = []
        for _ in range(20):
            r = await c.post(
                f"/v1/brands/{brand_id}/campaigns",
                json={"name": "Logs"},
                headers={"Authorization": f"Bearer {brand_token}"},
            )
            statuses.append(r.status_code)
        bad = await c.get(
            f"/v1/brands/{brand_id}/campaigns",
            headers={"Authorization": f"Bearer {brand_token}x"},
        )
        shopper = await c.get(
            f"/v1/brands/{brand_id}/campaigns",
            headers={"Authorization": f"Bearer {shopper_token}"},
        )
    assert statuses == [201] * 20
    assert bad.status_code == 401 and shopper.status_code == 403
    server.stop()
    logs = server.logs()
    assert '"event": "request"' in logs  # the access log is there...
    for secret in (brand_token, shopper_token, brand_token.split(".")[2], shopper_email):
        assert secret not in logs  # ...but no token, signature or e-mail address
    pids = {json.loads(line).get("pid") for line in logs.splitlines() if line.startswith("{")}
    assert pids  # lines are JSON
