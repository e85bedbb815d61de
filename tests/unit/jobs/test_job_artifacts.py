"""Pieces of a run's artifacts: each stage's log, the loss-curve figure."""

from __future__ import annotations

from chattune.jobs.artifacts import stage_logs
from chattune.jobs.metrics import loss_figure

LOG = """\
10:00:00 INFO job j started (pid 1)
10:00:00 INFO stage validate: reused (cache hit)
10:00:01 INFO stage finetune: running
10:00:02 INFO step 1/2 loss=3.2
10:00:03 ERROR stage finetune failed: boom
Traceback (most recent call last):
  File "x.py", line 1
10:00:04 INFO job j failed
10:01:00 INFO job j resumed (pid 2)
10:01:01 INFO stage finetune: running
10:01:02 INFO stage finetune: completed in 1.0s
"""


def test_each_stage_gets_its_own_lines_across_resumes() -> None:
    logs = stage_logs(LOG)
    assert list(logs) == ["validate", "finetune"]
    assert logs["validate"] == "10:00:00 INFO stage validate: reused (cache hit)\n"
    finetune = logs["finetune"].splitlines()
    assert finetune[1] == "10:00:02 INFO step 1/2 loss=3.2"
    assert '  File "x.py", line 1' in finetune  # the traceback stays with its stage
    assert "job j failed" not in logs["finetune"] and "resumed" not in logs["finetune"]
    assert finetune[-1].endswith("completed in 1.0s")


def test_loss_figure_names_its_lines_and_uses_integer_steps() -> None:
    import matplotlib.pyplot as plt

    history = {"loss": [(1, 3.0), (2, 2.5), (2, 2.5), (3, 2.0)], "eval_loss": [(3, 2.2)]}
    fig = loss_figure(history, "job-1 · tiny-random-phi3", base_eval_loss=2.9)
    ax = fig.axes[0]
    assert ax.get_title() == "job-1 · tiny-random-phi3"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        "train loss",
        "eval loss (during training)",
        "base model, test split (2.9000)",
    ]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]  # a step logged twice is drawn once
    assert all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(fig)
