"""LJSpeech stage 3: resynthesise held-out utterances with a trained vocoder (and Griffin-Lim) into WAV files.

    python recipes/ljspeech/resynth.py MANIFEST VOCODER_DIR OUT_DIR [--n 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audiodiff import audio, vocoders  # noqa: E402
from audiodiff.data.manifest import read_manifest, split_manifest  # noqa: E402
from audiodiff.runs.vocoder import load_vocoder  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("manifest", type=Path)
    p.add_argument("vocoder", type=Path, help="vocoder folder or training run")
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    voc = load_vocoder(a.vocoder, device=a.device)
    gl = vocoders.build({"name": "griffinlim", "n_iter": 32}, mel=voc.mel).to(a.device)
    _, valid = split_manifest(read_manifest(a.manifest), a.valid_fraction, 0)
    for e in valid[: a.n]:
        wav, sr = audio.load(e["path"], sample_rate=voc.mel.sample_rate)
        wav = wav.to(a.device)
        with torch.inference_mode():
            mel = voc.mel(wav)
            outs = {"ref": wav, voc.name: voc(mel)[0], "griffinlim": gl(mel)[0]}
        stem = Path(e["path"]).stem
        for tag, y in outs.items():
            y = y.float().cpu()
            peak = float(y.abs().max())
            if peak > 1.0:
                print(f"{stem} {tag}: peak {peak:.3f} > 1, scaled to 0.99 for 16-bit WAV")
                y = y * (0.99 / peak)
            audio.save(a.out / f"{stem}_{tag}.wav", y, sr)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
