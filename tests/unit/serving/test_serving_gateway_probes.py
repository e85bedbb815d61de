"""The pure probe rules (property tests): when a worker is restarted, rotated, or fails."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from chattune.serving.gateway.probes import Action, ProbeState, Seen, Verdict, decide, due
from chattune.serving.settings import ProbeSettings

probe_settings = st.builds(
    ProbeSettings,
    initial_delay=st.floats(1.0, 600.0),
    period=st.floats(0.1, 30.0),
    timeout=st.just(1.0),
    failure_threshold=st.integers(1, 8),
    success_threshold=st.integers(1, 8),
)
results = st.lists(st.booleans(), min_size=1, max_size=40)


def loaded(ready: bool = True) -> ProbeState:
    """A worker that has loaded its model (``ready``: in rotation)."""
    return ProbeState(started=0.0, loaded=True, ready=ready)


def run(
    state: ProbeState, seen: list[Seen], live: ProbeSettings, ready: ProbeSettings
) -> list[Verdict]:
    """Apply ``decide`` round after round, as the supervisor does."""
    verdicts = []
    for s in seen:
        verdict = decide(state, s, live, ready, ever_ready=True)
        verdicts.append(verdict)
        state = verdict.state
    return verdicts


@given(
    probe_settings,
    st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), max_size=30),
    st.booleans(),
)
def test_no_restart_or_failure_while_starting_within_initial_delay(
    live: ProbeSettings, rounds: list[tuple[float, bool]], ever_ready: bool
) -> None:
    state = ProbeState(started=0.0)
    for fraction, answered in sorted(rounds):
        now = fraction * live.initial_delay  # never past it (no float rounding from a sum)
        assert due(state, now, live) == (False, True)  # readiness polled every round
        seen = Seen(now, ready=answered)
        verdict = decide(state, seen, live, ProbeSettings(), ever_ready=ever_ready)
        assert verdict.action is (Action.READY if answered else Action.NONE)
        if verdict.state.loaded:
            break  # started: the probes of a loaded worker take over
        state = verdict.state


@given(probe_settings, st.floats(0.001, 1000.0), st.booleans())
def test_starting_past_initial_delay_restarts_or_fails(
    live: ProbeSettings, late: float, ever_ready: bool
) -> None:
    state = ProbeState(started=0.0)
    now = live.initial_delay + late
    assert due(state, now, live) == (False, False)  # not probed: the verdict does not wait on it
    verdict = decide(state, Seen(now), live, ProbeSettings(), ever_ready=ever_ready)
    assert verdict.action is (Action.RESTART if ever_ready else Action.FAIL)
    assert "initial_delay" in verdict.why


@given(probe_settings, results)
def test_restart_exactly_when_consecutive_liveness_failures_reach_threshold(
    live: ProbeSettings, answers: list[bool]
) -> None:
    verdicts = run(loaded(), [Seen(float(t), live=a) for t, a in enumerate(answers)], live, live)
    streak = 0
    for answer, verdict in zip(answers, verdicts, strict=True):
        streak = 0 if answer else streak + 1
        expected = Action.RESTART if streak >= live.failure_threshold else Action.NONE
        assert verdict.action is expected
        if expected is Action.RESTART:
            assert verdict.why == f"liveness probe failed {streak} times"
            break  # the supervisor replaces the instance


@given(probe_settings, results)
def test_unprobed_rounds_do_not_count_as_failures(live: ProbeSettings, answers: list[bool]) -> None:
    seen = [Seen(float(t)) for t in range(len(answers))]
    verdicts = run(replace(loaded(), live_failures=live.failure_threshold - 1), seen, live, live)
    assert all(v.action is Action.NONE for v in verdicts)


@given(probe_settings, results)
def test_readiness_takes_out_after_failures_and_back_after_successes(
    ready: ProbeSettings, answers: list[bool]
) -> None:
    live = ProbeSettings(initial_delay=600)
    verdicts = run(loaded(), [Seen(float(t), ready=a) for t, a in enumerate(answers)], live, ready)
    in_rotation, fails, passes = True, 0, 0
    for answer, verdict in zip(answers, verdicts, strict=True):
        fails, passes = (0, passes + 1) if answer else (fails + 1, 0)
        was = in_rotation
        if was and fails >= ready.failure_threshold:
            in_rotation = False
        elif not was and passes >= ready.success_threshold:
            in_rotation = True
        assert verdict.state.ready is in_rotation
        change = {(True, False): Action.UNREADY, (False, True): Action.READY}
        assert verdict.action is change.get((was, in_rotation), Action.NONE)
        assert verdict.state.loaded  # readiness never restarts a worker


@given(
    st.builds(
        ProbeState,
        started=st.floats(0, 100),
        loaded=st.booleans(),
        ready=st.booleans(),
        live_failures=st.integers(0, 5),
    ),
    st.integers(-15, 255),
    st.booleans(),
)
def test_an_exited_worker_restarts_only_if_the_deployment_was_ever_ready(
    state: ProbeState, code: int, ever_ready: bool
) -> None:
    live = ProbeSettings(initial_delay=600)
    verdict = decide(state, Seen(200.0, exit_code=code), live, live, ever_ready=ever_ready)
    assert not verdict.state.ready
    if ever_ready:
        assert verdict.action is Action.RESTART
    else:
        assert verdict.action is Action.FAIL
        assert verdict.why == f"worker exited with code {code} before it was ready"


@given(probe_settings, probe_settings, st.floats(0.0, 100.0))
def test_ready_worker_is_probed_once_per_period(
    live: ProbeSettings, ready: ProbeSettings, now: float
) -> None:
    state = decide(ProbeState(started=now), Seen(now, ready=True), live, ready, ever_ready=False)
    assert state.action is Action.READY
    assert due(state.state, now, live) == (False, False)
    assert due(state.state, now + live.period, live)[0]
    assert due(state.state, now + ready.period, live)[1]
    after = decide(state.state, Seen(now + live.period, live=True), live, ready, ever_ready=True)
    assert not due(after.state, now + live.period + live.period / 2, live)[0]
