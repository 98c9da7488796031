"""What the outbox tests share: a RabbitMQ consumer of the relay's exchange."""

from __future__ import annotations

import json
import uuid

import aio_pika

from discount_codes.outbox.relay import EXCHANGE

from ..conftest import poll


class Queue:
    """Our own queue bound to the exchange, collecting this test's brand's messages."""

    def __init__(self, brand_id: str) -> None:
        self.brand_id = brand_id
        self.messages: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def open(self, url: str) -> Queue:
        self.conn = await aio_pika.connect(url)
        channel = await self.conn.channel()
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(f"test-{uuid.uuid4().hex}", exclusive=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._on_message)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        if json.loads(message.body)["data"].get("brand_id") == self.brand_id:
            self.messages.append(message)

    def ids(self) -> list[str]:
        return [str(m.message_id) for m in self.messages]

    async def wait_ids(self, ids: set[str], timeout: float = 20) -> None:
        await poll(lambda: ids <= set(self.ids()), timeout=timeout, every=0.02)

    async def close(self) -> None:
        await self.conn.close()
