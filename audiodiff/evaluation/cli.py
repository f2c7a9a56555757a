"""`audiodiff evaluate ...`: train a judge, or score a folder of generated WAVs (DiffWave's SC09 protocol).

    audiodiff evaluate train-judge data=<manifest.jsonl> label=<field> out=<dir> [epochs=30] [sample_rate=16000]
    audiodiff evaluate generated=<folder> [real=<manifest.jsonl>] [judge=<dir>] [label=<field>] [out=<dir>]

The generated folder holds WAV files and optionally `generated.jsonl`: one JSON object a line with `path`
(relative to the folder) and the asked conditions, e.g. `{"path": "000.wav", "label": 3}` or
`{"path": "000.wav", "pitch": 60}`. Always, with no reference, we report clip statistics (durations, sample rate,
RMS level in dBFS, near-silent and clipping shares). With a judge we report accuracy of the asked labels, IS, mIS
and the Frechet distance of judge features to the real training recordings, next to the same figures for real
held-out recordings (the reference row). With asked pitches we report pYIN pitch accuracy and the notes' onsets
(:mod:`audiodiff.evaluation.onsets`: the share with exactly one, and of clean notes). Each part that could
not be scored gets a note saying what it needs; a judge whose held-out accuracy cannot be trusted gets a warning.
Writes `report.json`, `report.md`, `spectrograms.png` and `pitch.png` into `out` (default `<folder>/evaluation`).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import UsageError as _UsageError

__all__ = ["main", "parse_args", "evaluate_generated", "read_generated", "USAGE", "HELP", "TRAIN_KEYS", "EVAL_KEYS",
           "UsageError"]

log = logging.getLogger(__name__)

USAGE = """usage:
  audiodiff evaluate train-judge data=<manifest.jsonl> label=<field> out=<dir>
      [epochs=30] [sample_rate=16000|auto] [seconds=1.0] [valid_fraction=0.1] [seed=0] [device=cpu|cuda]
      [batch_size=64] [lr=0.003] [gain_db=6.0]
  audiodiff evaluate generated=<folder> [real=<manifest.jsonl>] [judge=<dir>] [label=<field>] [out=<dir>]
      [pitch_field=pitch] [tolerance_cents=50] [embedder=judge|vggish|clap] [embedder_weights=<path>]
      [seed=0] [device=cpu|cuda]"""
HELP = USAGE + """

Train a judge classifier on a labelled manifest, or score a folder of generated WAVs (clip statistics always;
accuracy, IS, mIS, Frechet distance with a judge; pitch accuracy when generated.jsonl has asked pitches).
Writes report.json / report.md.
Examples:
  audiodiff evaluate train-judge data=../shared/data/fsdd/manifest.jsonl label=label out=runs/fsdd/judge
  audiodiff evaluate generated=samples/x"""

# key -> (type, required)
TRAIN_KEYS: dict[str, tuple[type, bool]] = {
    "data": (str, True), "label": (str, True), "out": (str, True), "epochs": (int, False),
    "sample_rate": (str, False), "seconds": (float, False), "valid_fraction": (float, False),
    "seed": (int, False), "device": (str, False), "batch_size": (int, False), "lr": (float, False),
    "gain_db": (float, False),
}
EVAL_KEYS: dict[str, tuple[type, bool]] = {
    "generated": (str, True), "real": (str, False), "judge": (str, False), "label": (str, False),
    "out": (str, False), "pitch_field": (str, False), "tolerance_cents": (float, False),
    "embedder": (str, False), "embedder_weights": (str, False), "seed": (int, False), "device": (str, False),
}
GENERATED_MANIFEST = "generated.jsonl"


class UsageError(_UsageError):
    """Bad `audiodiff evaluate` arguments; one line naming the key and the allowed keys (exit code 2)."""

    def __init__(self, msg: str):
        super().__init__(f"{msg} (see audiodiff evaluate --help)")


def parse_args(argv: Sequence[str], keys: dict[str, tuple[type, bool]]) -> dict[str, Any]:
    """Parse `key=value` arguments against `keys` (type, required); unknown / duplicate / missing keys raise."""
    out: dict[str, Any] = {}
    for a in argv:
        if "=" not in a:
            raise UsageError(f"expected key=value, got {a!r}; allowed keys: {sorted(keys)}")
        k, v = a.split("=", 1)
        k = k.strip().lstrip("+")
        if k not in keys:
            raise UsageError(f"unknown key {k!r}; allowed keys: {sorted(keys)}")
        if k in out:
            raise UsageError(f"key {k!r} given twice")
        typ = keys[k][0]
        try:
            out[k] = typ(v)
        except ValueError:
            raise UsageError(f"{k}={v!r} is not a valid {typ.__name__}") from None
    missing = [k for k, (_, req) in keys.items() if req and k not in out]
    if missing:
        raise UsageError(f"missing required key(s) {missing}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point for `audiodiff evaluate ...`; `argv` excludes the program name (a leading `evaluate` is ok)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        argv = argv[1:]
    if not argv:
        raise UsageError("give train-judge data=... label=... out=..., or generated=<folder>")
    if argv[0] in ("-h", "--help", "help") or any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv[0] == "train-judge":
        args = parse_args(argv[1:], TRAIN_KEYS)
        from audiodiff.evaluation.judge import train_judge

        sr = args.pop("sample_rate", "16000")
        if sr in ("auto", "none", "None"):
            sample_rate = None
        else:
            try:
                sample_rate = int(sr)
            except ValueError:
                raise UsageError(f"sample_rate={sr!r}: give an integer in Hz or 'auto' (the manifest's rate)") from None
        judge, report = train_judge(args.pop("data"), args.pop("label"), args.pop("out"), sample_rate=sample_rate,
                                    progress=True, **args)
        summary = {k: report.get(k) for k in ("valid_accuracy", "num_train", "num_valid", "epochs",
                                                "train_seconds", "device")}
        summary["sample_rate"] = judge.sample_rate  # the rate used (sample_rate=auto: the manifest's)
        trust = report["trust"]
        summary["trust"] = {k: trust[k] for k in ("ok", "p_value_vs_chance", "chance", "reasons")}
        print(json.dumps(summary, indent=2))
        return 0
    args = parse_args(argv, EVAL_KEYS)
    result = evaluate_generated(**args)
    print(json.dumps(result["rows"], indent=2, default=str))
    for note in result["not_scored"]:
        print(f"note: {note}")
    print(f"report: {result['files']['md']}")
    return 0


# ---------------------------------------------------------------------- reading the generated folder
def read_generated(folder) -> list[dict]:
    """Entries `{"path": absolute, ...asked conditions}` of a generated folder.

    With `generated.jsonl`: its entries (each needs `path`, relative to the folder or absolute, naming an
    existing file). Without: every `*.wav` in the folder (not recursive), sorted by name, no conditions.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"generated={folder} does not exist or is not a folder; give the out= folder of "
                         "`audiodiff generate`")
    manifest = folder / GENERATED_MANIFEST
    if manifest.is_file():
        from ..data.manifest import iter_jsonl

        entries = []
        for where, e in iter_jsonl(manifest):
            if not isinstance(e.get("path"), str):
                raise ValueError(f"{where}: each line must be a JSON object with a string 'path'")
            p = Path(e["path"])
            p = p if p.is_absolute() else folder / p
            if not p.is_file():
                raise FileNotFoundError(f"{where}: {p} does not exist")
            entries.append({**e, "path": str(p.resolve())})
        if not entries:
            raise ValueError(f"{manifest} lists no files")
        listed = {e["path"] for e in entries}
        extra = [p for p in folder.glob("*") if p.suffix.lower() == ".wav" and str(p.resolve()) not in listed]
        if extra:
            log.warning("%d WAV files in %s are not in %s and are not evaluated (e.g. %s)", len(extra), folder,
                        GENERATED_MANIFEST, extra[0].name)
        return entries
    wavs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not wavs:
        raise FileNotFoundError(f"{folder} holds no .wav files (and no {GENERATED_MANIFEST})")
    return [{"path": str(p.resolve())} for p in wavs]


def _field(entries: list[dict], field: str, where: str) -> list | None:
    """Values of `field` if every entry has it; None if none has it; error when only some do."""
    have = [field in e for e in entries]
    if not any(have):
        return None
    if not all(have):
        missing = [e["path"] for e, h in zip(entries, have) if not h]
        raise ValueError(f"{where}: {len(missing)} of {len(entries)} entries lack field {field!r} "
                         f"(e.g. {missing[0]}); give it for all or none")
    return [e[field] for e in entries]


def _load_all(entries: list[dict], sample_rate: int | None) -> tuple[list[torch.Tensor], int]:
    """Load mono clips `(T,)`; with sample_rate=None the first file's rate is used for all (others resampled)."""
    from audiodiff.audio import load

    clips = []
    for e in entries:
        audio, sr = load(e["path"], sample_rate=sample_rate, mono=True)
        if sample_rate is None:
            sample_rate = sr
        clips.append(audio[0])
    return clips, int(sample_rate)


def _real_split(real_entries: list[dict], judge_dir: Path | None, seed: int) -> tuple[list, list, str]:
    """Real train / held-out parts: the judge's own split when it covers these files, else a fresh 90/10 split."""
    from audiodiff.data.manifest import split_manifest

    if judge_dir is not None and (judge_dir / "split.json").is_file():
        split = json.loads((judge_dir / "split.json").read_text())
        valid = set(split.get("valid", []))
        held = [e for e in real_entries if e["path"] in valid]
        if held and len(held) < len(real_entries):
            train = [e for e in real_entries if e["path"] not in valid]
            return train, held, "the judge's held-out split (recordings the judge never trained on)"
    train, held = split_manifest(real_entries, valid_fraction=0.1, seed=seed)
    return train, held, f"a 90/10 split of the real manifest (seed {seed}); the judge may have trained on both"


def _check_label(label: str, entries: list[dict], where) -> None:
    """Raise UsageError when no entry of `where` has field `label`, naming the fields they have."""
    from ..conditions import label_fields_of

    if not any(label in e for e in entries):
        raise UsageError(f"label={label!r} is not a field of {where}; fields: {label_fields_of(entries)}")


def _judge_trust(judge_dir: Path, labels: list) -> dict | None:
    """The judge's `trust` from its train_report.json (recomputed from `confusion` for older reports); None: unknown."""
    from audiodiff.evaluation.judge.train import held_out_trust

    tr = judge_dir / "train_report.json"
    if not tr.is_file():
        return None
    report = json.loads(tr.read_text())
    if isinstance(report.get("trust"), dict):
        return report["trust"]
    if report.get("confusion") is not None:
        return held_out_trust(report["confusion"], labels)
    return None


def evaluate_generated(generated, real=None, judge=None, label: str | None = None, out=None,
                       pitch_field: str = "pitch", tolerance_cents: float = 50.0, embedder: str = "judge",
                       embedder_weights=None, seed: int = 0, device=None) -> dict:
    """Score a folder of generated WAVs and write `report.json` / `report.md` (+ PNG plots) into `out`.

    Args:
        generated: folder of WAVs, optionally with `generated.jsonl` (asked labels / pitches per file).
        real: JSONL manifest of real recordings (reference statistics and the real rows); optional.
        judge: folder of a trained judge (:func:`audiodiff.evaluation.judge.train_judge`); optional.
        label: field of `generated.jsonl` / the real manifest holding the asked class (default: the judge's).
            Given explicitly, it must be a field of generated.jsonl (when the folder has one) and of `real`.
        pitch_field: field holding the asked MIDI pitch; pitch accuracy is computed when present.
        embedder: `judge` (features of the judge, the "FD (judge)" column), or `vggish` / `clap` with
            `embedder_weights` (a local file / folder) for an extra "FD (embedder)" column (needs `real`).
    Returns:
        the results dict written to report.json, plus `files` (paths written). `not_scored` lists what could not
        be scored and what it needs (also notes of report.md); `rows["generated"]` always holds the clip
        statistics (:func:`audiodiff.evaluation.metrics.clip_statistics`).
    Raises:
        UsageError: `label` given but not a field of generated.jsonl or of the real manifest.
    """
    from audiodiff.audio import info as audio_info
    from audiodiff.evaluation import metrics as M
    from audiodiff.evaluation.embeddings import build as build_embedder
    from audiodiff.evaluation.onsets import note_onsets
    from audiodiff.evaluation.pitch import pitch_accuracy, plot_pitch_scatter
    from audiodiff.evaluation.report import write_report
    from audiodiff.plots import spectrogram_grid

    folder = Path(generated)
    out = Path(out) if out is not None else folder / "evaluation"
    entries = read_generated(folder)
    gen_where = str(folder / GENERATED_MANIFEST)
    results: dict[str, Any] = {"generated_folder": str(folder.resolve()), "num_generated": len(entries)}
    rows: dict[str, dict] = {"generated": {"n": len(entries)}}
    notes: list[str] = []
    not_scored: list[str] = []  # what could not be scored, and what it needs
    warnings: list[str] = []  # first in report.md
    images: dict[str, Path] = {}
    has_manifest = (folder / GENERATED_MANIFEST).is_file()
    if label is not None and has_manifest:
        _check_label(label, entries, gen_where)

    real_entries = None
    if real is not None:
        from audiodiff.data.manifest import read_manifest

        real_entries = read_manifest(real)
        if len(real_entries) < 4:
            raise ValueError(f"real manifest {real} has {len(real_entries)} entries; need at least 4")
        if label is not None:
            _check_label(label, real_entries, real)

    j = None
    judge_dir = Path(judge) if judge is not None else None
    if judge_dir is not None:
        from audiodiff.evaluation.judge import Judge

        j = Judge.load(judge_dir, device=device)
        label = label or j.label_field
        results["judge"] = {"folder": str(judge_dir.resolve()), "label_field": j.label_field, "labels": j.labels,
                            "sample_rate": j.sample_rate, "seconds": j.seconds}
        tr = judge_dir / "train_report.json"
        if tr.is_file():
            results["judge"]["valid_accuracy"] = json.loads(tr.read_text()).get("valid_accuracy")
        trust = _judge_trust(judge_dir, j.labels)
        results["judge"]["trust"] = trust
        warning = None
        if trust is None:
            warning = (f"the judge {judge_dir} has no held-out report ({tr.name} missing or without a confusion "
                       "matrix), so whether its accuracy / IS / FD can be trusted is unknown")
        elif not trust["ok"]:
            acc, n = trust.get("accuracy"), trust.get("num_valid")
            measured = f"held-out accuracy {acc:.1%} on {n} clips" if acc is not None else "no held-out clips"
            warning = (f"the judge {judge_dir} is not trustworthy ({measured}): {'; '.join(trust['reasons'])}; "
                       "its accuracy / IS / mIS / FD mean little (train it on more labelled clips)")
        if warning is not None:
            log.warning("evaluate: %s", warning)
            warnings.append(f"**Warning**: {warning}.")
    else:
        not_scored.append("accuracy / IS / mIS / FD and the real-data row need judge=<dir> (train one with "
                          "`audiodiff evaluate train-judge data=<manifest.jsonl> label=<field> out=<dir>`).")
    if real is None:
        not_scored.append("a real-data (held-out) row and FD need real=<manifest.jsonl> (the real recordings).")

    asked = _field(entries, label, gen_where) if label else None
    clips, sr = _load_all(entries, None)
    results["sample_rate"] = sr
    clip_summary, clip_items = M.clip_statistics(clips, sr)
    rates = sorted({int(audio_info(e["path"]).samplerate) for e in entries})
    clip_summary["sample_rate"] = rates[0] if len(rates) == 1 else None
    clip_summary = {k: clip_summary[k] for k in ("n", "duration_s", "duration_min_s", "duration_max_s", "sample_rate",
                                                 "rms_dbfs", "silent_share", "clipping_share")}
    results["clips"] = [{"path": e["path"], **i} for e, i in zip(entries, clip_items)]
    notes.append(f"Clip statistics need no reference: RMS level is 20 log10(RMS) of the mono mix in dBFS (a "
                 f"full-scale sine is -3.0), median over clips; near-silent: below {M.SILENCE_DBFS:g} dBFS; "
                 f"clipping: a flat top of {M.CLIP_RUN}+ equal samples at |x| >= {M.CLIP_LEVEL:g}.")
    if len(rates) > 1:
        notes.append(f"The generated files have sample rates {rates} Hz; statistics are computed after resampling "
                     f"to {sr} Hz.")

    if j is not None:
        from audiodiff.evaluation.judge import fit_length

        jclips, _ = _load_all(entries, j.sample_rate)
        batch = torch.cat([fit_length(c.view(1, 1, -1), j.num_samples) for c in jclips])
        probs = j.predict_proba(batch)
        targets = j.label_index(asked) if asked is not None else None
        rows["generated"].update(M.score_predictions(probs, targets))
        gen_feats = j.features(batch)
        if real_entries is not None:
            train_e, held_e, how = _real_split(real_entries, judge_dir, seed)
            notes.append(f"Real reference: {how}; {len(train_e)} train / {len(held_e)} held-out recordings.")
            tr_clips, _ = _load_all(train_e, j.sample_rate)
            ho_clips, _ = _load_all(held_e, j.sample_rate)
            tr_batch = torch.cat([fit_length(c.view(1, 1, -1), j.num_samples) for c in tr_clips])
            ho_batch = torch.cat([fit_length(c.view(1, 1, -1), j.num_samples) for c in ho_clips])
            train_feats = j.features(tr_batch)
            ho_probs = j.predict_proba(ho_batch)
            ho_labels = _field(held_e, label, str(real)) if label else None
            row = {"n": len(held_e)}
            row.update(M.score_predictions(ho_probs, j.label_index(ho_labels) if ho_labels is not None else None))
            # a Gaussian needs two points or more: a set smaller than that gets no FD, and the note says why
            if len(tr_clips) >= 2 and len(held_e) >= 2:
                row["frechet_distance"] = M.frechet_distance_features(j.features(ho_batch), train_feats)
            if len(tr_clips) >= 2 and len(entries) >= 2:
                rows["generated"]["frechet_distance"] = M.frechet_distance_features(gen_feats, train_feats)
            rows["real (held-out)"] = row
            if len(tr_clips) < 2 or len(held_e) < 2 or len(entries) < 2:
                not_scored.append(f"FD needs at least 2 clips in each set (real train {len(tr_clips)}, real held-out "
                                  f"{len(held_e)}, generated {len(entries)}); the rows lacking it have too few")
            notes.append("FD: Frechet distance of judge features to the real *training* recordings "
                         "(Heusel et al. 2017); it is biased upward for small n, so compare rows of similar n.")
        notes.append("IS / mIS from judge probabilities (Salimans et al. 2016; Gurumurthy et al. 2017); "
                     f"the judge has {j.num_classes} classes, so both are at most {j.num_classes} for IS.")
        if asked is not None:
            notes.append(f"accuracy: share of samples the judge assigns to the asked `{label}`.")
        else:
            not_scored.append(f"accuracy needs asked labels: a `{label}` field in {GENERATED_MANIFEST} "
                              "(IS / mIS / FD need none).")

    if embedder != "judge":
        if real_entries is None:
            raise ValueError(f"embedder={embedder} needs real=<manifest> to compare against")
        emb = build_embedder({"name": embedder, "weights": embedder_weights}, device=device)
        real_clips, real_sr = _load_all(real_entries, None)
        rows["generated"]["embedding_frechet_distance"] = M.frechet_distance_features(
            emb.embed(clips, sr).double().numpy(), emb.embed(real_clips, real_sr).double().numpy())
        notes.append(f"FD (embedder): Frechet distance of {embedder} embeddings, generated vs. all real.")

    pitches = _field(entries, pitch_field, gen_where)
    if pitches is not None:
        pr = pitch_accuracy(clips, sr, pitches, tolerance_cents=tolerance_cents)
        rows["generated"]["pitch_accuracy"] = pr["accuracy"]
        results["pitch"] = pr
        images["Pitch: asked vs. estimated"] = plot_pitch_scatter(pr, out / "pitch.png")
        notes.append(f"pitch accuracy: pYIN median f0 within {tolerance_cents:g} cents of the asked pitch "
                     f"({pr['n_unvoiced']} unvoiced, {pr['octave_errors']} octave errors, median |error| "
                     f"{pr['median_abs_cents']:.1f} cents).")
        on = note_onsets(clips, sr, voiced_fraction=[r["voiced_fraction"] for r in pr["items"]])
        rows["generated"].update(one_onset=on["one_onset"], clean_notes=on["clean_notes"])
        results["onsets"] = on
        notes.append(f"onsets: spectral-flux onsets per note (threshold {on['delta']:g} of the clip's strongest "
                     f"rise); one onset {on['one_onset']:.1%}, none {on['no_onset']:.1%}, more {on['multi_onset']:.1%}; "
                     "a clean note has one onset and a voiced frame.")
    else:
        not_scored.append(f"pitch accuracy needs asked pitches: a `{pitch_field}` field in {GENERATED_MANIFEST}.")
    rows["generated"].update({k: v for k, v in clip_summary.items() if k != "n"})

    titles = [f"{Path(e['path']).stem}" + (f" ({label}={e[label]})" if label and label in e else "")
              + (f" (pitch {e[pitch_field]})" if pitch_field in e else "") for e in entries]
    images["Spectrograms (first 16 generated)"] = spectrogram_grid(clips, sr, out / "spectrograms.png", titles)

    results["rows"] = rows
    results["not_scored"] = not_scored
    notes = warnings + [f"Not scored: {n}" for n in not_scored] + notes
    files = write_report(results, out, title=f"Evaluation of {folder.name}", images=images, notes=notes)
    results["files"] = files
    return results
