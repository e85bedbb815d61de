"""A key/value cache whose layers keep spare positions, for the continuous engine.

transformers' ``DynamicLayer`` concatenates every step's new key/value column onto the whole
cache, a copy of all of it per layer per step (13% of a 16-row decoding step of SmolLM2 on a
CPU, profiled). :class:`GrowingLayer` writes the new columns into spare room instead and
hands attention views of the used part; it reallocates (with half again as much room) only
when the room runs out, or when the engine replaces the cache's rows (:meth:`hold`).

Imported only by the engine (it imports transformers).
"""

from __future__ import annotations

from typing import Any

from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

SPARE = 64
"""Positions of room at least, beyond those in use."""


class GrowingLayer(DynamicLayer):
    """One full-attention layer's cache: ``keys``/``values`` are views of the used part of
    ``room``, a pair of buffers ``[batch, heads, positions, dim]``."""

    room: tuple[Any, Any] | None = None

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
        """Append the new positions in place; the keys and values attention reads."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.hold(key_states, value_states)
            return self.keys, self.values
        assert self.room is not None and self.keys is not None
        have, new = self.keys.shape[-2], key_states.shape[-2]
        if have + new > self.room[0].shape[-2]:
            self.hold(self.keys, self.values, need=have + new)
        keys, values = self.room
        keys[:, :, have : have + new] = key_states
        values[:, :, have : have + new] = value_states
        self.keys, self.values = keys[:, :, : have + new], values[:, :, : have + new]
        return self.keys, self.values

    def hold(self, keys: Any, values: Any, need: int = 0) -> None:
        """Make ``keys``/``values`` this layer's cache, copied into room for ``need`` positions
        (at least their own) plus spare ones."""
        used = keys.shape[-2]
        size = max(need, used) + max(SPARE, used // 2)
        buffers = []
        for t in (keys, values):
            buffer = t.new_empty(*t.shape[:2], size, t.shape[-1])
            buffer[:, :, :used] = t
            buffers.append(buffer)
        self.room = (buffers[0], buffers[1])
        self.keys, self.values = buffers[0][:, :, :used], buffers[1][:, :, :used]
        self.is_initialized = True


class GrowingCache(DynamicCache):
    """A ``DynamicCache`` (what the models' code expects) of :class:`GrowingLayer`."""

    def __init__(self, layers: int) -> None:
        Cache.__init__(self, layers=[GrowingLayer() for _ in range(layers)])


def new_cache(model: Any) -> GrowingCache:
    """An empty cache for ``model``: one :class:`GrowingLayer` per decoder layer."""
    return GrowingCache(model.config.get_text_config(decoder=True).num_hidden_layers)
