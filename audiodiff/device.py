"""The device a command runs on, chosen from a setting with a one-line error when this machine does not have it.

`device=auto` (or None) is CUDA when available, else the CPU. `cuda`, `cuda:<index>` and `mps` are checked against
what torch sees here, so `device=cuda` on a machine without a GPU says so and names the allowed values instead of
failing deep inside torch. Training (:func:`audiodiff.training.runtime.pick_device`), the pipeline and the web page
all choose through :func:`resolve_device`.
"""
from __future__ import annotations

import re

from .errors import UsageError

__all__ = ["DeviceError", "resolve_device", "available_devices"]


class DeviceError(UsageError):
    """A device setting this machine cannot honour; the message names the setting and the devices it has."""


def available_devices() -> list[str]:
    """The device names this machine can run on: `cpu`, then `cuda:0..n-1` and `mps` where present."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(name, setting: str = "device") -> str:
    """`name` (None, `auto`, `cpu`, `cuda`, `cuda:<index>`, `mps`, or a torch.device) as a device this machine has.

    Raises:
        DeviceError: an unknown name, or a device this machine does not have (names `setting` and the devices
            available here).
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    have = available_devices()
    allowed = f"auto, {', '.join(have)}"
    if not isinstance(name, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise DeviceError(f"{setting}={name!r} is not a device; allowed here: {allowed}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"{setting}={name!r} but this machine has no CUDA GPU that torch can use; allowed here: "
                              f"{allowed}")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"{setting}={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                              f"allowed here: {allowed}")
    if name == "mps" and "mps" not in have:
        raise DeviceError(f"{setting}='mps' but this machine has no Apple GPU that torch can use; allowed here: {allowed}")
    return name
