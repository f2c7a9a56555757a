"""Bad audio files found before training: decode every entry once, leave out the unreadable ones, fail when too many.

:func:`check_entries` (which `build_dataset` runs) decodes every file once, leaves out the unreadable ones with one
warning, and fails up front with one line (naming the manifest, the count, the first files and the remedy) when
more than `max_failure_fraction` are bad. The datasets use the same rule for a file that fails at read time.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

from audiodiff import audio as _audio

from ..errors import AudiodiffError

__all__ = ["DatasetError", "check_entries"]

log = logging.getLogger(__name__)


class DatasetError(AudiodiffError, RuntimeError):
    """Too many of a dataset's files cannot be read; the message names the manifest, the files and the remedy."""


def _too_many(failures: Mapping[str, str], n: int, frac: float) -> bool:
    """More failures than `max_failure_fraction` allows (one bad file is always tolerated unless frac is 0)."""
    limit = 0 if frac == 0 else max(1.0, frac * n)
    return len(failures) > limit


def _failure_message(failures: Mapping[str, str], n: int, frac: float, source) -> str:
    where = f"manifest {source}" if source is not None else "the dataset"
    first = "; ".join(f"{p}: {r}" for p, r in list(failures.items())[:3])
    more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
    remedy = (f"run `audiodiff prepare source=<your audio folder> out={source}` again to rebuild it from the "
              "readable files" if source is not None else "rebuild the manifest with `audiodiff prepare`")
    return (f"{where}: {len(failures)} of {n} files failed to load (> {frac:.0%} allowed by max_failure_fraction); "
            f"first: {first}{more}; {remedy}")


def check_entries(entries: Sequence[dict], source=None, max_failure_fraction: float = 0.1,
                  progress: bool | None = None) -> tuple[list[dict], dict[str, str]]:
    """Decode every entry's file once (before training) and leave out the ones that cannot be used.

    Each file goes through :func:`audiodiff.audio.load` (missing, empty, undecodable, truncated, NaN or
    infinite samples are refused). The bad files are logged in one warning.

    Args:
        entries: manifest entries (absolute `path`).
        source: the manifest they come from (named in messages).
        max_failure_fraction: fail when more than this fraction (and more than one file) is bad; 0 fails on any.
        progress: tqdm bar; None shows one for 200 or more files on a terminal.
    Returns:
        `(good entries in order, {path: reason} for the bad ones)`.
    Raises:
        DatasetError: too many bad files: one line naming the manifest, the count, the first files and the remedy.
    """
    from tqdm.auto import tqdm

    good, failures = [], {}
    bar = tqdm(entries, desc="checking audio files", unit="file", dynamic_ncols=True,
               disable=(len(entries) < 200 or None) if progress is None else not progress)
    for e in bar:
        try:
            _audio.load(e["path"], mono=False)
        except _audio.AudioError as err:
            failures[e["path"]] = err.problem
            continue
        good.append(e)
    if _too_many(failures, len(entries), max_failure_fraction) or (failures and not good):
        raise DatasetError(_failure_message(failures, len(entries), max_failure_fraction, source))
    if failures:
        first = "; ".join(f"{p}: {r}" for p, r in list(failures.items())[:3])
        log.warning("%s: leaving out %d of %d files that cannot be read (first: %s%s); run `audiodiff prepare` "
                    "again to drop them from the manifest", source or "dataset", len(failures), len(entries), first,
                    f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
    return good, failures

