"""A training rank that only waits (torchrun starts it in the orphan tests), with the guard
``python -m chattune.train.distributed`` runs first."""

from __future__ import annotations

import time

from chattune.compute import lifeline
from chattune.train.distributed import TORCHRUN

if __name__ == "__main__":
    lifeline.die_with_parent_named(TORCHRUN)
    time.sleep(600)
