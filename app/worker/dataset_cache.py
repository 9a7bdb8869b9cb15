"""A worker host's local copies of the datasets it trains on, so that a dataset is
read from the database once per host rather than once per run.

The copy of a dataset is X (m, n_x) float64 as one `.npy` file named by the
dataset's sha256 (its content: the same data under two ids is one file), in
TWOLAYER_DATASET_CACHE_DIR (every worker process of the host shares it). The
first run reads the chunks from the database as before and writes them to a
temporary file as they pass; the file takes its name once complete and its
rows' digest gives the dataset's sha256 (else it is dropped). Later runs map
it (read-only: the pages are the OS's file cache, shared by the processes,
not each one's memory) and fall back to the database if its digest does not
match.

The digest is checked once per process per version of the file: a process
remembers the version it checked, or wrote (device, inode, size, mtime and
ctime, as fstat gives them for the very file it maps), and checks again
whenever the file it opens is another version. Any change through the file
system, a write, a truncation, a replacement, even a touch that puts the
mtime back, moves the ctime, so a copy damaged or altered after the check is
still detected before it is used. What a process no longer catches is a
change below the file system (a disk's silent corruption of pages read again
after the OS evicted them) during its own life: the next process does. A
used copy's mtime is its last use, for the eviction, set at most once a
minute (TOUCH_SECONDS: a touch is a new version for every process).

The least recently used files go once the directory holds more than
TWOLAYER_DATASET_CACHE_BYTES (0: no copies). A file in use by another
process may be deleted: its pages stay until it is unmapped. A copy that
cannot be written (a full disk) is dropped and the run trains on from the
database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from app.core.settings import Settings
from app.db.arrays import StoredDataset, dataset_sha256
from app.nn.data import ROW_GROUP

log = logging.getLogger("twolayer.worker")
BLOCK_ROWS = 64 * ROW_GROUP  # rows per block read from a copy
TOUCH_SECONDS = 60.0  # a used copy's mtime is set again once it is older than this

Version = tuple[int, int, int, int, int]
# this process's checked copies: path → (the version checked, the sha256 it matched)
_checked: dict[str, tuple[Version, str]] = {}


def _version(info: os.stat_result) -> Version:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class CachedRows:
    """A stored dataset's X as the engine's `Rows` source, from the local copy when
    there is a good one, else from the database (writing the copy on the way)."""

    def __init__(self, stored: StoredDataset, directory: Path, budget: int) -> None:
        self.stored, self.directory, self.budget = stored, directory, budget
        self.shape = stored.rows.shape
        self.path = directory / f"{stored.sha256}.npy"
        self.read_from_database = 0  # passes that read the chunks (for tests and logs)

    def _digest_is_the_datasets(self, rows: Any) -> bool:
        m, n_x = self.shape
        codes = self.stored.Y.ravel().astype(np.int8)
        return dataset_sha256(m, n_x, self.stored.classes, rows, codes) == self.stored.sha256

    def _map(self) -> tuple[np.ndarray, os.stat_result] | None:
        """The copy mapped read-only, and the fstat of the file mapped; None if
        there is none or it is not a C-ordered float64 X of the dataset's shape."""
        try:
            with open(self.path, "rb") as file:
                version = np.lib.format.read_magic(file)
                if version != (1, 0):
                    return None
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
                if dtype != np.float64 or fortran or shape != self.shape:
                    return None
                info = os.fstat(file.fileno())
                X = np.memmap(file, dtype=np.float64, mode="r", shape=shape, offset=file.tell())
        except (OSError, ValueError):
            return None
        return X, info

    def _copy(self) -> np.ndarray | None:
        mapped = self._map()
        if mapped is None:
            return None
        X, info = mapped
        version, key = _version(info), str(self.path)
        if _checked.get(key) != (version, self.stored.sha256):
            _checked.pop(key, None)
            rows = hashlib.sha256()
            for start in range(0, X.shape[0], BLOCK_ROWS):
                rows.update(X[start : start + BLOCK_ROWS].data)
            if not self._digest_is_the_datasets(rows):
                log.warning("dataset copy %s does not match its sha256: dropped", self.path.name)
                with contextlib.suppress(OSError):
                    self.path.unlink()
                return None
            _checked[key] = (version, self.stored.sha256)
        if time.time() - info.st_mtime > TOUCH_SECONDS:
            with contextlib.suppress(OSError):
                os.utime(self.path)  # used now: the last to be evicted (a new version)
        return X

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        X = self._copy()
        if X is not None:
            for start in range(0, X.shape[0], BLOCK_ROWS):
                yield start, X[start : start + BLOCK_ROWS]
            return
        self.read_from_database += 1
        m, n_x = self.shape
        if m * n_x * 8 > self.budget:
            yield from self.stored.rows.blocks()
            return
        temporary = self.directory / f".{self.stored.sha256}.{os.getpid()}.tmp"
        copy = _Copy(temporary, self.shape)
        rows = hashlib.sha256()
        try:
            for start, block in self.stored.rows.blocks():
                block = np.ascontiguousarray(block, np.float64)
                copy.write(block)
                rows.update(block.data)
                yield start, block
            if copy.finish() and self._digest_is_the_datasets(rows):
                written = os.stat(temporary)
                os.replace(temporary, self.path)
                self._written(written)
                evict(self.directory, self.budget, keep=self.path)
        finally:
            copy.finish()
            with contextlib.suppress(OSError):
                temporary.unlink()

    def _written(self, written: os.stat_result) -> None:
        """The copy this process wrote and checked, as it is once named (the rename
        moved its ctime), remembered as checked if it is still the same file."""
        with contextlib.suppress(OSError):
            named = os.stat(self.path)
            if _version(named)[:4] == _version(written)[:4]:
                _checked[str(self.path)] = (_version(named), self.stored.sha256)


class _Copy:
    """A copy being written, with write() rather than a mapping (a full disk is
    then an error, not a SIGBUS): any OSError drops it and the training goes on."""

    def __init__(self, path: Path, shape: tuple[int, int]) -> None:
        self.file: Any = None
        try:
            self.file = path.open("wb")
            header = {"descr": "<f8", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(self.file, header)
        except OSError as exc:
            self._drop(exc)

    def write(self, block: np.ndarray) -> None:
        if self.file is not None:
            try:
                self.file.write(block.data)
            except OSError as exc:
                self._drop(exc)

    def finish(self) -> bool:
        """Closed; True if the whole copy was written."""
        if self.file is None:
            return False
        try:
            self.file.close()
        except OSError as exc:
            self._drop(exc)
            return False
        self.file = None
        return True

    def _drop(self, exc: OSError) -> None:
        log.warning("no local copy of a dataset this time: %s", exc)
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
        self.file = None


def evict(directory: Path, budget: int, *, keep: Path) -> None:
    """The least recently used copies out until the directory holds at most `budget`."""
    copies = []
    for path in directory.glob("*.npy"):
        with contextlib.suppress(OSError):
            info = path.stat()
            copies.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in copies)
    for _, size, path in sorted(copies):
        if total <= budget:
            break
        if path != keep:
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size


def cache_directory(settings: Settings) -> Path | None:
    """The settings' directory, made if need be (mode 0700): None if the cache is
    off, or if the directory is not this user's own (another user could plant
    copies in it)."""
    if settings.dataset_cache_bytes == 0:
        return None
    directory = settings.dataset_cache_path
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        log.warning("no dataset cache: %s (%s)", directory, exc)
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        log.warning("no dataset cache: %s is not this user's own directory", directory)
        return None
    return directory


def rows_of(stored: StoredDataset, settings: Settings) -> Any:
    """The dataset's X for the engine: through this host's cache when it is on."""
    directory = cache_directory(settings)
    if directory is None:
        return stored.rows
    return CachedRows(stored, directory, settings.dataset_cache_bytes)
