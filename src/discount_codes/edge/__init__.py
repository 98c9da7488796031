"""The edge: what every request passes before it reaches a route, one concern a module.

From the outside in (``app.py`` stacks them): ``context`` (request id, the 500 answer,
metrics and the access line), ``body`` (the body read whole, within its size limit and
deadline), ``admission`` (the per-process bound on requests in flight, shared fairly
between brands). A request waiting for its body therefore holds no admission slot.
``protocol`` bounds what a connection costs before its request's headers are complete.
"""
