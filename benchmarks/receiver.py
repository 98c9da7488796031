"""The benchmarks' webhook receiver: the package's own (``discount_codes.webhook.receiver``,
which the demo and the tests use too) in a process of its own, with its control routes.

    python -m benchmarks.receiver --port 9000 [--fail-first-rate 0.25]
"""

from __future__ import annotations

from discount_codes.webhook.receiver import main

if __name__ == "__main__":
    main()
