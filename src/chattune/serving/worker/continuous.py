"""Continuous batching over the model's forward pass: the default transformers engine.

One generation thread keeps a running batch. Before every decoding step it admits waiting
requests (up to ``max_batch_size`` rows): their prompts are prefilled together in one
left-padded forward pass and their key/value cache is joined to the batch's, left-padded to
a common length. Each step then feeds every row its last token, so a request starts
answering one step after it arrives instead of after the running batch ends. Rows carry
their own parameters (greedy or temperature/top-p with their own seeded generator,
max_new_tokens, logprobs) and end on their own end tokens; finished and cancelled rows leave
the batch at once and the cache columns no row uses are dropped. Each layer's cache keeps
spare positions (:mod:`.kv_cache`): a step writes its one new column in place, where
transformers' ``DynamicLayer`` copies the whole cache (profiled: 13% of a step at 16 rows).

Why not transformers' ``generate`` or its continuous-batching manager: ``generate`` runs a
batch to its end (requests wait for it), and the manager measured slower than one static
``generate`` batch on this CPU (README, "Continuous batching"). The loop here is the same
forward pass ``generate`` makes, with the batch changing between steps.

Models whose cache is not plain full attention (sliding windows, linear attention) use the
static-batch :class:`~.transformers_engine.TransformersEngine` instead (:func:`supported`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from chattune.serving.worker.engines import Delta, GenerationParams, RequestRefused, TokenLogprob
from chattune.serving.worker.logits import Row, adjust
from chattune.serving.worker.transformers_engine import TransformersEngine, _Job

log = logging.getLogger("chattune.serving.engine")


def supported(model: Any) -> bool:
    """True when every layer keeps a full-attention key/value cache (what rows can join)."""
    config = model.config.get_text_config(decoder=True)
    if getattr(config, "sliding_window", None) or getattr(config, "attention_chunk_size", None):
        return False
    types = set(getattr(config, "layer_types", None) or ["full_attention"])
    return types == {"full_attention"}


@dataclass(eq=False)
class _Row:
    """One request in the running batch."""

    job: _Job
    prompt: list[int]
    max_new: int
    generator: Any
    tokens: list[int] = field(default_factory=list)
    sent: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    done: bool = False

    @property
    def params(self) -> GenerationParams:
        return self.job.params

    @property
    def prompt_len(self) -> int:
        return len(self.prompt)

    def send(self, text: str, reason: str | None) -> None:
        logprobs, self.logprobs = tuple(self.logprobs), []
        self.job.send(Delta(text, reason, self.prompt_len, len(self.tokens), logprobs))


class ContinuousEngine(TransformersEngine):
    """:class:`TransformersEngine` whose generation thread batches continuously.

    >>> engine = ContinuousEngine("models/demo/1", "demo:1", DeploymentSettings(max_batch_size=16))
    >>> engine.start()
    """

    def _serve(self) -> None:
        """Admit waiting requests, step the batch, repeat (blocks while nothing runs)."""
        if not supported(self.model):
            log.info("this model's cache cannot take joining rows: static batches instead")
            super()._serve()
            return
        batch = _Batch(self)
        while True:
            waiting = self._waiting(block=not batch.rows)
            if waiting is None:
                return
            free = self.max_batch_size - len(batch.rows)
            for job in waiting[free:]:
                self._backlog.append(job)  # admitted at a later step, oldest first
            if waiting[:free]:
                batch.admit(waiting[:free])
            if batch.rows:
                batch.step()

    def _waiting(self, block: bool) -> list[_Job] | None:
        """The backlog and everything queued (waiting for one when ``block``); ``None`` once
        :meth:`stop` was called."""
        jobs: list[_Job | None] = list(self._backlog)
        self._backlog.clear()
        if block and not jobs:
            jobs.append(self._pending.get())
        while not self._pending.empty():
            jobs.append(self._pending.get_nowait())
        if None in jobs:
            return None
        return [job for job in jobs if job is not None and not job.cancelled]


class _Batch:
    """The running rows, their key/value cache and attention mask (one column per position)."""

    def __init__(self, engine: TransformersEngine) -> None:
        self.engine = engine
        self.rows: list[_Row] = []
        self.cache: Any = None
        self.mask: Any = None
        self.last: Any = None
        """The token each row feeds at the next step."""

    def admit(self, jobs: list[_Job]) -> None:
        """Prefill ``jobs`` (in groups of similar length, :func:`groups`) and join them."""
        rows, prompts = [], []
        for job in jobs:
            try:
                prompt = self.engine.prompt_ids(job)
                rows.append(self._row(job, prompt))
            except RequestRefused as exc:
                job.send(exc)
                continue
            except Exception as exc:  # this request only: the batch goes on without it
                log.exception("could not start a request")
                job.send(RuntimeError(f"could not start this request: {exc}"))
                continue
            prompts.append(prompt)
        for group in groups([len(p) for p in prompts]):
            self._prefill([rows[i] for i in group], [prompts[i] for i in group])

    def _prefill(self, rows: list[_Row], prompts: list[list[int]]) -> None:
        """One left-padded forward pass over ``prompts``; their rows join the batch."""
        import torch

        from chattune.serving.worker.kv_cache import new_cache

        width = max(len(p) for p in prompts)
        pad = self.engine.pad_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        cache = new_cache(self.engine.model)
        try:
            logits = self._forward(ids, mask, cache)
        except Exception as exc:  # the new rows fail; the running batch is untouched
            _fail(rows, exc)
            return
        self._join(rows, cache, mask)
        self._advance(rows, logits)

    def step(self) -> None:
        """One decoding step for every row (if it fails, its rows get the error and leave)."""
        import torch

        try:
            self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
            logits = self._forward(self.last[:, None], self.mask, self.cache)
        except Exception as exc:
            _fail(self.rows, exc)
            self.rows, self.cache, self.mask, self.last = [], None, None, None
            return
        self._advance(list(self.rows), logits)

    # --- internals ----------------------------------------------------------------------

    def _row(self, job: _Job, prompt: list[int]) -> _Row:
        import torch

        generator = None
        if job.params.do_sample:
            generator = torch.Generator(device=self.engine.model.device)
            seed = job.params.seed
            generator.manual_seed(random.getrandbits(63) if seed is None else seed)
        limit = min(job.params.max_new_tokens, self.engine.context - len(prompt))
        return _Row(job, prompt, max(limit, 1), generator)

    def _forward(self, ids: Any, mask: Any, cache: Any) -> Any:
        """Logits of each row's last position; ``cache`` grows by the new positions."""
        import torch

        device = self.engine.model.device
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        with torch.inference_mode():
            out = self.engine.model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return out.logits[:, -1, :].float()

    def _join(self, rows: list[_Row], cache: Any, mask: Any) -> None:
        """Append new rows (their cache and mask) to the batch, left-padding the shorter."""
        import torch
        from torch.nn import functional

        if not self.rows:
            self.rows, self.cache, self.mask = rows, cache, mask
            self.last = mask.new_zeros(len(rows))
            return
        width = max(self.mask.shape[1], mask.shape[1])

        def padded(t: Any, have: int) -> Any:  # [batch, heads, positions, dim] or [batch, pos]
            spec = (width - have, 0) if t.dim() == 2 else (0, 0, width - have, 0)
            return functional.pad(t, spec)

        old, new = self.mask.shape[1], mask.shape[1]
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.hold(
                torch.cat([padded(mine.keys, old), padded(theirs.keys, new)]),
                torch.cat([padded(mine.values, old), padded(theirs.values, new)]),
            )
        self.mask = torch.cat([padded(self.mask, old), padded(mask, new)])
        self.last = torch.cat([self.last, self.last.new_zeros(len(rows))])
        self.rows = self.rows + rows

    def _advance(self, rows: list[_Row], logits: Any) -> None:
        """Pick each row's next token, stream it, and drop the rows that ended."""
        offset = len(self.rows) - len(rows)  # new rows sit at the end of the batch
        # Bias and penalties pick the token; logprobs stay the model's own.
        scores = adjust(logits, [Row(row.params, row.prompt, row.tokens) for row in rows])
        picked = _pick(rows, scores)
        for i, (row, token) in enumerate(zip(rows, picked, strict=True)):
            self.last[offset + i] = token
            self._accept(row, token, logits[i])
        if any(row.done for row in self.rows):
            self._drop_finished()

    def _accept(self, row: _Row, token: int, logits: Any) -> None:
        if row.job.cancelled:
            row.done = True
            return
        if token in self.engine.eos_ids:
            self._finish(row, "stop")
            return
        row.tokens.append(token)
        if row.params.logprobs is not None:
            row.logprobs.append(_logprob(self.engine.tokenizer, logits, token, row.params.logprobs))
        if len(row.tokens) >= row.max_new:
            self._finish(row, "length")
            return
        text = self.engine.tokenizer.decode(row.tokens, skip_special_tokens=True)
        # A trailing U+FFFD is half of a multi-byte character: wait for the rest.
        if len(text) > row.sent and not text.endswith("\ufffd"):
            row.send(text[row.sent :], None)
            row.sent = len(text)

    def _finish(self, row: _Row, reason: str) -> None:
        row.done = True
        text = self.engine.tokenizer.decode(row.tokens, skip_special_tokens=True)
        row.send(text[row.sent :], reason)

    def _drop_finished(self) -> None:
        """Free finished and cancelled rows, and the leading columns no row uses any more."""
        import torch

        keep = [i for i, row in enumerate(self.rows) if not row.done]
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache = self.mask = self.last = None
            return
        index = torch.tensor(keep)
        self.mask, self.last = self.mask[index], self.last[index]
        used = int(self.mask.sum(0).nonzero()[0])  # first column any row attends to
        for layer in self.cache.layers:
            rows = index.to(layer.keys.device)
            layer.hold(layer.keys[rows, :, used:, :], layer.values[rows, :, used:, :])
        self.mask = self.mask[:, used:]


PASS_COST = 32
"""A forward pass's cost beyond its tokens', in tokens: on a CPU a pass streams every weight
once (about 30 ms for SmolLM2 in bf16) and each prompt token costs about 0.8 ms more."""


def groups(lengths: list[int], pass_cost: int = PASS_COST) -> list[list[int]]:
    """Indices of ``lengths`` in prefill groups of similar length, cheapest in all: a group
    pays ``pass_cost`` plus its size times its longest prompt (the others are padded to it).
    The 16 prompts of ``benchmarks/serving_throughput.py`` (39-104 tokens) padded together
    are 1,664 tokens; in four groups (7, 3, 5 and 1 prompts) 1,101.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = [0] * (len(order) + 1)  # best[j]: the cheapest cost of the first j prompts in order
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        options = [best[i] + pass_cost + (j - i) * lengths[order[j - 1]] for i in range(j)]
        cut[j] = min(range(j), key=lambda i: options[i])
        best[j] = options[cut[j]]
    found, j = [], len(order)
    while j:
        found.append(order[cut[j] : j])
        j = cut[j]
    return found[::-1]


def _fail(rows: list[_Row], exc: Exception) -> None:
    log.exception("generation failed for %d rows", len(rows))
    for row in rows:
        row.done = True
        row.job.send(RuntimeError(f"generation failed: {type(exc).__name__}"))


def _pick(rows: list[_Row], logits: Any) -> list[int]:
    """Each row's next token: greedy, or sampled with its temperature, top-p and generator."""
    import torch

    tokens = logits.argmax(-1)
    for i, row in enumerate(rows):
        p = row.params
        if not p.do_sample:
            continue
        scores = logits[i] / p.temperature
        if p.top_p < 1.0:
            ordered, order = scores.sort(descending=True)
            cumulative = ordered.softmax(-1).cumsum(-1)
            drop = cumulative - ordered.softmax(-1) > p.top_p  # keep the token crossing top_p
            scores = scores.scatter(0, order[drop], float("-inf"))
        probs = scores.softmax(-1)
        tokens[i] = torch.multinomial(probs, 1, generator=row.generator)[0]
    return [int(t) for t in tokens.tolist()]


def _logprob(tokenizer: Any, logits: Any, token: int, top: int) -> TokenLogprob:
    """``token``'s log probability under the model (before temperature) and the top ones."""
    values = logits.log_softmax(-1)
    alternatives: tuple[tuple[str, float], ...] = ()
    if top:
        best = values.topk(top)
        alternatives = tuple(
            (tokenizer.decode([t]), max(v, -9999.0))
            for v, t in zip(best.values.tolist(), best.indices.tolist(), strict=True)
        )
    return TokenLogprob(tokenizer.decode([token]), max(values[token].item(), -9999.0), alternatives)
