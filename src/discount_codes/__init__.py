"""discount-codes: discount codes for a brand marketplace."""

import os as _os

__version__ = "0.1.0"

# prometheus-client's multiprocess mode writes to PROMETHEUS_MULTIPROC_DIR as soon as the
# first metric is defined (at import): a directory that went away (a tmp cleaner, a
# redeploy) must not crash every process at start.
if _os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _os.makedirs(_os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
