"""The gateway process: one per endpoint; authenticates, routes, and owns the workers.

- ``__main__``: ``python -m chattune.serving.gateway --workspace W --endpoint E``.
- ``process``: bind, report ``running``, reconcile until the endpoint is deleted.
- ``app``: the HTTP app (key auth, health, reconcile nudge); ``proxy`` forwards requests
  and mirrors; ``routing`` picks the deployment (header, traffic) and the instance.
- ``supervisor``: starts, probes, restarts and stops worker processes (``workers``) and
  reports their status to the store; ``probes`` is the pure health decision it applies.

Nothing here is imported by the SDK or the worker; it imports the shared modules of
:mod:`chattune.serving` (``http``, ``settings``, ``traffic``, ``keys``, ``procs``).
"""
