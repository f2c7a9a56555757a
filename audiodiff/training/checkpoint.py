"""Run directories and atomic checkpoints: moved to :mod:`audiodiff.runs.checkpoint` (the run format layer).

This old name is the very same module object (not a copy), so existing imports, and patches of its
functions in tests, reach the code that training, the pipeline and the vocoder trainer call.
"""
import sys

from ..runs import checkpoint as _checkpoint

sys.modules[__name__] = _checkpoint
