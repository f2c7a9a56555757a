"""Audio I/O through soundfile, resampling through torchaudio, and the errors a user can act on.

Every reader goes through :func:`load`, which returns `(C, T)` float32 in [-1, 1] and raises
:class:`AudioError` naming the file and the problem (missing, empty, truncated, undecodable,
NaN/inf samples, zero channels). Nothing is silently repaired.
"""
from __future__ import annotations

import math
import os
import re
import uuid
from pathlib import Path

import numpy as np
import torch

from .errors import AudiodiffError

__all__ = ["AudioError", "load", "save", "info", "resample", "to_mono", "loudness_normalize", "SUBTYPES"]

# soundfile subtype for 16-bit WAV (what `save` writes by default) and the others we round-trip.
SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8")


class AudioError(AudiodiffError, ValueError):
    """An audio file could not be used; the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def info(path):
    """Return soundfile's info (`samplerate`, `channels`, `frames`, `duration`) or raise AudioError."""
    import soundfile as sf

    path = Path(path)
    _check_file(path)
    try:
        i = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError with terse text
        raise _decode_error(path, e) from None
    if i.channels <= 0:
        raise AudioError(path, "has zero channels")
    return i


def load(path, sample_rate: int | None = None, mono: bool = True) -> tuple[torch.Tensor, int]:
    """Read an audio file into a `(C, T)` float32 tensor and its sample rate.

    Args:
        path: any format libsndfile reads (WAV int/float, FLAC, OGG/Vorbis, MP3, ...).
        sample_rate: resample to this rate (torchaudio's windowed-sinc) when it differs; None keeps the file's.
        mono: average channels to one, `(1, T)`; False keeps `(C, T)`.
    Returns:
        `(audio (C, T) float32, sample_rate)`.
    Raises:
        AudioError: missing / empty / truncated / undecodable file, zero channels, NaN or inf samples.
            Truncated means: libsndfile's log notes a chunk that runs past the end of the file (WAV, AIFF, AU,
            W64, RF64: "data : 64000 (should be 31978)"), an Ogg stream ends without its end-of-stream page,
            or fewer frames decode than the header states. MP3 is the exception to the last rule: its header
            count is an estimate (a sox-made file says 30672 frames and decodes 30528), so an MP3 is as long
            as what decodes.
    """
    import soundfile as sf

    path = Path(path)
    if sample_rate is not None and (isinstance(sample_rate, bool) or int(sample_rate) != sample_rate
                                    or sample_rate <= 0):
        raise AudioError(path, f"sample_rate must be a positive integer or None; got {sample_rate!r}")
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            channels = f.channels
            expected = f.frames
            fmt = f.format
            data = f.read(dtype="float32", always_2d=True)
            log = f.extra_info
    except Exception as e:
        raise _decode_error(path, e) from None
    if channels <= 0:
        raise AudioError(path, "has zero channels")
    # libsndfile shrinks a WAV/AIFF header's frame count to what the file holds and notes it in its
    # log ("data : 64000 (should be 31978)"); compressed formats report the header's count instead.
    cut = _truncation_note(log)
    if cut is not None:
        raise AudioError(path, f"is truncated: {cut}")
    # an MP3's frame count is mpg123's estimate from the header (a Xing/LAME tag or the bitrate), and valid
    # files (sox's, for one) decode to fewer frames than it says: the decoded count is the length, not a cut
    if fmt != "MP3" and 0 < expected < (1 << 62) and data.shape[0] < expected:
        raise AudioError(path, f"is truncated: header says {expected} frames, only {data.shape[0]} could be read")
    if data.shape[0] == 0:
        raise AudioError(path, "contains no samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(path, f"contains {bad} NaN or infinite samples")
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    if mono:
        audio = to_mono(audio)
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, int(sample_rate))
        sr = int(sample_rate)
    return audio, sr


def save(path, audio, sample_rate: int, subtype: str | None = None) -> Path:
    """Write `audio` `(C, T)` or `(T,)` (tensor or array, values in [-1, 1]) with soundfile.

    Args:
        path: the suffix picks the format (.wav, .flac, .ogg, .mp3, ... anything in
            `soundfile.available_formats()`).
        audio: `(C, T)` or `(T,)` samples in [-1, 1].
        sample_rate: positive integer.
        subtype: the encoding, e.g. `PCM_16`, `PCM_24`, `PCM_32`, `PCM_U8`, `FLOAT`, `DOUBLE` for WAV;
            None picks soundfile's default for the format (PCM_16 for WAV/FLAC, VORBIS for OGG,
            MPEG_LAYER_III for MP3).
    Raises:
        AudioError: unknown format or subtype (naming the allowed ones), empty or non-finite audio,
            samples outside [-1, 1] for a non-float subtype (we never clip silently), or a failed write
            (full disk, no permission): the file is written to a temporary name in the same folder and
            renamed into place, so a failed save leaves no partial file (and an older file intact).
    """
    import soundfile as sf

    path = Path(path)
    fmt = path.suffix[1:].upper()
    formats = sf.available_formats()
    if fmt not in formats:
        raise AudioError(path, f"unknown audio format {path.suffix!r}; allowed suffixes: "
                               f"{sorted('.' + f.lower() for f in formats)}")
    if subtype is not None:
        subtypes = sf.available_subtypes(fmt)
        if subtype not in subtypes or not sf.check_format(fmt, subtype):
            raise AudioError(path, f"subtype {subtype!r} cannot be written as {fmt}; allowed: {sorted(subtypes)}")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] == 0 or audio.shape[1] == 0:
        raise AudioError(path, f"save expects non-empty audio shaped (C, T) or (T,); got {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError(path, "refusing to write NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak > 1.0 + 1e-6 and subtype not in ("FLOAT", "DOUBLE"):
        raise AudioError(path, f"peak {peak:.3f} is outside [-1, 1]; normalise or use subtype='FLOAT'")
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(path, f"sample_rate must be a positive integer; got {sample_rate!r}")
    # write beside the target and rename over it: a full disk or a crash never leaves a truncated file
    # that reads as valid, and an existing file is replaced only by a complete one
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(tmp), audio.T, int(sample_rate), subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except Exception as e:  # OSError (ENOSPC, EACCES), soundfile's LibsndfileError / RuntimeError
        try:
            os.unlink(tmp)
        except OSError:
            pass
        reason = getattr(e, "strerror", None) or _short(e)
        raise AudioError(path, f"could not be written ({reason}); no partial file was left") from e
    return path


def resample(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample `(..., T)` audio with torchaudio's band-limited windowed-sinc interpolation.

    The output has `ceil(T * new_sr / orig_sr)` samples.
    """
    for name, rate in (("orig_sr", orig_sr), ("new_sr", new_sr)):
        if isinstance(rate, bool) or int(rate) != rate or rate <= 0:
            raise ValueError(f"resample: {name} must be a positive integer; got {rate!r}")
    if orig_sr == new_sr:
        return audio
    import torchaudio.functional as AF

    g = math.gcd(int(orig_sr), int(new_sr))
    return AF.resample(audio, int(orig_sr) // g, int(new_sr) // g)


def to_mono(audio: torch.Tensor) -> torch.Tensor:
    """Average the channels of `(C, T)` audio to `(1, T)`."""
    return audio.mean(dim=0, keepdim=True)


def loudness_normalize(audio: torch.Tensor, target_db: float = -20.0, eps: float = 1e-8,
                       peak: float = 0.99) -> torch.Tensor:
    """Scale `(C, T)` audio to an RMS of `target_db` dBFS, then down so its peak stays <= `peak`.

    Silence (RMS below `eps`) is returned unchanged.
    """
    rms = audio.pow(2).mean().sqrt()
    if rms < eps:
        return audio
    out = audio * (10 ** (target_db / 20) / rms)
    top = out.abs().max()
    if top > peak:
        out = out * (peak / top)
    return out


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "does not exist")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "is empty (0 bytes)")


_CHUNK_SHORT = re.compile(r"^\s*([A-Za-z][\w ]*?)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _truncation_note(log: str) -> str | None:
    """Read libsndfile's log for signs that the file ends early; return a description or None.

    libsndfile notes a chunk whose declared size runs past the end of the file as
    `data : 64000 (should be 31978)` (WAV, W64, RF64, AIFF's SSND, AU's Data Size) and then reads what is
    there; Ogg notes a missing end-of-stream page.
    """
    for m in _CHUNK_SHORT.finditer(log):
        chunk, said, holds = m.group(1).strip(), int(m.group(2)), int(m.group(3))
        # 0 and 0xFFFFFFFF are the "length unknown" placeholders of streaming writers, and a single
        # missing pad byte after an odd-sized chunk is a common writer slip, not a cut file.
        if said - holds > 1 and said not in (0, 0xFFFFFFFF):
            return f"the {chunk!r} header says {said} bytes, the file holds {holds}"
    if "File ended unexpectedly" in log:
        return "the stream ends without its end-of-stream marker"
    return None


def _decode_error(path: Path, e: Exception) -> AudioError:
    text = _short(e)
    if "channel count is zero" in text.lower():
        return AudioError(path, "has zero channels")
    return AudioError(path, f"cannot decode ({text})")


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return text[:200]
