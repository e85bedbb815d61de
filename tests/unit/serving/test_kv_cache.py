"""The growing key/value cache holds exactly what concatenation would."""

from __future__ import annotations

import torch

from chattune.serving.worker.kv_cache import SPARE, GrowingLayer


def test_updates_past_the_spare_room_keep_every_position() -> None:
    layer, keys, values = GrowingLayer(), [], []
    for step in range(3 * SPARE):
        new = 7 if step == 0 else 1  # a prefill, then one position a step
        k, v = torch.randn(2, 3, new, 4), torch.randn(2, 3, new, 4)
        keys.append(k)
        values.append(v)
        got_k, got_v = layer.update(k, v)
        assert torch.equal(got_k, torch.cat(keys, dim=2))
        assert torch.equal(got_v, torch.cat(values, dim=2))
    assert layer.room is not None and layer.room[0].shape[2] > layer.keys.shape[2]
    assert layer.get_seq_length() == 7 + 3 * SPARE - 1


def test_held_rows_are_copies_that_later_steps_extend() -> None:
    layer = GrowingLayer()
    full = torch.randn(3, 2, 5, 4)
    layer.update(full, full + 1)
    layer.hold(layer.keys[[0, 2], :, 1:], layer.values[[0, 2], :, 1:])  # rows left, column dropped
    step = torch.randn(2, 2, 1, 4)
    keys, values = layer.update(step, step)
    assert torch.equal(keys, torch.cat([full[[0, 2], :, 1:], step], dim=2))
    assert torch.equal(values, torch.cat([full[[0, 2], :, 1:] + 1, step], dim=2))
