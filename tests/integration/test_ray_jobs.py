"""The Ray side of a `ray` compute target, against a real local Ray head (Jobs API)."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chattune.compute import ray_jobs
from chattune.errors import ConflictError, NotFoundError, RuntimeFailure, ValidationError
from tests.ray_head import RayHead, start_ray_head

pytest.importorskip("ray.job_submission", reason="Ray is not installed (chattune[ray])")

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    # Ray's own tail_job_logs passes ssl=None to aiohttp
    pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning"),
]

JOB_TIMEOUT_S = 90  # a tiny job takes ~3 s (the first one starts Ray's job supervisor)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    ray_head = start_ray_head(tmp_path_factory.mktemp("rayhead"))
    try:
        yield ray_head
    finally:
        ray_head.stop()


def _python(code: str, *args: str) -> list[str]:
    """An entrypoint running `code` with this interpreter (the job gets no venv activated)."""
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_job_runs_to_completed_with_logs_env_and_files(head: RayHead, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    code = """
        import os, sys
        import chattune
        print("line one", flush=True)
        print("value", os.environ["CHATTUNE_TEST_VALUE"])
        print("package", chattune.__file__)
        with open(sys.argv[1], "w") as f:
            f.write(os.getcwd())
    """
    sid = ray_jobs.submit(
        head.address,
        _python(code, str(out)),
        submission_id="complete-1",
        env={"CHATTUNE_TEST_VALUE": "42"},
    )
    assert sid == "complete-1"
    assert ray_jobs.status(head.address, sid) in ("queued", "running", "completed")
    assert ray_jobs.wait(head.address, sid, timeout_s=JOB_TIMEOUT_S, poll_s=0.3) == "completed"
    info = ray_jobs.info(head.address, sid)
    assert info["exit_code"] == 0 and info["ray_status"] == "SUCCEEDED"
    assert info["finished_at"] >= info["started_at"] > 0
    text = ray_jobs.logs(head.address, sid)
    assert "line one" in text and "value 42" in text
    assert f"package {Path(__file__).parents[2] / 'src' / 'chattune'}" in text  # project venv
    assert out.read_text() == str(head.cwd)  # a job starts in the head's current folder
    # following a finished job returns what it printed and ends
    assert "value 42" in "".join(ray_jobs.tail(head.address, sid, timeout_s=30))


def test_working_dir_is_uploaded_and_becomes_the_current_folder(
    head: RayHead, tmp_path: Path
) -> None:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "hello.txt").write_text("hello from working_dir")
    code = "import os; print(open('hello.txt').read()); print('cwd', os.getcwd())"
    sid = ray_jobs.submit(
        head.address, _python(code), submission_id="wd-1", working_dir=str(code_dir)
    )
    assert ray_jobs.wait(head.address, sid, timeout_s=JOB_TIMEOUT_S, poll_s=0.3) == "completed"
    text = ray_jobs.logs(head.address, sid)
    assert "hello from working_dir" in text
    assert f"cwd {head.temp_dir}" in text  # an unpacked copy on the node, not code_dir


def test_tail_streams_output_while_the_job_runs(head: RayHead) -> None:
    code = """
        import time
        for i in range(3):
            print(f"tick {i}", flush=True)
            time.sleep(1)
    """
    sid = ray_jobs.submit(head.address, _python(code), submission_id="tail-1")
    chunks = list(ray_jobs.tail(head.address, sid, timeout_s=JOB_TIMEOUT_S))
    joined = "".join(chunks)
    assert all(f"tick {i}" in joined for i in range(3)), joined
    assert ray_jobs.wait(head.address, sid, timeout_s=30, poll_s=0.3) == "completed"


def test_failing_job_is_failed_with_exit_code(head: RayHead) -> None:
    sid = ray_jobs.submit(
        head.address, _python("import sys; print('boom'); sys.exit(3)"), submission_id="fail-1"
    )
    assert ray_jobs.wait(head.address, sid, timeout_s=JOB_TIMEOUT_S, poll_s=0.3) == "failed"
    info = ray_jobs.info(head.address, sid)
    assert info["exit_code"] == 3 and info["message"]
    assert "boom" in ray_jobs.logs(head.address, sid)


def test_stop_sends_sigterm_and_the_job_reads_canceled(head: RayHead, tmp_path: Path) -> None:
    flag = tmp_path / "got-sigterm"
    code = """
        import signal, sys, time
        def on_term(signum, frame):  # what chattune's worker does: clean up, mark canceled
            time.sleep(4)  # longer than Ray's default 3 s grace: stop_timeout_s gives 10
            open(sys.argv[1], "w").write("SIGTERM")
            sys.exit(1)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        time.sleep(600)
    """
    sid = ray_jobs.submit(
        head.address, _python(code, str(flag)), submission_id="stop-1", stop_timeout_s=10
    )
    _wait_for(
        lambda: "ready" in ray_jobs.logs(head.address, sid), JOB_TIMEOUT_S, "the job to start"
    )
    assert ray_jobs.status(head.address, sid) == "running"
    assert ray_jobs.stop(head.address, sid) is True
    assert ray_jobs.wait(head.address, sid, timeout_s=30, poll_s=0.3) == "canceled"
    assert flag.read_text() == "SIGTERM"
    assert ray_jobs.stop(head.address, sid) is False  # already over


def test_missing_paths_asks_the_cluster(head: RayHead, tmp_path: Path) -> None:
    there = tmp_path / "seen.jsonl"
    there.write_text("{}\n")
    gone = str(tmp_path / "not-there.jsonl")
    found = ray_jobs.missing_paths(head.address, [str(there), gone], python=sys.executable)
    assert found == [gone]
    with pytest.raises(RuntimeFailure, match=r"could not run /no/python .*install chattune"):
        ray_jobs.missing_paths(head.address, [str(there)], python="/no/python")


def test_stop_a_plain_sleep(head: RayHead) -> None:
    sid = ray_jobs.submit(head.address, ["sleep", "600"], submission_id="sleep-1")
    _wait_for(lambda: ray_jobs.status(head.address, sid) == "running", JOB_TIMEOUT_S, "running")
    assert ray_jobs.stop(head.address, sid) is True
    assert ray_jobs.wait(head.address, sid, timeout_s=30, poll_s=0.3) == "canceled"


def test_ids_unknown_and_duplicate(head: RayHead) -> None:
    for call in (ray_jobs.status, ray_jobs.logs, ray_jobs.stop):
        with pytest.raises(NotFoundError, match="no-such-job"):
            call(head.address, "no-such-job")
    with pytest.raises(NotFoundError):
        list(ray_jobs.tail(head.address, "no-such-job", timeout_s=10))
    ray_jobs.submit(head.address, ["true"], submission_id="dup-1")
    with pytest.raises(ConflictError, match="dup-1"):
        ray_jobs.submit(head.address, ["true"], submission_id="dup-1")
    with pytest.raises(ValidationError):
        ray_jobs.submit(head.address, [], submission_id="empty-1")
    with pytest.raises(ValidationError):
        ray_jobs.status(head.address, "bad id/with slash")


def test_explicit_address_wins_over_ray_address(
    head: RayHead, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", f"http://127.0.0.1:{_free_port()}")
    sid = ray_jobs.submit(head.address, ["true"], submission_id="env-1")
    assert ray_jobs.wait(head.address, sid, timeout_s=JOB_TIMEOUT_S, poll_s=0.3) == "completed"
    assert os.environ["RAY_ADDRESS"].startswith("http://127.0.0.1:")  # restored


def test_check_reports_version_and_resources(head: RayHead) -> None:
    import ray

    result = ray_jobs.check(head.address)
    assert result["reachable"] is True and result["error"] is None, result
    assert result["ray_version"] == result["client_ray_version"] == ray.__version__
    assert result["nodes"] == 1
    assert result["resources"]["CPU"] == 2
    assert not any(name.startswith("node:") for name in result["resources"])


def test_unreachable_address_is_a_one_line_error_with_a_fix() -> None:
    address = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(RuntimeFailure) as caught:
        ray_jobs.status(address, "any-job")
    message = str(caught.value)
    assert "\n" not in message and address in message
    assert "not reachable" in caught.value.message and "ray start --head" in caught.value.hint
    assert time.monotonic() - started < ray_jobs.CONNECT_TIMEOUT_S + 5
    result = ray_jobs.check(address)
    assert result["reachable"] is False and address in result["error"]
    with pytest.raises(RuntimeFailure, match="not reachable"):
        ray_jobs.check(address, strict=True)
    with pytest.raises(ValidationError, match="http"):
        ray_jobs.status("127.0.0.1:8265", "any-job")


def test_head_stop_leaves_no_process_even_with_a_running_job(tmp_path: Path) -> None:
    with start_ray_head(tmp_path / "second") as second:  # runs beside the module's head
        sid = ray_jobs.submit(second.address, ["sleep", "600"], submission_id="orphan-1")
        _wait_for(
            lambda: ray_jobs.status(second.address, sid) == "running", JOB_TIMEOUT_S, "running"
        )
        pids = [p.pid for p in second.processes()]
        assert any(
            p.cmdline()[:2] == ["sleep", "600"] for p in second.processes()
        )  # the job's own session is tracked too
    assert second.processes() == []
    assert not second.temp_dir.exists()
    alive = [pid for pid in pids if _pid_alive(pid)]
    assert alive == []


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_ray_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)  # import fails
    with pytest.raises(RuntimeFailure) as caught:
        ray_jobs.stop("http://127.0.0.1:8265", "any-job")
    assert caught.value.hint == "pip install 'chattune[ray]'"
    assert "pip install 'chattune[ray]'" in ray_jobs.check("http://127.0.0.1:8265")["error"]
