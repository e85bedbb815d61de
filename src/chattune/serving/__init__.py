"""Online endpoints: a gateway process per endpoint owning its deployments' worker processes.

Layers, outside in:

- ``api`` / ``deployments``: the SDK (``client.endpoints``); writes desired state to the DB.
- ``runner`` + ``supervisor``: the gateway process; reconciles workers to the DB, probes them.
- ``gateway``: the gateway's HTTP app (key auth, traffic routing, mirror, deployment header).
- ``worker``: a worker process's HTTP app; ``handlers`` hold request logic over an ``Engine``.
- ``engine`` (protocol) and ``batching`` (transformers, batched generation, streaming).
- ``protocol`` (pydantic request/response shapes), ``http`` (one error shape, body limit),
  ``traffic`` (pure routing rules), ``keys``, ``routing``, ``state``, ``procs``.
"""
