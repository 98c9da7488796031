"""The brand's webhook receiver the tests use: the package's own (``discount_codes.webhook.
receiver``, which the demo and the benchmarks use too), re-exported for the test modules
that import it from here."""

from discount_codes.webhook.receiver import Behaviour, Received, Receiver, Reply

__all__ = ["Behaviour", "Received", "Receiver", "Reply"]
