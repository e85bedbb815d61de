"""Static batches over transformers `generate`: the fallback engine, and the loading and
prompt rendering the default :class:`~.continuous.ContinuousEngine` inherits.

Requests land in a queue; one generation thread takes the oldest, waits a few milliseconds
for others with the same :class:`GenerationParams`, and runs them as one left-padded
``generate`` call (bounded by ``max_batch_size``). A streamer splits each step's tokens per
row, so streaming and plain requests share the batch. Each row stops on the model's
``generation_config`` end tokens; a cancelled request (client gone, timeout) stops its row.

>>> engine = TransformersEngine("models/demo/1", "demo:1", DeploymentSettings(max_batch_size=4))
>>> engine.start()  # loads in the background; engine.is_ready() turns True when done
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chattune.data.schema import Message
from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker.dtype import choose_dtype
from chattune.serving.worker.engines import (
    Delta,
    GenerationParams,
    PromptTooLong,
    RequestRefused,
    TokenLogprob,
)
from chattune.serving.worker.logits import Processor, check_bias

log = logging.getLogger("chattune.serving.engine")


@dataclass(eq=False)
class _Job:
    messages: list[Message]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    deltas: asyncio.Queue[Delta | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: bool = False

    def send(self, item: Delta | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.deltas.put_nowait, item)
        except RuntimeError:  # the request's event loop is gone: nobody is listening
            self.cancelled = True


class TransformersEngine:
    """Loads a HuggingFace model folder and answers conversations in batches."""

    supports_logprobs = True

    def __init__(
        self,
        model_path: str | Path,
        model_name: str,
        settings: DeploymentSettings | None = None,
        *,
        device: str | None = None,
        batch_window_ms: float = 10.0,
    ) -> None:
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.device = device
        self.max_batch_size = (settings or DeploymentSettings()).max_batch_size
        self.dtype_setting = (settings or DeploymentSettings()).dtype
        self.dtype = "float32"
        self.batch_window = batch_window_ms / 1000
        self.load_error: str | None = None
        self._ready = threading.Event()
        self._pending: queue.Queue[_Job | None] = queue.Queue()
        self._backlog: deque[_Job] = deque()
        self.tokenizer: Any = None
        self.model: Any = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Load the model and serve the queue in a daemon thread (readiness when loaded)."""
        threading.Thread(target=self._main, name="generation", daemon=True).start()

    def stop(self) -> None:
        """Stop the generation thread after the batch it runs."""
        self._pending.put(None)

    def is_ready(self) -> bool:
        """True once the model is loaded."""
        return self._ready.is_set()

    def load(self) -> None:
        """Load tokenizer and model (dtype per :func:`choose_dtype`) and its end tokens."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.monotonic()
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt
        model: Any = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32)
        model = model.to(device).eval()
        self.dtype, why = choose_dtype(model, self.dtype_setting, device, self.model_path)
        self.model = model.to(getattr(torch, self.dtype))
        log.info("dtype %s: %s", self.dtype, why)
        if device == "cpu":
            self._pack()
        config = self.model.generation_config
        eos = config.eos_token_id
        eos = self.tokenizer.eos_token_id if eos is None else eos
        self.eos_ids: set[int] = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = next(
            x
            for x in (config.pad_token_id, self.tokenizer.pad_token_id, min(self.eos_ids))
            if x is not None
        )
        self.context = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.vocab_size = int(self.model.get_output_embeddings().out_features)
        log.info("loaded %s on %s in %.1fs", self.model_path, device, time.monotonic() - started)

    def _pack(self) -> None:
        """oneDNN's prepacked matmul for the linear layers (:mod:`.cpu_linear`); the plain
        ones stay where packing fails."""
        from chattune.serving.worker.cpu_linear import pack_linears

        try:
            packed = pack_linears(self.model, self.max_batch_size)
        except Exception as exc:  # an unusual build of torch: the plain layers still work
            log.warning("linear layers not prepacked (%s: %s)", type(exc).__name__, exc)
            return
        log.info("linear layers prepacked for oneDNN: %d", packed)

    def _main(self) -> None:
        try:
            self.load()
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("could not load model from %s", self.model_path)
            return
        self._ready.set()
        self._serve()

    def _serve(self) -> None:
        """Run batches from the queue until :meth:`stop`."""
        while (batch := self._collect()) is not None:
            if batch:
                self._run(batch)

    # --- requests -----------------------------------------------------------------------

    async def stream(
        self, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Delta]:
        """Answer deltas for one conversation; closing the iterator cancels its row."""
        job = _Job(messages, params.normalized(), asyncio.get_running_loop())
        self._pending.put(job)
        try:
            while True:
                item = await job.deltas.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            job.cancelled = True

    def _collect(self) -> list[_Job] | None:
        """The oldest job plus same-params jobs arriving within the batch window."""
        first = self._backlog.popleft() if self._backlog else self._pending.get()
        if first is None:
            return None
        batch = [first]
        if first.params.seed is not None:  # a seeded answer must not depend on its batch
            return [first] if not first.cancelled else []
        for job in list(self._backlog):
            if len(batch) < self.max_batch_size and job.params == first.params:
                batch.append(job)
                self._backlog.remove(job)
        deadline = time.monotonic() + self.batch_window
        while len(batch) < self.max_batch_size:
            try:
                got = self._pending.get(timeout=max(deadline - time.monotonic(), 1e-4))
            except queue.Empty:
                break
            if got is None:
                self._pending.put(None)  # shut down after this batch
                break
            same = got.params == first.params and got.params.seed is None
            (batch if same else self._backlog).append(got)
        return [job for job in batch if not job.cancelled]

    def _run(self, batch: list[_Job]) -> None:
        import torch
        from transformers import LogitsProcessorList

        rows, prompts = [], []
        for job in batch:
            try:
                prompts.append(self.prompt_ids(job))
                rows.append(job)
            except RequestRefused as exc:
                job.send(exc)
        if not rows:
            return
        params = rows[0].params
        padded = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        longest = padded["input_ids"].shape[1]
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = min(params.max_new_tokens, self.context - longest)
        config.do_sample = params.do_sample
        config.temperature = params.temperature if params.do_sample else None
        config.top_p = params.top_p if params.do_sample else None
        config.top_k = None
        config.eos_token_id = sorted(self.eos_ids)
        config.pad_token_id = self.pad_id
        recorder = _Logprobs(params.logprobs)
        streamer = _RowStreamer(self, rows, [len(p) for p in prompts], config.max_new_tokens)
        streamer.recorder = recorder
        if params.seed is not None:
            torch.manual_seed(params.seed)
        try:
            with torch.inference_mode():
                self.model.generate(
                    input_ids=padded["input_ids"].to(self.model.device),
                    attention_mask=padded["attention_mask"].to(self.model.device),
                    generation_config=config,
                    streamer=streamer,
                    stopping_criteria=[_Cancelled(rows)],
                    logits_processor=LogitsProcessorList(
                        self._processors(params, recorder, prompts)
                    ),
                )
        except Exception as exc:
            log.exception("generation failed for a batch of %d", len(rows))
            for job in rows:
                job.send(RuntimeError(f"generation failed: {type(exc).__name__}"))
            return
        streamer.finish_all()

    @staticmethod
    def _processors(
        params: GenerationParams, recorder: _Logprobs, prompts: list[list[int]]
    ) -> list[Any]:
        """The logprob recorder (the model's own distribution) first, then bias and
        penalties."""
        found: list[Any] = [recorder] if params.logprobs is not None else []
        if params.adjusts_logits:
            found.append(Processor(params, [len(p) for p in prompts], max(map(len, prompts))))
        return found

    def prompt_ids(self, job: _Job) -> list[int]:
        """The prompt of ``job``, or :class:`RequestRefused` when it cannot be answered."""
        check_bias(job.params, self.vocab_size)
        p = job.params
        return self._encode(job.messages, p.continue_final, p.max_new_tokens)

    @functools.cached_property
    def max_token_chars(self) -> int:
        """The longest vocabulary entry: no token covers more characters of a text (byte-level
        BPE: one per byte; SentencePiece: one per character), so ``len(text) / this`` is a
        lower bound on its tokens that costs nothing to compute."""
        return max(map(len, self.tokenizer.get_vocab()), default=1) or 1

    def _encode(
        self, messages: list[Message], continue_final: bool = False, max_new_tokens: int = 1
    ) -> list[int]:
        """The prompt's ids: the conversation and a new assistant turn's header, or, with
        ``continue_final``, the conversation cut right after its final message's text (no
        end-of-turn), as transformers' chat pipeline continues a final assistant message.

        :class:`PromptTooLong` when it cannot fit, decided from the text's length before
        tokenizing where possible (a 4 MB prompt is refused at once instead of holding the
        engine thread for seconds)."""
        from chattune.data.chat import prepare_messages

        if max_new_tokens >= self.context:
            raise PromptTooLong(
                f"max_tokens {max_new_tokens} leaves no room for the prompt in the model's "
                f"context of {self.context} tokens; ask for fewer new tokens"
            )
        text = self.tokenizer.apply_chat_template(
            prepare_messages(self.tokenizer, messages),
            tokenize=False,
            add_generation_prompt=not continue_final,
            continue_final_message=continue_final,
        )
        if len(text) > self.context * self.max_token_chars:
            raise PromptTooLong(
                f"prompt is {len(text)} characters, at least "
                f"{len(text) // self.max_token_chars} tokens; the model's context is "
                f"{self.context} tokens, so shorten the conversation"
            )
        # The template already writes the special tokens (e.g. Phi-3's <s>).
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= self.context:
            raise PromptTooLong(
                f"prompt is {len(ids)} tokens; the model's context is {self.context} tokens, "
                "so shorten the conversation"
            )
        return ids


class _Cancelled:
    """Stopping criterion: a row whose request was cancelled stops generating."""

    def __init__(self, rows: list[_Job]) -> None:
        self.rows = rows

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        flags = [job.cancelled for job in self.rows]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


class _Logprobs:
    """Logits processor that keeps the step's log probabilities (placed before temperature
    and top-p, so they are the model's own distribution, as OpenAI reports them)."""

    def __init__(self, top: int | None) -> None:
        self.top = top or 0
        self.last: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.last = scores.float().log_softmax(dim=-1)
        return scores

    def entries(self, tokenizer: Any, row: int, token: int) -> TokenLogprob | None:
        """The recorded log probability of ``token`` in ``row`` and the top alternatives."""
        if self.last is None:
            return None
        values = self.last[row]
        top = values.topk(self.top) if self.top else None
        alternatives = (
            tuple(
                (tokenizer.decode([i]), _finite(v))
                for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            )
            if top is not None
            else ()
        )
        return TokenLogprob(tokenizer.decode([token]), _finite(values[token].item()), alternatives)


def _finite(value: float) -> float:
    """OpenAI's stand-in for an impossible token (JSON has no -inf)."""
    return max(value, -9999.0)


class _RowStreamer:
    """Receives each step's tokens for the whole batch and sends text deltas per row."""

    def __init__(
        self, engine: TransformersEngine, rows: list[_Job], prompt_lens: list[int], max_new: int
    ) -> None:
        self.engine = engine
        self.rows = rows
        self.prompt_lens = prompt_lens
        self.max_new = max_new
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.sent = [0] * len(rows)
        self.done = [False] * len(rows)
        self.seen_prompt = False
        self.recorder: _Logprobs | None = None
        self.logprobs: list[list[TokenLogprob]] = [[] for _ in rows]

    def put(self, value: Any) -> None:
        if not self.seen_prompt:  # generate() first pushes the prompt ids
            self.seen_prompt = True
            return
        for i, token in enumerate(value.reshape(-1).tolist()):
            if self.done[i]:
                continue
            if token in self.engine.eos_ids:
                self._finish(i, "stop")
                continue
            self.tokens[i].append(token)
            if self.rows[i].params.logprobs is not None and self.recorder is not None:
                entry = self.recorder.entries(self.engine.tokenizer, i, token)
                if entry is not None:
                    self.logprobs[i].append(entry)
            if len(self.tokens[i]) >= self.max_new:
                self._finish(i, "length")
            else:
                self._flush(i)

    def end(self) -> None:
        """generate()'s end of stream; rows are finished by :meth:`finish_all`."""

    def finish_all(self) -> None:
        for i in range(len(self.rows)):
            if not self.done[i]:
                self._finish(i, "stop" if self.rows[i].cancelled else "length")

    def _flush(self, i: int) -> None:
        text = self.engine.tokenizer.decode(self.tokens[i], skip_special_tokens=True)
        # A trailing U+FFFD is half of a multi-byte character: wait for the rest.
        if len(text) > self.sent[i] and not text.endswith("\ufffd"):
            self.rows[i].send(self._delta(i, text[self.sent[i] :], None))
            self.sent[i] = len(text)

    def _finish(self, i: int, reason: str) -> None:
        self.done[i] = True
        text = self.engine.tokenizer.decode(self.tokens[i], skip_special_tokens=True)
        self.rows[i].send(self._delta(i, text[self.sent[i] :], reason))
        self.sent[i] = len(text)

    def _delta(self, i: int, text: str, reason: str | None) -> Delta:
        logprobs, self.logprobs[i] = tuple(self.logprobs[i]), []
        return Delta(text, reason, self.prompt_lens[i], len(self.tokens[i]), logprobs)
