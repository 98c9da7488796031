"""The benchmarks' webhook receiver: the package's own (``discount_codes.webhook.receiver``,
which the demo and the tests use too) in a process of its own, with its control routes.

    python -m benchmarks.receiver --port 9000 [--fail-first-rate 0.25] [--delay-s 3]

``--delay-s`` makes it a slow endpoint: every call is recorded when it arrives and
answered that many seconds later (the ``isolation-webhooks`` scenario's brand A).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from discount_codes.webhook.receiver import FailFirst, Received, Receiver, Reply


@dataclass
class Slow(FailFirst):
    """Answers as :class:`FailFirst` does, ``delay_s`` after the call arrived (a
    subclass, so the control route that sets the fail rate keeps the delay)."""

    delay_s: float = 0.0

    async def __call__(self, got: Received) -> Reply:
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        return await super().__call__(got)


async def serve(port: int, fail_first_rate: float, delay_s: float) -> None:
    receiver = Receiver(behaviour=Slow(fail_first_rate, delay_s=delay_s), control=True)
    await receiver.start(port)
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-first-rate", type=float, default=0.0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.fail_first_rate, args.delay_s))


if __name__ == "__main__":
    main()
