"""Time to quality: train a recipe for a wall-clock budget on this CPU and score it along the way, peer beside it.

What it does (issue 11, Must-show 1 and 2):

1. Composes the recipe's config (`audiodiff.cli.compose(["experiment=<name>", ...overrides])`) and trains it
   with `audiodiff.train` in slices of `train.max_seconds` (the run resumes exactly where the slice stopped).
   After each slice it scores the newest checkpoint with `Pipeline.from_pretrained(run).generate(...)` and the
   recipe's own measure. Only the training loop's time counts as training minutes: the clock runs from the
   loop's first batch request to the return of `train()` (so the final checkpoint of each slice counts, the
   dataset build and model set-up of each re-entry do not), and scoring is never on it.
2. With `--peer`, audio-diffusion-pytorch's UNetV0 + VDiffusion (`benchmarks/peer_adp.py`) at our network's
   parameter count trains on the same batches: the same `build_dataset(cfg["data"])`, the same
   `BatchOrder` / `batches` stream of the loop (same order, crops and loudness), the same optimizer settings,
   learning-rate schedule, gradient clipping and EMA, with its own objective, sampler and classifier-free
   guidance (`--peer-steps` / `--peer-lr` give it its own schedule length and learning rate, e.g. the settings it
   was measured best with when ours changed). It is scored by the same judge on the same requests at the same
   training minutes. By default the
   two train side by side in two processes (`--threads` each) when both fit on the CPU, else one after the other.

Measures (from the recipe's conditions): a class label -> a judge classifier trained once on the real
*training* split (cached in `<out>/judge`, or `--judge DIR`): accuracy of the asked class, IS, mIS and the
Frechet distance of judge features to the real training recordings; a pitch -> pYIN pitch accuracy within
50 cents. The real-data reference row scores up to `--real-n` (200) real *held-out* recordings (the split the
diffusion model never trains on) with the same measure.

Writes `<out>/time_to_quality.json` (every point: side, step, training minutes, sampler settings, seed,
metrics), `<out>/time_to_quality.md` (the tables it prints) and `<out>/time_to_quality.png` (quality against
training minutes). Each side's points are also appended to `<out>/<side>/points.jsonl` as they are made.

    .venv/bin/python benchmarks/time_to_quality.py --recipe fsdd_mel --minutes 10 --eval-every-minutes 2 \
        --threads 1 --peer --out runs/ttq/fsdd_mel
    .venv/bin/python benchmarks/time_to_quality.py --recipe tones --minutes 1 train.batch_size=8   # overrides

Not a test: the numbers depend on the machine and its load; the JSON records both.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from audiodiff.errors import AudiodiffError, UsageError  # noqa: E402

log = logging.getLogger("time_to_quality")

# recipe -> experiment (configs/experiment/<name>.yaml); the measure follows from the data's conditions
RECIPES = {
    "fsdd_mel": "fsdd_mel",      # spoken digits as mel + Griffin-Lim: judge accuracy, IS, FD
    "fsdd": "fsdd",              # spoken digits as waveform: judge accuracy, IS, FD
    "tones_full": "tones_full",  # built-in notes, 5 timbres, 2 octaves: pitch accuracy
    "tones": "tones",            # the `make demo` notes (one timbre, one octave): pitch accuracy
    "piano": "piano",            # recorded piano notes: pitch accuracy at the recorded pitches
    "sax": "sax",                # sax notes: pitch accuracy, judge instrument accuracy
    "drums": "drums",            # 17 kit-piece classes: judge accuracy, IS, FD
}
SIDES = ("ours", "peer")
# overrides the benchmark applies before the user's: no progress bar, no TensorBoard samples inside the
# training clock (the peer has none either); the user's overrides come after and win
BENCH_OVERRIDES = ["train.progress=false", "train.sample_every=0"]
PLAN = "plan.json"
RESULT = "time_to_quality"


# ------------------------------------------------------------------------------------------------ arguments
def parse_pitch_range(text: str) -> tuple[int, int]:
    """`"LO:HI"` -> `(LO, HI)` MIDI, inclusive; raises naming the option and the allowed form."""
    try:
        lo, hi = (int(v) for v in str(text).split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: LO:HI, two MIDI integers, e.g. 21:93")
    if not 0 <= lo <= hi <= 127:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: LO:HI with 0 <= LO <= HI <= 127")
    return lo, hi


def in_pitch_range(pitch, pitch_range) -> bool:
    """Whether a MIDI pitch lies in `pitch_range` `(lo, hi)` (inclusive); every pitch does when it is None."""
    return pitch_range is None or pitch_range[0] <= round(float(pitch)) <= pitch_range[1]


def parse_args(argv):
    """`(args, overrides)`; every `key=value` argument that is not an option is a Hydra override."""
    p = argparse.ArgumentParser(prog="time_to_quality.py", description=__doc__.split("\n")[0])
    p.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    p.add_argument("--minutes", type=float, default=10.0, help="training budget in minutes (training clock only)")
    p.add_argument("--eval-every-minutes", type=float, default=2.0, help="score a checkpoint this often")
    p.add_argument("--n-per-class", type=int, default=20,
                   help="generations per class (or per pitch, per instrument for sax) at each point")
    p.add_argument("--steps", type=int, default=25, help="sampler steps (ours and the peer's)")
    p.add_argument("--sampler", default=None, help="our sampler (default: the recipe's, e.g. dpmpp_2m)")
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per training process (default 2)")
    p.add_argument("--out", default=None, help="output folder (default runs/time_to_quality/<recipe>)")
    p.add_argument("--peer", action="store_true", help="train audio-diffusion-pytorch's UNetV0 beside ours")
    p.add_argument("--peer-steps", type=int, default=None,
                   help="the peer's train.steps (its learning-rate schedule and stop), so each side's cosine can "
                        "end within the budget at its own pace (default: ours, train.steps)")
    p.add_argument("--peer-lr", type=float, default=None,
                   help="the peer's train.lr, when ours is changed from the settings the peer was measured with "
                        "(default: ours)")
    p.add_argument("--schedule", choices=("auto", "parallel", "sequential"), default="auto",
                   help="with --peer: side by side (each --threads), one after the other, or auto (side by side "
                        "when 2 x threads <= CPU count)")
    p.add_argument("--judge", default=None, help="a trained judge folder to use instead of training one")
    p.add_argument("--judge-epochs", type=int, default=30, help="epochs of the judge trained when --judge is absent")
    p.add_argument("--real-n", type=int, default=200, help="real held-out clips in the reference row")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (item k uses seed + k, at every point)")
    p.add_argument("--pitch-range", type=parse_pitch_range, default=None, metavar="LO:HI",
                   help="score only the pitches in MIDI LO..HI (generated and real held-out notes), e.g. piano "
                        "21:93 where pYIN reads the real notes at 16 kHz (default: every recorded pitch)")
    p.add_argument("--gen-batch", type=int, default=50, help="generations per sampler call (memory only)")
    p.add_argument("--side", choices=SIDES, default=None, help=argparse.SUPPRESS)  # internal: one side only
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if a.startswith("-") or "=" not in a]
    if bad:
        raise UsageError(f"unknown argument(s) {bad}; allowed: the options of --help and Hydra overrides "
                         "key=value (e.g. train.lr=5e-4)")
    checks = [("--minutes", args.minutes, args.minutes > 0 and math.isfinite(args.minutes), "a number > 0"),
              ("--eval-every-minutes", args.eval_every_minutes,
               0 < args.eval_every_minutes <= args.minutes, f"a number in (0, --minutes={args.minutes:g}]"),
              ("--n-per-class", args.n_per_class, args.n_per_class >= 1, "an integer >= 1"),
              ("--steps", args.steps, args.steps >= 1, "an integer >= 1"),
              ("--guidance", args.guidance, args.guidance >= 0 and math.isfinite(args.guidance), "a number >= 0"),
              ("--threads", args.threads, args.threads >= 1, "an integer >= 1"),
              ("--judge-epochs", args.judge_epochs, args.judge_epochs >= 1, "an integer >= 1"),
              ("--real-n", args.real_n, args.real_n >= 2, "an integer >= 2"),
              ("--seed", args.seed, args.seed >= 0, "an integer >= 0"),
              ("--gen-batch", args.gen_batch, args.gen_batch >= 1, "an integer >= 1"),
              ("--peer-steps", args.peer_steps, args.peer_steps is None or args.peer_steps >= 1,
               "an integer >= 1"),
              ("--peer-lr", args.peer_lr, args.peer_lr is None or (0 < args.peer_lr < 1), "a number in (0, 1)")]
    for name, value, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{name}={value!r} is not allowed; allowed: {allowed}")
    if args.judge is not None and not Path(args.judge).is_dir():
        raise UsageError(f"--judge {args.judge}: no such folder; allowed: a folder written by "
                         "`audiodiff evaluate train-judge` (judge.json + judge.safetensors)")
    return args, rest


def eval_targets(minutes: float, every: float) -> list[float]:
    """Training seconds at which to score: every `every` minutes, and the budget itself."""
    k = int(math.floor(minutes / every + 1e-9))
    out = [round(i * every * 60.0, 6) for i in range(1, k + 1)]
    if not out or out[-1] < minutes * 60.0 - 1e-6:
        out.append(round(minutes * 60.0, 6))
    return out


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel region
        torch.set_num_interop_threads(1)


# ------------------------------------------------------------------------------------------------ config
def compose_config(recipe: str, overrides: list[str], out: Path) -> dict:
    """The recipe's resolved training config (a plain dict) with the benchmark's run_dir and mel cache."""
    from omegaconf import OmegaConf

    from audiodiff.cli import compose
    from audiodiff.training.loop import resolve_config

    cfg = OmegaConf.to_container(compose([f"experiment={RECIPES[recipe]}", *BENCH_OVERRIDES, *overrides]),
                                 resolve=True)
    cfg["run_dir"] = str(out / "ours" / "run")
    data = cfg["data"]
    if data.get("representation") == "mel" and data.get("precompute_mel") and not data.get("cache_dir"):
        data["cache_dir"] = str(out / "cache")  # both sides and every slice read the same mels
        log.info("data.cache_dir=%s (the precomputed mels are shared by every slice and the peer)",
                 data["cache_dir"])
    return resolve_config(cfg)


def our_network_config(cfg: dict, info: dict) -> dict:
    """The network `train()` builds for this data (`models.from_data`: the data decides conditions and bands)."""
    from audiodiff import models
    from audiodiff import representations
    from audiodiff.conditions import ConditionSpec

    return models.from_data(cfg["model"], ConditionSpec.from_meta(info), representations.from_data(cfg["data"]))


# ------------------------------------------------------------------------------------------------ measure
def _data_split(cfg: dict):
    """Manifest data: `(all entries, train entries, held-out entries)` exactly as build_dataset splits them."""
    from audiodiff.data.manifest import read_manifest, split_manifest

    d = cfg["data"]
    entries = read_manifest(d["manifest"])
    train, valid = split_manifest(entries, float(d.get("valid_fraction", 0.1)), seed=0, group_by=d.get("group_by"))
    return entries, train, valid


def _balanced(entries: list[dict], key, n: int) -> list[dict]:
    """Up to `n` entries taken round-robin over the values of `key(entry)` (classes stay balanced)."""
    groups: dict = {}
    for e in entries:
        groups.setdefault(key(e), []).append(e)
    out, i = [], 0
    order = sorted(groups, key=str)
    while len(out) < n and any(i < len(groups[g]) for g in order):
        for g in order:
            if i < len(groups[g]) and len(out) < n:
                out.append(groups[g][i])
        i += 1
    return out


def make_requests(cfg: dict, info: dict, n_per_class: int, train_entries, pitch_range=None) -> list[dict]:
    """What to generate at each point: one dict per item with `labels` (a vocabulary value) and/or `pitch`.

    `pitch_range` `(lo, hi)` keeps only the recorded pitches in MIDI lo..hi (pitch-only recipes).
    """
    conds = info.get("conditions") or {}
    vocab = info.get("vocab")
    if "labels" in conds:
        field = conds["labels"]
        reqs = []
        for v in vocab:
            if "pitch" in conds:  # class + pitch (sax): cycle through the pitches recorded for this class
                pf = conds["pitch"]
                pitches = sorted({int(round(e[pf])) for e in train_entries if e.get(field) == v})
                pitches = pitches or [int(round(sum(info["pitch_range"]) / 2))]
                reqs += [{"labels": v, "pitch": pitches[k % len(pitches)]} for k in range(n_per_class)]
            else:
                reqs += [{"labels": v} for _ in range(n_per_class)]
        return reqs
    if "pitch" in conds:
        if train_entries is None:  # synth: the notes' pitches
            pitches = sorted({int(p) for p in cfg["data"]["synth"]["pitches"]})
        else:
            pf = conds["pitch"]
            pitches = sorted({int(round(e[pf])) for e in train_entries})
        pitches = [p for p in pitches if in_pitch_range(p, pitch_range)]
        if not pitches:
            raise UsageError(f"--pitch-range {pitch_range[0]}:{pitch_range[1]} holds none of the recorded pitches; "
                             f"allowed: a range that meets MIDI {info.get('pitch_range')}")
        return [{"pitch": p} for p in pitches for _ in range(n_per_class)]
    raise UsageError(f"data.conditions={conds}: the benchmark scores class labels (a judge) or pitches; this "
                     "recipe's data has neither; allowed: conditions with 'labels' and/or 'pitch'")


class Scorer:
    """The recipe's measure: judge accuracy / IS / mIS / FD for a class label, pYIN pitch accuracy for a pitch.

    Args:
        plan: the run's plan (`plan.json`): requests, label field, pitch flag, sample rate, judge folder and the
            Gaussian statistics of the judge features of the real training split (for FD).
    """

    def __init__(self, plan: dict):
        self.plan = plan
        self.judge = None
        self.ref_stats = None
        if plan.get("judge"):
            import numpy as np

            from audiodiff.evaluation.judge import Judge

            self.judge = Judge.load(plan["judge"], device="cpu")
            stats = np.load(plan["reference_stats"])
            self.ref_stats = (stats["mu"], stats["sigma"])

    @property
    def primary(self) -> str:
        return "pitch_accuracy" if self.plan["pitch"] else "accuracy"

    def score(self, clips, sample_rate: int, asked: list[dict]) -> dict:
        """Metrics of `clips` (a `(N, 1, T)` tensor or N `(T,)` tensors at `sample_rate`) asked for `asked`."""
        import torch

        from audiodiff.evaluation import metrics as M

        if isinstance(clips, torch.Tensor):
            clips = [c[0] for c in clips]
        out: dict = {"n": len(clips)}
        if self.judge is not None:
            from audiodiff.evaluation.judge import fit_length

            n_judge = int(round(self.judge.seconds * sample_rate))
            batch = torch.cat([fit_length(c.float().reshape(1, 1, -1), n_judge) for c in clips])
            probs = self.judge.predict_proba(batch, sample_rate=sample_rate)
            targets = self.judge.label_index([a["labels"] for a in asked])
            scored = M.score_predictions(probs, targets)
            out.update({k: scored[k] for k in ("accuracy", "inception_score", "modified_inception_score")})
            mu, sigma = M.gaussian_stats(self.judge.features(batch, sample_rate=sample_rate).double().numpy())
            out["frechet_distance"] = M.frechet_distance(mu, sigma, *self.ref_stats)
        if self.plan["pitch"]:
            from audiodiff.evaluation.pitch import pitch_accuracy

            pr = pitch_accuracy([c.float() for c in clips], sample_rate, [a["pitch"] for a in asked])
            out.update(pitch_accuracy=pr["accuracy"], median_abs_cents=pr["median_abs_cents"],
                       n_unvoiced=pr["n_unvoiced"], octave_errors=pr["octave_errors"])
            from audiodiff.evaluation.onsets import note_onsets

            on = note_onsets([c.float() for c in clips], sample_rate,
                             voiced_fraction=[r["voiced_fraction"] for r in pr["items"]])
            out.update(one_onset=on["one_onset"], clean_notes=on["clean_notes"], mean_onsets=on["mean_onsets"],
                       pitch_missed=sorted(a["pitch"] for a, r in zip(asked, pr["items"]) if not r["correct"]),
                       not_clean=sorted(a["pitch"] for a, r, o in zip(asked, pr["items"], on["items"])
                                        if o["n_onsets"] != 1 or r["voiced_fraction"] <= 0))
        out["score"] = out[self.primary]
        return out


def _load_clip(path: str, sample_rate: int):
    from audiodiff.audio import load

    return load(path, sample_rate=sample_rate, mono=True)[0][0]


def held_out_notes(valid_entries, conds: dict, pitch_range, real_n: int, sample_rate: int) -> tuple[list, list[dict]]:
    """The real row's clips and requests: up to `real_n` held-out entries, balanced over the class (or the pitch),
    those with a pitch outside `pitch_range` left out; `(clips (T,) at sample_rate, [{labels?, pitch?}])`."""
    lf, pf = conds.get("labels"), conds.get("pitch")
    held = [e for e in valid_entries if not pf or in_pitch_range(e[pf], pitch_range)]
    held = _balanced(held, (lambda e: e[lf]) if lf else (lambda e: round(e[pf])), real_n)
    asked = [{**({"labels": e[lf]} if lf else {}), **({"pitch": int(round(e[pf]))} if pf else {})} for e in held]
    return [_load_clip(e["path"], sample_rate) for e in held], asked


def prepare_judge(cfg: dict, args, out: Path, train_entries, valid_entries) -> Path:
    """The judge folder: `--judge DIR`, or one trained once on the real training split (cached in out/judge)."""
    field = cfg["data"]["conditions"]["labels"]
    if args.judge is not None:
        from audiodiff.evaluation.judge import Judge

        d = Path(args.judge)
        j = Judge.load(d)
        if j.label_field != field:
            raise UsageError(f"--judge {d}: classifies {j.label_field!r} but this recipe's labels are {field!r}; "
                             "allowed: a judge trained on the same label field")
        split = d / "split.json"
        if split.is_file():
            seen = set(json.loads(split.read_text()).get("train", []))
            leaked = [e["path"] for e in valid_entries if e["path"] in seen]
            if leaked:
                log.warning("--judge %s trained on %d of the held-out recordings (e.g. %s): the real row is "
                            "optimistic", d, len(leaked), leaked[0])
        return d
    from audiodiff.evaluation.judge import train_judge

    d = out / "judge"
    key = {"manifest": str(Path(cfg["data"]["manifest"]).resolve()), "label": field,
           "sample_rate": int(cfg["data"]["sample_rate"]), "seconds": float(cfg["data"]["segment_seconds"]),
           "epochs": int(args.judge_epochs), "train_split": len(train_entries),
           "valid_fraction": float(cfg["data"].get("valid_fraction", 0.1)), "group_by": cfg["data"].get("group_by")}
    key_file = d / "benchmark_judge.json"
    if (d / "judge.json").is_file():
        have = json.loads(key_file.read_text()) if key_file.is_file() else None
        if have != key:
            raise UsageError(f"{d}: holds a judge trained with other settings ({have} != {key}); remove it, "
                             "pass another --out, or give it with --judge")
        log.info("judge: reusing %s", d)
        return d
    t0 = time.perf_counter()
    log.info("judge: training on %d real training recordings (%d epochs)", len(train_entries), args.judge_epochs)
    _, report = train_judge(train_entries, field, d, sample_rate=key["sample_rate"], seconds=key["seconds"],
                            epochs=args.judge_epochs, seed=0, device="cpu")
    key_file.write_text(json.dumps(key, indent=2))
    log.info("judge: valid accuracy %.3f on its own held-out %d (%.0f s)", report.get("valid_accuracy", float("nan")),
             report["num_valid"], time.perf_counter() - t0)
    return d


def prepare_plan(cfg: dict, args, out: Path) -> dict:
    """Everything both sides share, computed once: data info, requests, judge, FD reference, the real row."""
    import numpy as np
    import torch

    from audiodiff import models
    from audiodiff.data.build import build_dataset

    data_cfg = cfg["data"]
    t0 = time.perf_counter()
    info = build_dataset(data_cfg, split="train", seed=cfg["train"]["seed"])["info"]  # fills the mel cache
    log.info("data: built the training set in %.1f s", time.perf_counter() - t0)
    conds = info.get("conditions") or {}
    if args.pitch_range is not None and (conds.get("labels") or "pitch" not in conds):
        raise UsageError(f"--pitch-range applies to pitch-only recipes (piano, tones, tones_full); {args.recipe}'s "
                         f"data conditions are {conds}")
    manifest = data_cfg.get("kind", "manifest") == "manifest"
    train_e = valid_e = None
    if manifest:
        _, train_e, valid_e = _data_split(cfg)
    plan = {"recipe": args.recipe, "experiment": RECIPES[args.recipe], "info": info,
            "sample_rate": int(info["sample_rate"]), "label_field": conds.get("labels"), "pitch": "pitch" in conds,
            "requests": make_requests(cfg, info, args.n_per_class, train_e, args.pitch_range), "judge": None,
            "pitch_range": args.pitch_range}
    with torch.device("meta"):
        plan["ours_params"] = sum(p.numel() for p in models.build(our_network_config(cfg, info)).parameters())
    sr = plan["sample_rate"]

    # ---- the real held-out row (and the judge + FD reference for labelled sets)
    if manifest:
        real_clips, real_asked = held_out_notes(valid_e, conds, args.pitch_range, args.real_n, sr)
    else:  # synth: the disjoint validation notes, rendered as waveforms
        vcfg = {**data_cfg, "representation": "waveform", "precompute_mel": False}
        ds = build_dataset(vcfg, split="valid", seed=0)["dataset"]
        items = [ds[i] for i in range(min(args.real_n, len(ds)))]
        real_clips = [it["audio"][0] for it in items]
        real_asked = [{"pitch": float(it["pitch"])} for it in items]
        if conds.get("labels"):
            raise UsageError("data.kind=synth with a 'labels' condition: a judge needs a manifest of recordings; "
                             "allowed: pitch-only conditions for synth data")
    if plan["label_field"]:
        judge_dir = prepare_judge(cfg, args, out, train_e, valid_e)
        plan["judge"] = str(judge_dir.resolve())
        from audiodiff.evaluation import metrics as M
        from audiodiff.evaluation.judge import Judge, fit_length

        j = Judge.load(judge_dir)
        t0 = time.perf_counter()
        feats = []
        for a in range(0, len(train_e), 256):
            chunk = [_load_clip(e["path"], j.sample_rate) for e in train_e[a:a + 256]]
            feats.append(j.features(torch.cat([fit_length(c.view(1, 1, -1), j.num_samples) for c in chunk])))
        mu, sigma = M.gaussian_stats(torch.cat(feats).double().numpy())
        np.savez(out / "reference_stats.npz", mu=mu, sigma=sigma)
        plan["reference_stats"] = str((out / "reference_stats.npz").resolve())
        log.info("FD reference: judge features of %d real training recordings (%.1f s)", len(train_e),
                 time.perf_counter() - t0)
    t0 = time.perf_counter()
    plan["real"] = {"n": len(real_clips), **Scorer(plan).score(real_clips, sr, real_asked),
                    "what": ("real held-out recordings (the split the model never trains on)" if manifest
                             else "held-out synth notes (another seed)")}
    log.info("real row: %s (%.1f s)", _fmt_metrics(plan["real"]), time.perf_counter() - t0)
    if data_cfg.get("representation", "waveform") == "mel":
        t0 = time.perf_counter()
        plan["real_vocoded"] = {"n": len(real_clips), **Scorer(plan).score(vocode_real(cfg, real_clips), sr, real_asked),
                                "what": "the same real clips through the recipe's mel and vocoder (its ceiling)"}
        log.info("real through the vocoder: %s (%.1f s)", _fmt_metrics(plan["real_vocoded"]),
                 time.perf_counter() - t0)
    return plan


def recipe_vocoder(cfg: dict, melspec):
    """The recipe's vocoder for `melspec`: a trained one at `vocoder.path`, else built from `vocoder` (Griffin-Lim)."""
    from audiodiff import vocoders
    from audiodiff.runs.vocoder import load_vocoder

    vcfg = dict(cfg.get("vocoder") or {"name": "griffinlim"})
    return (load_vocoder(vcfg["path"]) if vcfg.get("path")
            else vocoders.build({**vcfg, "mel": melspec.to_dict()}))


def vocode_real(cfg: dict, clips: list) -> list:
    """Real clips as the mel path sees them: the data's loudness, the recipe's mel, then its vocoder.

    The row this makes is the mel path's ceiling: a generated mel can at best score like a real one vocoded,
    so a gap between the real row and this one is the vocoder's, not the denoiser's."""
    import torch

    from audiodiff.audio import loudness_normalize
    from audiodiff.mel import MelSpec

    melspec = MelSpec(**cfg["data"]["mel"])
    voc = recipe_vocoder(cfg, melspec)
    target = cfg["data"].get("loudness_db")
    out = []
    with torch.no_grad():
        for c in clips:
            a = c.float().reshape(1, -1)
            if target is not None:
                a = loudness_normalize(a, target_db=float(target))
            out.append(voc(melspec(a.unsqueeze(0))).reshape(-1)[: a.shape[-1]])   # (1, n_mels, frames) in
    return out


def _fmt_metrics(m: dict) -> str:
    keys = ("accuracy", "inception_score", "frechet_distance", "pitch_accuracy", "median_abs_cents",
            "one_onset", "clean_notes")
    return ", ".join(f"{k} {m[k]:.3f}" for k in keys if isinstance(m.get(k), (int, float)))


# ------------------------------------------------------------------------------------------------ ours
class LoopClock:
    """Seconds spent inside `audiodiff.train`'s loop: from its training clock's start to the loop's end.

    `train()` starts its own `max_seconds` clock right before the first batch is drawn, after building the dataset,
    the model and resuming; the runtime's hooks (`audiodiff.training.runtime.HOOKS`: `loop_start`, `loop_end`)
    mark those moments, so nothing of the runtime is patched.
    """

    def __init__(self):
        self.start, self.seconds = None, 0.0

    def hooks(self) -> dict:
        self.start, self.seconds = None, 0.0

        def start():
            self.start = time.perf_counter()

        def end():
            self.seconds = 0.0 if self.start is None else time.perf_counter() - self.start

        return {"loop_start": start, "loop_end": end}


def _sampler_info(method: str, steps: int, guidance, schedule: str) -> dict:
    return {"sampler": method, "steps": steps, "guidance": guidance, "schedule": schedule}


def _write_point(out: Path, side: str, point: dict) -> None:
    with open(out / side / "points.jsonl", "a") as f:
        f.write(json.dumps(point) + "\n")


def run_ours(cfg: dict, plan: dict, args, out: Path) -> list[dict]:
    """Train our recipe in `max_seconds` slices and score the newest checkpoint at each target minute."""
    import audiodiff
    from audiodiff import Pipeline

    scorer = Scorer(plan)
    asked = plan["requests"]
    labels = [a["labels"] for a in asked] if plan["label_field"] else None
    pitch = [a["pitch"] for a in asked] if plan["pitch"] else None
    guidance = args.guidance
    method = args.sampler or cfg["sampler"].get("method", "dpmpp_2m")
    clock, trained, points = LoopClock(), 0.0, []
    for i, target in enumerate(eval_targets(args.minutes, args.eval_every_minutes)):
        remaining = target - trained
        if remaining > 0:
            c = copy.deepcopy(cfg)
            c["train"]["max_seconds"] = remaining
            audiodiff.train(c, hooks=clock.hooks())
            trained += clock.seconds
        t0 = time.perf_counter()
        pipe = Pipeline.from_pretrained(cfg["run_dir"], device="cpu" if cfg["train"]["device"] == "cpu" else None)
        gen = pipe.generate(n=len(asked), steps=args.steps, sampler=method, labels=labels, pitch=pitch,
                            guidance=guidance, seed=args.seed, batch_size=args.gen_batch, progress=False)
        metrics = scorer.score(gen.audio, gen.sample_rate, asked)
        point = {"side": "ours", "point": i, "target_minutes": target / 60.0, "minutes": trained / 60.0,
                 "step": pipe.step, "score": metrics["score"], "metrics": metrics, "seed": args.seed,
                 "sampler": _sampler_info(method, args.steps, guidance, cfg["schedule"].get("name", "karras")),
                 "eval_seconds": round(time.perf_counter() - t0, 2)}
        points.append(point)
        _write_point(out, "ours", point)
        log.info("ours  %.2f min  step %d  %s  (scored in %.0f s)", point["minutes"], point["step"],
                 _fmt_metrics(metrics), point["eval_seconds"])
        if pipe.step >= cfg["train"]["steps"]:
            log.info("ours: train.steps=%d reached; later points would score the same checkpoint", pipe.step)
    return points


# ------------------------------------------------------------------------------------------------ peer
def run_peer(cfg: dict, plan: dict, args, out: Path) -> list[dict]:
    """Train the audio-diffusion-pytorch peer on our loop's batch stream; score it at the same training minutes."""
    import torch
    from safetensors.torch import save_model

    import peer_adp
    from audiodiff.data.build import build_dataset
    from audiodiff.data.collate import collate, split_batch
    from audiodiff.training.ema import EMA
    from audiodiff.training.loop import to_device
    from audiodiff.training.runtime import BatchOrder, batches, lr_at, pick_device, seed_everything

    t = dict(cfg["train"])
    if args.peer_steps is not None:
        t["steps"] = int(args.peer_steps)
    if args.peer_lr is not None:
        t["lr"] = float(args.peer_lr)
    device = pick_device(t["device"])
    seed_everything(t["seed"])  # as train() does before building the data: same crops, same noise stream start
    data = build_dataset(cfg["data"], split="train", seed=t["seed"])
    dataset, info = data["dataset"], data["info"]
    from audiodiff import representations

    representation = representations.from_data(cfg["data"])  # what both sides denoise
    rep = representation.name  # the peer's own two layouts (peer_adp.build_matched)
    melspec = representation.contract
    if rep == "mel":
        in_ch, length = melspec.n_mels, melspec.frames(info["segment_samples"])
        pad = float(melspec.normalize(torch.tensor(math.log(melspec.log_floor))))
    else:
        in_ch, length, pad = int(info.get("channels", 1)), int(info["segment_samples"]), 0.0
    conds = info.get("conditions") or {}
    model = peer_adp.build_matched(rep, in_ch, length, plan["ours_params"], num_classes=info.get("num_classes"),
                                   pitch_range=info.get("pitch_range") if "pitch" in conds else None,
                                   pad_value=pad).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    log.info("peer: UNetV0 %s, %.2f M parameters (ours %.2f M)", model.unet_config, n_params / 1e6,
             plan["ours_params"] / 1e6)
    opt = torch.optim.AdamW(params, lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"])
    ema = EMA(model, t["ema_decay"])
    mask_proba = float(cfg["objective"].get("cond_drop_prob", 0.0))
    order = BatchOrder(len(dataset), t["batch_size"], t["seed"])
    stream = batches(dataset, order, 0, 0, min(int(t["num_workers"]), os.cpu_count() or 1), collate)
    vocoder = None
    if rep == "mel":
        vocoder = recipe_vocoder(cfg, melspec).to(device)

    scorer = Scorer(plan)
    asked = plan["requests"]
    vocab = info.get("vocab") or []
    cond_all = {}
    if "labels" in conds:
        cond_all["labels"] = torch.tensor([vocab.index(a["labels"]) for a in asked], device=device)
    if "pitch" in conds:
        cond_all["pitch"] = torch.tensor([float(a["pitch"]) for a in asked], device=device)
    guidance = args.guidance if cond_all else None
    meta = {"unet": model.unet_config, "params": n_params, "ours_params": plan["ours_params"],
            "objective": "VDiffusion (v-objective, sigma ~ U[0, 1])", "cond_drop_prob": mask_proba,
            "optimizer": {k: t[k] for k in ("lr", "betas", "weight_decay", "warmup_steps", "min_lr_ratio", "steps",
                                            "grad_clip", "ema_decay", "batch_size", "accumulate")}}
    (out / "peer" / "peer.json").write_text(json.dumps(meta, indent=2))

    step, trained, points, bad = 0, 0.0, [], 0
    for i, target in enumerate(eval_targets(args.minutes, args.eval_every_minutes)):
        model.train()
        t_start = time.perf_counter()
        while trained + (time.perf_counter() - t_start) < target + 1e-9 and step < t["steps"]:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, t)
            opt.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for _ in range(t["accumulate"]):
                _, _, batch = next(stream)
                x0, cond = split_batch(to_device(batch, device), representation)
                loss = model.loss(x0, cond, mask_proba) / t["accumulate"]
                loss.backward()
                loss_sum += float(loss.detach())
            norm = torch.nn.utils.clip_grad_norm_(params, t["grad_clip"] if t["grad_clip"] else float("inf"))
            if not (math.isfinite(loss_sum) and math.isfinite(float(norm))):
                bad += 1
                if bad >= t["max_bad_steps"]:
                    raise AudiodiffError(f"peer: {bad} non-finite steps in a row at step {step} (train.lr={t['lr']})")
                continue
            bad = 0
            opt.step()
            ema.update(model)
            step += 1
        trained += time.perf_counter() - t_start
        t0 = time.perf_counter()
        audio = []
        for a in range(0, len(asked), args.gen_batch):
            sl = range(a, min(len(asked), a + args.gen_batch))
            gens = [torch.Generator().manual_seed(args.seed + k) for k in sl]
            noise = torch.stack([torch.randn(in_ch, model.padded, generator=g) for g in gens]).to(device)
            x = ema.model.eval().sample(noise, args.steps, {k: v[a:a + len(sl)] for k, v in cond_all.items()},
                                        guidance)
            wav = vocoder(x.float()) if vocoder is not None else x
            audio.append(wav.float().clamp(-1, 1).cpu())
        metrics = scorer.score(torch.cat(audio), int(info["sample_rate"]), asked)
        point = {"side": "peer", "point": i, "target_minutes": target / 60.0, "minutes": trained / 60.0,
                 "step": step, "score": metrics["score"], "metrics": metrics, "seed": args.seed,
                 "sampler": _sampler_info("VSampler", args.steps, guidance, "linear sigma 1 -> 0"),
                 "eval_seconds": round(time.perf_counter() - t0, 2)}
        points.append(point)
        _write_point(out, "peer", point)
        log.info("peer  %.2f min  step %d  %s  (scored in %.0f s)", point["minutes"], step, _fmt_metrics(metrics),
                 point["eval_seconds"])
    save_model(ema.model, str(out / "peer" / "ema.safetensors"))  # a-unet shares weights inside its time MLP
    return points


# ------------------------------------------------------------------------------------------------ report
def minutes_to_reach(points: list[dict], score: float) -> float | None:
    """Training minutes of the first point whose score is at least `score` (None: never within the run)."""
    for p in sorted(points, key=lambda p: p["minutes"]):
        if p["score"] >= score - 1e-12:
            return p["minutes"]
    return None


def compare(ours: list[dict], peer: list[dict]) -> dict:
    """Scores at equal minutes (point by point) and the minutes each side needs to reach the peer's best."""
    rows = []
    for a in ours:
        b = next((p for p in peer if p["point"] == a["point"]), None)
        if b is not None:
            rows.append({"target_minutes": a["target_minutes"], "ours_minutes": a["minutes"], "ours_step": a["step"],
                         "ours_score": a["score"], "peer_minutes": b["minutes"], "peer_step": b["step"],
                         "peer_score": b["score"]})
    if not peer:
        return {"equal_minutes": rows}
    best = max(p["score"] for p in peer)
    t_peer, t_ours = minutes_to_reach(peer, best), minutes_to_reach(ours, best)
    reach = {"peer_best_score": best, "peer_minutes": t_peer, "ours_minutes": t_ours,
             "ratio_ours_over_peer": (t_ours / t_peer) if t_ours is not None and t_peer else None,
             "speedup": (t_peer / t_ours) if t_ours else None}
    return {"equal_minutes": rows, "to_peer_best": reach}


def _cell(v, fmt=".3f"):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def markdown(result: dict) -> str:
    """The tables: every point of each side with the real row, the equal-minutes comparison, minutes to the best."""
    metric_cols = [("score", "score"), ("accuracy", "acc"), ("inception_score", "IS"), ("frechet_distance", "FD"),
                   ("pitch_accuracy", "pitch acc"), ("median_abs_cents", "median cents"),
                   ("one_onset", "one onset"), ("clean_notes", "clean notes")]
    pts = [p for s in SIDES for p in result["sides"].get(s, {}).get("points", [])]
    have = [(k, h) for k, h in metric_cols if any(k in p["metrics"] for p in pts) or k in result["real"]]
    head = ["side", "params M", "minutes", "step", "sampler"] + [h for _, h in have]
    lines = [f"### {result['recipe']}: quality against training minutes ({result['settings']['threads']} thread(s) "
             f"per side, {result['settings']['schedule']})", ""]
    pr = result["settings"].get("pitch_range")
    if pr:
        lines += [f"Pitches scored: the recorded pitches in MIDI {pr[0]}..{pr[1]} (`--pitch-range`), generated and "
                  "real alike.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in pts:
        s = p["sampler"]
        g = "" if s["guidance"] is None else f", cfg {s['guidance']:g}"
        lines.append("| " + " | ".join([p["side"], _cell(result["sides"][p["side"]]["params"] / 1e6, ".2f"),
                                       _cell(p["minutes"], ".2f"), str(p["step"]), f"{s['sampler']} {s['steps']}{g}"]
                                      + [_cell(p["metrics"].get(k)) for k, _ in have]) + " |")
    real = result["real"]
    lines.append("| " + " | ".join([f"real held-out (n={real['n']})", "", "", "", ""]
                                  + [_cell(real.get(k)) for k, _ in have]) + " |")
    if result.get("real_vocoded"):
        rv = result["real_vocoded"]
        lines.append("| " + " | ".join([f"real held-out through mel + vocoder (n={rv['n']})", "", "", "", ""]
                                      + [_cell(rv.get(k)) for k, _ in have]) + " |")
    cmp = result.get("comparison") or {}
    if cmp.get("equal_minutes"):
        lines += ["", "| minutes | ours step | ours score | peer step | peer score |", "|---|---|---|---|---|"]
        for r in cmp["equal_minutes"]:
            lines.append(f"| {r['target_minutes']:.2f} (ours {r['ours_minutes']:.2f}, peer {r['peer_minutes']:.2f}) "
                         f"| {r['ours_step']} | {_cell(r['ours_score'])} | {r['peer_step']} "
                         f"| {_cell(r['peer_score'])} |")
    reach = cmp.get("to_peer_best")
    if reach:
        ours_t = "not within the run" if reach["ours_minutes"] is None else f"{reach['ours_minutes']:.2f} min"
        ratio = "" if reach["ratio_ours_over_peer"] is None else \
            f"; minutes ratio ours / peer {reach['ratio_ours_over_peer']:.2f} (speedup {reach['speedup']:.2f}x)"
        lines += ["", f"Peer's best score {reach['peer_best_score']:.3f}: peer at {reach['peer_minutes']:.2f} min, "
                      f"ours {ours_t}{ratio}."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """PNG: the primary score (and FD when there is one) against training minutes, the real row dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_fd = "frechet_distance" in result["real"]
    fig, axes = plt.subplots(1, 2 if has_fd else 1, figsize=(10 if has_fd else 5.5, 3.8), squeeze=False)
    panels = [("score", result["measure"]["primary"])] + ([("frechet_distance", "Frechet distance (judge)")]
                                                          if has_fd else [])
    for ax, (key, label) in zip(axes[0], panels):
        for side, style in zip(SIDES, ("o-", "s--")):
            pts = result["sides"].get(side, {}).get("points", [])
            if pts:
                name = "audiodiff" if side == "ours" else "audio-diffusion-pytorch UNetV0"
                ax.plot([p["minutes"] for p in pts], [p["metrics"].get(key, p.get(key)) for p in pts], style,
                        label=f"{name} ({result['sides'][side]['params'] / 1e6:.1f} M)")
        ref = result["real"].get(key)
        if isinstance(ref, (int, float)):
            ax.axhline(ref, color="gray", ls=":", label=f"real held-out (n={result['real']['n']})")
        rv = (result.get("real_vocoded") or {}).get(key)
        if isinstance(rv, (int, float)):
            ax.axhline(rv, color="tab:red", ls=":", label="real through mel + vocoder")
        ax.set_xlabel("training minutes (CPU, training clock)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['recipe']}: {result['settings']['sampler']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cpu_model() -> tuple[str, str]:
    """The CPU's model name and its widest vector unit, from `/proc/cpuinfo`. Two "2-core" hosts of this project
    differed ~2.4x in steps a minute on the same recipe (the later one: AMD EPYC, AVX2), so a row's minutes mean
    little without them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), "unknown"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
                platform.machine())
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    vector = next((v for v in ("avx512f", "avx2", "avx", "sse4_2") if v in flags), "none")
    return name, vector


def _hardware(threads: int) -> dict:
    import torch

    name, vector = _cpu_model()
    return {"cpu": name, "cpu_vector": vector, "cpu_count": os.cpu_count(), "threads": threads,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}


def _read_points(out: Path, side: str) -> list[dict]:
    f = out / side / "points.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.is_file() else []


# ------------------------------------------------------------------------------------------------ main
def _run_side(side: str, cfg: dict, plan: dict, args, out: Path) -> list[dict]:
    return run_ours(cfg, plan, args, out) if side == "ours" else run_peer(cfg, plan, args, out)


def _spawn(side: str, argv: list[str], out: Path, threads: int) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log_path = out / side / "log.txt"
    f = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *argv, "--side", side],
                            stdout=f, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
    f.close()
    return proc, log_path


def main(argv=None) -> dict:
    """Run the benchmark; returns the result dict written to `<out>/time_to_quality.json`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, overrides = parse_args(argv)
    out = Path(args.out or f"runs/time_to_quality/{args.recipe}")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    set_threads(args.threads)
    cfg = compose_config(args.recipe, overrides, out)

    if args.side is not None:  # a child process: one side, the plan is already there
        plan = json.loads((out / PLAN).read_text())
        _run_side(args.side, cfg, plan, args, out)
        return {}

    sides = ["ours", "peer"] if args.peer else ["ours"]
    if args.peer:
        import peer_adp

        peer_adp.import_peer()  # fail before any training when the peer is not installed
    taken = [str(out / s) for s in SIDES if (out / s).exists()]
    if taken:
        raise UsageError(f"{', '.join(taken)} already exist(s): a time-to-quality run starts from scratch; pass a "
                         "new --out, or remove them (the judge in <out>/judge is reused)")
    out.mkdir(parents=True, exist_ok=True)
    for s in sides:
        (out / s).mkdir()
    t_start = time.perf_counter()
    plan = prepare_plan(cfg, args, out)
    (out / PLAN).write_text(json.dumps(plan, indent=2, default=str))
    schedule = "sequential"
    if len(sides) == 2:
        fits = 2 * args.threads <= (os.cpu_count() or 1)
        schedule = {"auto": "parallel" if fits else "sequential"}.get(args.schedule, args.schedule)
        log.info("sides: %s, %d thread(s) each (%d CPUs)", schedule, args.threads, os.cpu_count() or 1)
    if schedule == "parallel":
        procs = [(s, *_spawn(s, argv, out, args.threads)) for s in sides]
        failed = []
        try:
            for s, proc, log_path in procs:
                if proc.wait() != 0:
                    failed.append((s, log_path))
        finally:  # interrupted (Ctrl-C) or a failure: stop the other side too, never leave it training
            for _, proc, _ in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
        for s, log_path in failed:
            tail = log_path.read_text().strip().splitlines()[-1:] or ["(no output)"]
            log.error("%s side failed; its log: %s", s, log_path)
            raise AudiodiffError(f"the {s} side failed ({tail[0]}); see {log_path}")
    else:
        for s in sides:
            _run_side(s, cfg, plan, args, out)

    method = args.sampler or cfg["sampler"].get("method", "dpmpp_2m")
    result = {
        "recipe": args.recipe, "experiment": RECIPES[args.recipe],
        "command": " ".join(["benchmarks/time_to_quality.py", *argv]),
        "overrides": overrides, "hardware": _hardware(args.threads),
        "settings": {"minutes": args.minutes, "eval_every_minutes": args.eval_every_minutes,
                     "n_per_class": args.n_per_class, "n_generated": len(plan["requests"]),
                     "pitch_range": args.pitch_range,
                     "threads": args.threads, "schedule": schedule, "seed": args.seed,
                     "sampler": f"ours {method} {args.steps} steps, peer VSampler {args.steps} steps, "
                                f"guidance {args.guidance:g}, seed {args.seed}",
                     "train": {k: cfg["train"][k] for k in ("lr", "warmup_steps", "batch_size", "steps", "ema_decay",
                                                            "seed")},
                     "peer_steps": args.peer_steps if args.peer else None,
                     "peer_lr": args.peer_lr if args.peer else None},
        "measure": {"primary": "pitch accuracy (pYIN, 50 cents)" if plan["pitch"] else
                    f"judge accuracy of the asked {plan['label_field']!r}",
                    "judge": plan.get("judge"), "label_field": plan["label_field"], "pitch": plan["pitch"]},
        "real": plan["real"], "real_vocoded": plan.get("real_vocoded"),
        "sides": {},
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    for s in sides:
        extra = {}
        if s == "peer" and (out / "peer" / "peer.json").is_file():
            extra = json.loads((out / "peer" / "peer.json").read_text())
        result["sides"][s] = {"params": plan["ours_params"] if s == "ours" else extra.get("params"),
                              "points": _read_points(out, s), **({"peer": extra} if extra else {})}
    result["comparison"] = compare(result["sides"]["ours"]["points"],
                                   result["sides"].get("peer", {}).get("points", []))
    table = markdown(result)
    (out / f"{RESULT}.json").write_text(json.dumps(result, indent=2, default=str))
    (out / f"{RESULT}.md").write_text(table)
    plot(result, out / f"{RESULT}.png")
    print(table)
    print(f"wrote {out / (RESULT + '.json')}, {out / (RESULT + '.md')}, {out / (RESULT + '.png')} "
          f"({result['wall_seconds']:.0f} s wall)")
    return result


def cli() -> int:
    try:
        main()
    except UsageError as e:
        print(f"time_to_quality: error: {e}", file=sys.stderr)
        return 2
    except AudiodiffError as e:
        print(f"time_to_quality: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
