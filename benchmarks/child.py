"""Entry of the child processes: ``python -m benchmarks.child SPEC.json OUT.json``.

The harness writes what to run (``kind`` and its parameters) to SPEC.json; the answer goes
to OUT.json. Load generators and raw baselines run here, each in a process of its own,
so neither shares an event loop (or a GIL) with the service or the harness.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import load, openloop, raw

KINDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "claims_closed": load.claims_closed,
    "claims_open": load.claims_open,
    "claims_openloop": openloop.claims_openloop,
    "posts_open": load.posts_open,
    "posts_closed": load.posts_closed,
    "amqp_publish": raw.amqp_publish,
    "pg_copy": raw.pg_copy,
    "pg_copy_out": raw.pg_copy_out,
    "sqlite_executemany": raw.sqlite_executemany,
}


def run(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "mix":
        from benchmarks import soak

        fn: Callable[[dict[str, Any]], Any] = soak.mix
    else:
        fn = KINDS[spec["kind"]]
    if inspect.iscoroutinefunction(fn):
        import uvloop

        return uvloop.run(fn(spec))
    return fn(spec)


def main() -> None:
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    answer = run(json.loads(spec_path.read_text()))
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(answer))
    tmp.replace(out_path)


if __name__ == "__main__":
    main()
