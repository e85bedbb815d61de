"""Gateway and worker logs are rotated by size (config ``logs: {max_mb, keep}``); they used to
grow forever (about 221 bytes per served request)."""

from __future__ import annotations

from pathlib import Path

import yaml

from chattune.serving.gateway.supervisor import Supervisor
from chattune.workspace import Workspace, rotate_log


def test_a_log_held_open_in_append_mode_keeps_being_written_after_rotation(
    tmp_path: Path,
) -> None:
    log = tmp_path / "demo.log"
    with open(log, "ab", buffering=0) as writer:  # as a worker's stdout is
        writer.write(b"old line\n" * 300)
        assert rotate_log(log, 1024, keep=2)
        writer.write(b"new line\n")
    assert log.read_bytes() == b"new line\n"  # not written past a hole at the old offset
    assert (tmp_path / "demo.log.1").read_bytes() == b"old line\n" * 300
    for _ in range(3):
        log.write_bytes(b"x" * 2048)
        rotate_log(log, 1024, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.log", "demo.log.1", "demo.log.2"]


def test_the_gateway_rotates_its_own_logs_past_the_configured_size(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    config = yaml.safe_load(ws.config_path.read_text())
    ws.config_path.write_text(yaml.safe_dump(config | {"logs": {"max_mb": 0.001, "keep": 1}}))
    folder = ws.endpoint_dir("my-ep")
    folder.mkdir(parents=True)
    for name in ("gateway.log", "demo.log", "small.log", "demo.node1.log", "gateway.node1.log"):
        (folder / name).write_bytes(b"x" * (10 if name == "small.log" else 4096))
    rotated = Supervisor(ws, "my-ep").rotate_logs(every_s=0)
    assert sorted(p.name for p in rotated) == ["demo.log", "gateway.log"]
    node = Supervisor(ws, "my-ep", node="node1").rotate_logs(every_s=0)
    assert sorted(p.name for p in node) == ["demo.node1.log", "gateway.node1.log"]
    assert (folder / "demo.log").stat().st_size == 0 and (folder / "demo.log.1").exists()
