"""The worker process: one model instance behind HTTP, started and probed by its gateway.

- ``__main__``: ``python -m chattune.serving.worker`` (settings from ``--settings-json``).
- ``app``: thin HTTP routes; ``handlers``: request logic and request settings over an engine.
- ``engines``: the :class:`~.engines.Engine` protocol every engine meets, and its value types.
- ``transformers_engine``: batched generation over transformers (the default engine).
- ``vllm``: a deployment with ``engine="vllm"`` runs vLLM behind the same HTTP app.

Nothing here imports the gateway or the SDK; it imports the shared modules of
:mod:`chattune.serving` (``http``, ``protocol``, ``settings``).
"""
