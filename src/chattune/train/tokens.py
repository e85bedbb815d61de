"""Tokenized splits on disk: flat token and label arrays plus row offsets, memory-mapped.

A split is a folder of three numpy ``.npy`` files: ``input_ids`` and ``labels`` (int32, every
row's tokens one after another) and ``offsets`` (int64, row ``i`` is ``offsets[i]`` to
``offsets[i + 1]``). Why ``.npy``: numpy opens it memory-mapped with no other dependency,
any tool reads it (``np.load``), and rows are plain slices; the header's shape field is
padded for growth, so the writer streams rows and fills in the length at the end.

Readers map the files (:func:`open_split`): a process holds only the rows it touches, so
memory does not grow with the split (the pages read stay in the page cache, shared by every
rank on the machine), and a row is read only when a batch takes it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, overload

from chattune.errors import ValidationError
from chattune.train.template import Example

FORMAT = "npy-int32-v1"
"""Part of the preprocess cache key: caches written in another layout are never read."""
ARRAYS = {"input_ids": "<i4", "labels": "<i4", "offsets": "<i8"}


class _Stream:
    """One ``.npy`` file written as values arrive: a header for 0 values, rewritten at the end
    (numpy pads the shape field, so the header keeps its size)."""

    def __init__(self, path: Path, dtype: str) -> None:
        import numpy as np

        self.dtype, self.count = np.dtype(dtype), 0
        self.file: IO[bytes] = open(path, "wb")  # noqa: SIM115 (closed by finish/close)
        self._header(0)

    def _header(self, count: int) -> None:
        from numpy.lib import format as npy

        self.file.seek(0)
        npy.write_array_header_1_0(
            self.file, {"descr": self.dtype.str, "fortran_order": False, "shape": (count,)}
        )

    def write(self, values: Sequence[int] | Any) -> None:
        import numpy as np

        array = np.asarray(values, dtype=self.dtype)
        self.file.write(array.tobytes())
        self.count += len(array)

    def finish(self) -> None:
        self.file.flush()
        self._header(self.count)
        self.file.close()


class SplitWriter:
    """Write one split's rows into ``folder`` atomically: a staging folder renamed at
    :meth:`commit`; :meth:`abort` (or an error inside ``with``) leaves nothing behind.

    >>> with SplitWriter(Path("pre/train.tokens")) as w:  # doctest: +SKIP
    ...     w.add([1, 2, 3], [-100, 2, 3])
    ...     w.commit()
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.staging = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.streams = {n: _Stream(self.staging / f"{n}.npy", t) for n, t in ARRAYS.items()}
        self.streams["offsets"].write([0])
        self.rows = 0

    def add(self, input_ids: Sequence[int], labels: Sequence[int]) -> None:
        """Append one row (an internal invariant: ids and labels have the same length)."""
        assert len(input_ids) == len(labels) and len(input_ids) > 0
        self.streams["input_ids"].write(input_ids)
        self.streams["labels"].write(labels)
        self.streams["offsets"].write([self.streams["input_ids"].count])
        self.rows += 1

    def commit(self) -> Path:
        for stream in self.streams.values():
            stream.finish()
        if self.folder.exists():  # an earlier run's output, not reused: replaced whole
            shutil.rmtree(self.folder)
        os.replace(self.staging, self.folder)
        return self.folder

    def abort(self) -> None:
        for stream in self.streams.values():
            stream.file.close()
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if self.staging.exists():  # not committed: an error, or a caller that gave up
            self.abort()


class TokenSplit(Sequence[Example]):
    """A preprocessed split, memory-mapped: ``split[i]`` is one :class:`Example`, a slice a
    list of them; nothing is read until asked for."""

    def __init__(self, folder: Path) -> None:
        import numpy as np

        self.folder = folder
        self.input_ids, self.labels, self.offsets = (
            np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> Example: ...
    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...
    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} of a split of {len(self)}")
        i %= len(self)
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return Example(self.input_ids[start:end].tolist(), self.labels[start:end].tolist())

    def lengths(self) -> Any:
        """Every row's token count (a numpy array read from the offsets alone)."""
        import numpy as np

        return np.diff(self.offsets)


def open_split(path: str | Path) -> TokenSplit:
    """The split preprocess wrote at ``path``, memory-mapped; a one-line error for anything
    else (a JSON-lines cache of an older chattune)."""
    folder = Path(path)
    missing = [n for n in ARRAYS if not (folder / f"{n}.npy").is_file()]
    if missing:
        raise ValidationError(
            f"{folder}: not a preprocessed split (no {', '.join(m + '.npy' for m in missing)})",
            "run the job's preprocess stage again (`settings.force_rerun: true`)",
        )
    return TokenSplit(folder)
