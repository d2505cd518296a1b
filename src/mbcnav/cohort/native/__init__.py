"""Compiled passes for the local cohort engine: C sources built once with the system compiler.

The Polars derivation costs about 1-2 ns per expression and patient, and a cohort run evaluates
hundreds of expressions per patient (decision 0005). The hot stages therefore also exist as C,
one pass per patient, compiled on first use with the machine's C compiler (``cc``, or ``$CC``)
into a shared library cached under the user's cache directory, keyed by a hash of the source and
the compiler, then loaded with ctypes (which releases the GIL during the call, so two batches run
on two cores).

Where no compiler works, or with ``MBCNAV_NATIVE=0``, the Polars stages run instead: they are the
reference, and the parity tests hold the two to the same results, column by column.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
# -O3 measured fastest: the generated program ran 25% faster than at -O1 and facts.c 9% faster
# than at -O2, for about half a second more on a first build (2.4 s against 1.9 s).
FLAGS = ("-O3", "-fPIC", "-shared", "-std=c99", "-fno-strict-aliasing")
_locks: dict[Path, threading.Lock] = {}
_locks_lock = threading.Lock()


class Column(ctypes.Structure):
    """common.h's `column`: an input as Arrow buffers (values, validity bitmap, first row), and for
    an Enum read from Parquet in place, its dictionary's codes and the code of a missing value."""

    _fields_ = [("values", ctypes.c_void_p), ("valid", ctypes.c_void_p), ("offset", ctypes.c_int64),
                ("table", ctypes.c_void_p), ("missing", ctypes.c_int64)]

    def __init__(self, values: int | None = None, valid: int | None = None, offset: int = 0,
                 table: int | None = None, missing: int = -1) -> None:
        super().__init__(values, valid, offset, table, missing)


def headers() -> dict[str, str]:
    """The shared header every compiled pass includes (file name -> text)."""
    return {"common.h": (HERE / "common.h").read_text(encoding="utf-8")}


def zeros(_: str, size: int, dtype: Any) -> npt.NDArray[Any]:
    """A fresh zeroed buffer, for callers that keep what a pass writes (`Arena.take`'s signature)."""
    return np.zeros(size, dtype=dtype)


def enabled() -> bool:
    """Compiled passes are used unless MBCNAV_NATIVE is set to 0 / false / no / off."""
    return os.environ.get("MBCNAV_NATIVE", "1").strip().lower() not in {"0", "false", "no", "off"}


def cache_dir() -> Path:
    base = os.environ.get("MBCNAV_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mbcnav" / "native"


@cache
def compiler() -> tuple[str, str] | None:
    """(compiler command, its version line), or None when the machine has none that runs."""
    command = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not command:
        return None
    try:
        version = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return command, version.stdout.splitlines()[0] if version.stdout else command


def library(name: str, sources: dict[str, str]) -> ctypes.CDLL | None:
    """`sources` (file name -> text; the first is compiled, the others are headers it includes)
    built into a shared library, or None when compiled passes are off or the build fails.

    The build is cached by content: a new knowledge base or a new mbcnav version builds anew,
    a second run loads the cached file (a few milliseconds).
    """
    if not enabled():
        return None
    found = compiler()
    if found is None:
        log.warning("no C compiler found: cohorts run on the Polars stages only (slower)")
        return None
    command, version = found
    key = repr((sorted(sources.items()), version, FLAGS, sys.platform))
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    target = cache_dir() / f"{name}-{digest}.so"
    with _locks_lock:
        lock = _locks.setdefault(target, threading.Lock())
    with lock:   # one build per file in this process; other processes race safely (atomic rename)
        try:
            if not target.exists() and not _build(command, list(FLAGS), sources, target):
                return None
            return ctypes.CDLL(str(target))
        except OSError as err:   # a cache directory that cannot be written, a file that does not load
            log.warning("compiled passes unavailable (%s): using the Polars stages", err)
            return None


def _build(command: str, flags: list[str], sources: dict[str, str], target: Path) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mbcnav-build-") as tmp:
        for file, text in sources.items():
            Path(tmp, file).write_text(text, encoding="utf-8")
        main = Path(tmp, next(iter(sources)))
        built = Path(tmp, "out.so")
        try:
            subprocess.run([command, *flags, "-o", str(built), str(main)], capture_output=True, text=True,
                           timeout=300, check=True)
        except subprocess.CalledProcessError as err:
            log.warning("C build of %s failed, using the Polars stages:\n%s", main.name, err.stderr[-2000:])
            return False
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("C build of %s failed (%s): using the Polars stages", main.name, err)
            return False
        # Another process may build the same file at the same time: each renames its own copy.
        staged = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
        shutil.copyfile(built, staged)
        os.replace(staged, target)
    return True


class Arena:
    """Output buffers reused batch after batch, one set per thread.

    A fresh buffer costs a page fault per 4 KiB when first written (the kernel zeroes each page),
    about a tenth of the compiled passes' time at 500,000 rows. The passes overwrite every byte
    they hand on, and what a batch returns is built from copies, so the next batch on the same
    thread may reuse them.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def take(self, key: str, size: int, dtype: Any) -> npt.NDArray[Any]:
        """`size` items of `dtype`, contents undefined."""
        store: dict[str, npt.NDArray[np.uint8]] = self._local.__dict__.setdefault("buffers", {})
        nbytes = size * np.dtype(dtype).itemsize
        found = store.get(key)
        if found is None or found.nbytes < nbytes:
            found = store[key] = np.empty(max(nbytes, 1), dtype=np.uint8)
        return found[:nbytes].view(dtype)
