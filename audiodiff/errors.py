"""The package's exception base classes: every error audiodiff raises on purpose derives from `AudiodiffError`.

- `AudiodiffError`: something the user can act on; `str(e)` is one line naming the file or setting at fault.
  The command line prints it as `audiodiff <command>: error: <message>` and exits 1 (a failure).
- `UsageError`: a bad argument or setting (the message lists the allowed values); the command line exits 2.

Each module keeps its own class (`AudioError`, `CheckpointError`, `PipelineError`, ...) so callers can catch
what they expect; those classes derive from these two, and this module imports nothing from the package.
"""
from __future__ import annotations


class AudiodiffError(Exception):
    """An error audiodiff raised on purpose; the message is one line that names the file or setting."""

    exit_code = 1


class UsageError(AudiodiffError, ValueError):
    """A bad argument, setting or request; the message names it and the allowed values."""

    exit_code = 2
