"""Worker health as a pure decision: (probe state, what was seen) → (new state, action).

The supervisor does the I/O (polls the process, GETs ``/health/*``) and applies the action;
every rule lives here, so the property tests can check it without processes or clocks.
Azure ML semantics:

* until first ready, readiness is polled every tick (:data:`STARTUP_POLL` seconds), so
  ``ready`` is reported as soon as the model is loaded; the liveness ``initial_delay`` only
  bounds that wait;
* once ready, liveness every ``period``: ``failure_threshold`` misses in a row restart the
  worker; readiness every ``period``: ``failure_threshold`` misses take it out of rotation
  and ``success_threshold`` successes bring it back;
* a worker that exits (or overruns ``initial_delay``) is restarted, unless its deployment
  never became ready: a model that cannot load fails the deployment instead of crash-looping.

>>> state = ProbeState(started=0.0)
>>> decide(state, Seen(now=1.0, ready=True), ProbeSettings(initial_delay=600),
...        ProbeSettings(), ever_ready=False).action
<Action.READY: 'ready'>
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from chattune.serving.settings import ProbeSettings

STARTUP_POLL = 0.25
"""Seconds between readiness polls while a worker loads (and the supervisor's tick)."""


class Action(StrEnum):
    """What the supervisor does with an instance after a probe round."""

    NONE = "none"
    READY = "ready"
    """Put it in rotation (first readiness, or back after readiness failures)."""
    UNREADY = "unready"
    """Take it out of rotation; it keeps running."""
    RESTART = "restart"
    """Kill it and start a fresh one."""
    FAIL = "fail"
    """Stop the whole deployment and report it failed."""


@dataclass(frozen=True)
class ProbeState:
    """What the probes know about one worker process (monotonic seconds)."""

    started: float
    loaded: bool = False
    """Answered readiness once: the model is loaded (it stays loaded until restarted)."""
    ready: bool = False
    """In rotation: gets requests."""
    live_failures: int = 0
    ready_failures: int = 0
    ready_successes: int = 0
    next_live: float = 0.0
    next_ready: float = 0.0

    @property
    def label(self) -> str:
        """``ready``, ``unready`` (loaded but out of rotation) or ``starting``."""
        return "ready" if self.ready else ("unready" if self.loaded else "starting")


@dataclass(frozen=True)
class Seen:
    """One probe round: the process exit code and the probe answers (``None``: not probed)."""

    now: float
    exit_code: int | None = None
    live: bool | None = None
    ready: bool | None = None


@dataclass(frozen=True)
class Verdict:
    """The instance's next state, the action to apply and why (for logs and errors)."""

    state: ProbeState
    action: Action = Action.NONE
    why: str = ""


def due(state: ProbeState, now: float, live: ProbeSettings) -> tuple[bool, bool]:
    """Whether to probe (liveness, readiness) now; nothing once the startup budget is spent."""
    if not state.loaded:
        return False, now - state.started <= live.initial_delay
    return now >= state.next_live, now >= state.next_ready


def decide(
    state: ProbeState,
    seen: Seen,
    live: ProbeSettings,
    ready: ProbeSettings,
    *,
    ever_ready: bool,
) -> Verdict:
    """The action for one instance after a probe round (pure: no clock, no I/O).

    ``ever_ready`` is whether any instance of the deployment has been ready: until then a
    worker that dies fails the deployment rather than restarting.
    """
    if seen.exit_code is not None:
        down = replace(state, ready=False)
        if ever_ready:
            return Verdict(down, Action.RESTART, f"exited with code {seen.exit_code}")
        why = f"worker exited with code {seen.exit_code} before it was ready"
        return Verdict(down, Action.FAIL, why)
    if not state.loaded:
        return _starting(state, seen, live, ready, ever_ready)
    if seen.live is not None:
        state = _after_live(state, seen, live)
        if state.live_failures >= live.failure_threshold:
            why = f"liveness probe failed {state.live_failures} times"
            return Verdict(state, Action.RESTART, why)
    if seen.ready is None:
        return Verdict(state)
    return _after_ready(state, seen, ready)


def _starting(
    state: ProbeState, seen: Seen, live: ProbeSettings, ready: ProbeSettings, ever_ready: bool
) -> Verdict:
    if seen.now - state.started > live.initial_delay:
        why = f"not ready within liveness initial_delay={live.initial_delay:g}s"
        return Verdict(state, Action.RESTART if ever_ready else Action.FAIL, why)
    if not seen.ready:
        return Verdict(state)
    loaded = replace(
        state,
        loaded=True,
        ready=True,
        next_live=seen.now + live.period,
        next_ready=seen.now + ready.period,
    )
    return Verdict(loaded, Action.READY, f"ready after {seen.now - state.started:.1f}s")


def _after_live(state: ProbeState, seen: Seen, live: ProbeSettings) -> ProbeState:
    failures = 0 if seen.live else state.live_failures + 1
    return replace(state, live_failures=failures, next_live=seen.now + live.period)


def _after_ready(state: ProbeState, seen: Seen, ready: ProbeSettings) -> Verdict:
    state = replace(state, next_ready=seen.now + ready.period)
    if seen.ready:
        state = replace(state, ready_failures=0, ready_successes=state.ready_successes + 1)
        if not state.ready and state.ready_successes >= ready.success_threshold:
            return Verdict(replace(state, ready=True), Action.READY, "readiness probe passed")
        return Verdict(state)
    state = replace(state, ready_successes=0, ready_failures=state.ready_failures + 1)
    if state.ready and state.ready_failures >= ready.failure_threshold:
        why = f"readiness probe failed {state.ready_failures} times"
        return Verdict(replace(state, ready=False), Action.UNREADY, why)
    return Verdict(state)
