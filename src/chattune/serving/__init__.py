"""Online endpoints: a gateway process per endpoint owning its deployments' worker processes.

The package is split by the process its code runs in:

- SDK (the user's process): ``endpoints`` (:class:`EndpointsAPI`, ``client.endpoints``) and
  ``deployments`` write desired state to the store, start gateways and wait; ``info`` holds
  what they return (``EndpointInfo``, ``DeploymentInfo``); ``invoke`` calls an endpoint.
- ``gateway/`` (one process per endpoint): key auth, routing by traffic, mirror, the
  supervisor that owns the workers, and the pure probe rules.
- ``worker/`` (one process per instance): the HTTP app, handlers, and the engines.

Shared by more than one of them, and importing none of them: ``settings``
(:class:`DeploymentSettings`, declared once), ``protocol`` (pydantic request shapes and
response bodies), ``http`` (the one error shape, the body limit), ``traffic`` (names and
traffic rules), ``keys`` (key files), ``procs`` (process and port helpers).
"""
