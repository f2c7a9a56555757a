"""Shared fixtures: the real recordings in ../shared/data and a CPU-friendly torch set-up."""
import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(os.environ.get("AUDIODIFF_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skipped when absent unless AUDIODIFF_REQUIRE_SHARED_DATA=1 (then it fails)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("AUDIODIFF_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"AUDIODIFF_REQUIRE_SHARED_DATA=1 but {SHARED_DATA} is missing")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
