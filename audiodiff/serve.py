"""`audiodiff serve`: a local web page (Gradio) to listen to a trained run — generate, vary, continue.

```python
from audiodiff.serve import launch
launch("runs/tones", port=7860)                 # blocks; open http://127.0.0.1:7860
demo = launch(pipe, port=0, block=False)        # returns the running gr.Blocks (port=0: a free port); demo.close()
```
The page offers only what the run allows: a dropdown of the vocabulary for a class-conditioned model, a slider
over the pitch range for a pitch-conditioned one (both for a class + pitch model). Every request's clips are
written with `Generated.save` (WAV, spectrogram PNG, `generated.jsonl`) and each clip's row of that file is shown
next to its player and offered for download. A request the model cannot honour shows the package's one-line
message in the page and the server keeps serving; requests queue one at a time on the model.

Needs the `web` extra (`pip install 'audiodiff[web]'`). Nothing here reaches beyond the machine: Gradio's
analytics and version check are off, there is no share link, and the theme uses system fonts only.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .errors import AudiodiffError, UsageError

HELP = """\
audiodiff serve run=RUN [port=7860] [host=127.0.0.1] [device=auto] [step=newest] [out=TEMP]
  A web page (Gradio) to listen to a trained run: generate clips, vary or continue an uploaded clip.
  run     run directory or checkpoint directory (required), e.g. runs/tones
  port    TCP port to listen on (default 7860; 0 picks a free one)
  host    address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)
  device  cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)
  step    checkpoint step to load (default: the newest)
  out     folder keeping every request's WAVs, spectrograms and generated.jsonl (default: a temporary folder)
Needs the web extra: pip install 'audiodiff[web]'
Example: audiodiff serve run=runs/tones port=7860"""

KEYS = ("run", "port", "host", "device", "step", "out")
MAX_CLIPS = 4           # clip slots on the page (the count slider's maximum)
_GRADIO_VERSION = "6"   # the major version the page is written for (pinned in pyproject's `web` extra)


# ---------------------------------------------------------------------------------------------- gradio
def _gradio():
    """Import gradio with analytics and version checks off, or fail with one line naming the extra."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"   # no telemetry and no version check (api.gradio.app)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    for key in ("NO_PROXY", "no_proxy"):   # the server's calls to itself must not go through a proxy
        hosts = [h for h in os.environ.get(key, "").split(",") if h]
        os.environ[key] = ",".join(hosts + [h for h in ("127.0.0.1", "localhost") if h not in hosts])
    try:
        import gradio as gr
    except ImportError as e:
        raise AudiodiffError(f"the web page needs gradio, which is not installed ({e.name or 'gradio'}); "
                             f"install the web extra: pip install 'audiodiff[web]'") from None
    import huggingface_hub.constants as hub

    hub.HF_HUB_DISABLE_TELEMETRY = True     # read at import: gradio may have been imported before this call
    if not gr.__version__.startswith(_GRADIO_VERSION + "."):
        raise AudiodiffError(f"the web page is written for gradio {_GRADIO_VERSION}.x; found gradio "
                             f"{gr.__version__}; install the pinned one: pip install 'audiodiff[web]'")
    return gr


def _theme(gr):
    """Gradio's default look with system fonts only: no font is fetched from Google or anywhere else."""
    return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _launch_options(gr, host: str, port: int, out: Path) -> dict:
    """`Blocks.launch` keywords that keep the server local: no share link, no SSR node server, no MCP, no PWA."""
    return dict(server_name=host, server_port=port, share=False, inbrowser=False, quiet=True, show_error=True,
                ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False, theme=_theme(gr),
                allowed_paths=[str(out)], footer_links=["api", "settings"])


# ---------------------------------------------------------------------------------------------- the page
class _Server:
    """The model behind the page: one lock so that only one request samples at a time."""

    def __init__(self, pipe, run: str | None, out: Path, max_clips: int = MAX_CLIPS):
        self.pipe, self.run, self.out, self.max_clips = pipe, run, Path(out), int(max_clips)
        self.lock = threading.Lock()
        spec = pipe.condition_spec
        self.has_labels = "labels" in spec.fields
        self.has_pitch = "pitch" in spec.fields
        self.vocab = list(spec.vocab) if self.has_labels else []
        self.pitch_range = spec.pitches if self.has_pitch else None
        sampler = pipe.meta.get("sampler") or {}
        self.default_sampler = sampler.get("method", "dpmpp_2m")
        self.default_steps = int(sampler.get("steps", 25))
        self.default_seconds = pipe.meta["segment_samples"] / pipe.sample_rate

    # ------------------------------------------------------------------ request -> pipeline keywords
    def _label(self, value):
        """The vocabulary entry chosen in the dropdown (the page sends text; the vocabulary may hold numbers)."""
        if value is None or value == "":
            return None
        if value in self.vocab:
            return value
        match = [v for v in self.vocab if str(v) == str(value)]
        return match[0] if match else value   # an unknown value goes on to the pipeline, which names the allowed ones

    def _conditions(self, label, pitch) -> dict:
        kw = {}
        if self.has_labels:
            kw["labels"] = self._label(label)
        if self.has_pitch and pitch is not None:
            kw["pitch"] = pitch
        return {k: v for k, v in kw.items() if v is not None}

    @staticmethod
    def _int(name: str, value, allowed: str):
        if value is None or value == "":
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"{name}={value!r} is not allowed; allowed: {allowed}")
        return value

    def _common(self, label, pitch, count, sampler, steps, guidance, seed) -> tuple[int, dict]:
        n = self._int("count", count, f"an integer 1..{self.max_clips}")
        if n is None or not 1 <= n <= self.max_clips:
            raise UsageError(f"count={count!r} is not allowed; allowed: an integer 1..{self.max_clips}")
        kw = dict(sampler=sampler or None, steps=self._int("steps", steps, "an integer >= 1"),
                  seed=self._int("seed", seed, "an integer (clip k gets seed + k) or empty for a random one"),
                  progress=True, **self._conditions(label, pitch))
        if self.pipe.condition is not None and guidance is not None:
            kw["guidance"] = float(guidance)
        return n, kw

    # ------------------------------------------------------------------ the three actions
    def generate(self, label, pitch, seconds, count, sampler, steps, guidance, seed, progress):
        n, kw = self._common(label, pitch, count, sampler, steps, guidance, seed)
        progress(0, desc=f"sampling {n} clip(s)")
        with self.lock:
            out = self.pipe.generate(n=n, seconds=seconds, **kw)
        return self._publish(out, "generate", kw)

    def from_clip(self, task, upload, strength, extra_seconds, label, pitch, count, sampler, steps, guidance, seed,
                  progress):
        from .audio import load

        n, kw = self._common(label, pitch, count, sampler, steps, guidance, seed)
        if not upload:
            raise UsageError(f"{task}: no clip uploaded; allowed: a WAV, FLAC or OGG file")
        if task == "variation" and not isinstance(strength, (int, float)):
            raise UsageError(f"strength={strength!r} is not allowed; allowed: a number 0 <= strength <= 1")
        channels = int(self.pipe.meta.get("channels", 1))
        audio, sr = load(upload, self.pipe.sample_rate, mono=channels == 1)   # AudioError names the file
        batch = audio.unsqueeze(0).expand(n, *audio.shape).contiguous()   # n takes of the same clip, seeds seed + k
        progress(0, desc=f"{task}: sampling {n} clip(s)")
        with self.lock:
            if task == "variation":
                out = self.pipe.variation(batch, strength=float(strength), sample_rate=sr, **kw)
            else:
                out = self.pipe.continue_(batch, seconds=extra_seconds, sample_rate=sr, **kw)
        return self._publish(out, task, {**kw, "source": Path(upload).name})

    # ------------------------------------------------------------------ results -> page
    def _publish(self, out, task: str, kw: dict) -> list[dict]:
        """Save the clips with `Generated.save` and return, per clip, its files and its `generated.jsonl` row."""
        asked = {"task": task, "run": self.run, "sampler": kw.get("sampler") or self.default_sampler,
                 "steps": kw.get("steps") or self.default_steps, "guidance": kw.get("guidance"),
                 "source": kw.get("source")}
        asked = {k: v for k, v in asked.items() if v is not None}
        out.items = [{**asked, **(out.items[i] if i < len(out.items) else {})} for i in range(out.audio.shape[0])]
        folder = self.out.resolve() / f"{time.strftime('%Y%m%d-%H%M%S')}-{task}-{uuid.uuid4().hex[:6]}"
        out.save(folder, plot=True, prefix="clip")
        rows = [json.loads(line) for line in (folder / "generated.jsonl").read_text().splitlines() if line.strip()]
        clips = []
        for row in rows:
            wav = folder / row["path"]
            record = wav.with_suffix(".json")
            record.write_text(json.dumps(row, indent=1) + "\n")    # the clip's settings, stored next to it
            clips.append({"wav": str(wav), "png": str(wav.with_suffix(".png")), "json": str(record), "row": row})
        return clips


def build_app(pipe, run: str | None = None, out=None, max_clips: int = MAX_CLIPS):
    """The page for one Pipeline as a `gr.Blocks` (queued, one request at a time on the model).

    Args:
        pipe: a loaded `Pipeline`.
        run: the run's name or path, recorded with every clip.
        out: folder for every request's clips (default: a new temporary folder).
        max_clips: number of clip slots (the largest count one request may ask for).
    Returns:
        `gr.Blocks`; launch it with `launch(...)` (which adds the local-only theme and options).
    """
    gr = _gradio()
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="audiodiff-serve-"))
    out.mkdir(parents=True, exist_ok=True)
    srv = _Server(pipe, run, out, max_clips)
    from . import samplers

    def respond(action, *args):
        """Run one request; the package's one-line message goes to the page as a gr.Error."""
        start = time.perf_counter()
        try:
            clips = action(*args)
        except AudiodiffError as e:
            raise gr.Error(str(e), title="audiodiff", print_exception=False) from None
        task = clips[0]["row"].get("task", "generate") if clips else "generate"
        status = (f"{len(clips)} clip(s), {task}, {time.perf_counter() - start:.1f} s; saved in "
                  f"{Path(clips[0]['wav']).parent if clips else out}")
        return [status] + _slots(gr, clips, max_clips)

    name = Path(run).name if run else "model"
    with gr.Blocks(title=f"audiodiff · {name}", analytics_enabled=False) as demo:
        gr.Markdown(f"## audiodiff · {name}\n{pipe.sample_rate} Hz, trained on {srv.default_seconds:g} s clips; "
                    f"conditions: {pipe.allowed_labels()}")
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                label = gr.Dropdown(choices=srv.vocab, value=srv.vocab[0] if srv.vocab else None,
                                    label=f"Label ({pipe.condition_spec.fields.get('labels', 'class')})",
                                    visible=srv.has_labels, allow_custom_value=True, elem_id="label")
                lo, hi = srv.pitch_range or (0, 127)
                pitch = gr.Slider(lo, hi, value=round((lo + hi) / 2), step=1, label="Pitch (MIDI)",
                                  visible=srv.has_pitch, elem_id="pitch")
                with gr.Row():
                    seconds = gr.Number(value=srv.default_seconds, label="Seconds", min_width=100, elem_id="seconds")
                    count = gr.Slider(1, max_clips, value=1, step=1, label="Clips", min_width=100, elem_id="count")
                with gr.Accordion("Sampling", open=True):
                    with gr.Row():
                        sampler = gr.Dropdown(choices=sorted(samplers.SAMPLERS), value=srv.default_sampler,
                                              label="Sampler", min_width=100, elem_id="sampler")
                        steps = gr.Slider(1, max(200, srv.default_steps), value=srv.default_steps, step=1,
                                          label="Steps", min_width=100, elem_id="steps")
                    with gr.Row():
                        guidance = gr.Slider(0, 10, value=1.0, step=0.5, label="Guidance (1: plain)", min_width=100,
                                             visible=pipe.condition is not None, elem_id="guidance")
                        seed = gr.Number(value=0, precision=0, label="Seed (clip k: seed + k)", min_width=100,
                                         elem_id="seed")
                with gr.Tab("Generate"):
                    gen_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Tab("From a clip"):
                    upload = gr.Audio(sources=["upload"], type="filepath", label="Clip (WAV, FLAC, OGG)",
                                      elem_id="upload")
                    strength = gr.Slider(0, 1, value=0.5, step=0.05, label="Variation strength "
                                         "(0 = the clip, 1 = a fresh sample)", elem_id="strength")
                    vary_btn = gr.Button("Vary", elem_id="vary")
                    extra = gr.Number(value=srv.default_seconds, label="Continue by (seconds)", elem_id="extra")
                    cont_btn = gr.Button("Continue", elem_id="continue")
            with gr.Column(scale=2):
                status = gr.Textbox(value="Choose the settings and press Generate.", label="Status",
                                    interactive=False, elem_id="status")    # the progress bar shows here
                outputs = [status]
                for i in range(max_clips):
                    with gr.Column(visible=False, elem_id=f"clip{i}") as box:
                        player = gr.Audio(type="filepath", label=f"Clip {i + 1}", interactive=False,
                                          elem_id=f"clip{i}_audio")
                        with gr.Row():
                            image = gr.Image(type="filepath", label="Spectrogram", interactive=False, height=200,
                                             min_width=240, elem_id=f"clip{i}_spec")
                            with gr.Column(min_width=240):
                                record = gr.Code(language="json", label="Settings (its line of generated.jsonl)",
                                                 interactive=False, lines=3, wrap_lines=True,
                                                 show_line_numbers=False, elem_id=f"clip{i}_json")
                                files = gr.File(file_count="multiple", label="Download (WAV + settings)",
                                                interactive=False, height=120, elem_id=f"clip{i}_files")
                    outputs += [box, player, image, record, files]

        conditions = [label, pitch]
        sampling = [count, sampler, steps, guidance, seed]

        def do_generate(label, pitch, seconds, count, sampler, steps, guidance, seed,
                        progress=gr.Progress(track_tqdm=True)):
            return respond(srv.generate, label, pitch, seconds, count, sampler, steps, guidance, seed, progress)

        def do_vary(upload, strength, label, pitch, count, sampler, steps, guidance, seed,
                    progress=gr.Progress(track_tqdm=True)):
            return respond(srv.from_clip, "variation", upload, strength, None, label, pitch, count, sampler, steps,
                           guidance, seed, progress)

        def do_continue(upload, extra, label, pitch, count, sampler, steps, guidance, seed,
                        progress=gr.Progress(track_tqdm=True)):
            return respond(srv.from_clip, "continue", upload, None, extra, label, pitch, count, sampler, steps,
                           guidance, seed, progress)

        once = dict(concurrency_limit=1, concurrency_id="model")   # the three share one slot on the model
        gen_btn.click(do_generate, conditions + [seconds] + sampling,
                      outputs, api_name="generate", **once)
        vary_btn.click(do_vary, [upload, strength] + conditions + sampling,
                       outputs, api_name="vary", **once)
        cont_btn.click(do_continue, [upload, extra] + conditions + sampling,
                       outputs, api_name="continue", **once)
    demo.queue(default_concurrency_limit=1)
    demo.audiodiff_out, demo.audiodiff_pipeline = out, pipe
    return demo


def _slots(gr, clips: list[dict], max_clips: int) -> list:
    """Page outputs: per slot its visibility, player, spectrogram, settings and downloads."""
    values = []
    for i in range(max_clips):
        if i < len(clips):
            c = clips[i]
            values += [gr.Column(visible=True), c["wav"], c["png"], json.dumps(c["row"]), [c["wav"], c["json"]]]
        else:
            values += [gr.Column(visible=False), None, None, None, None]
    return values


# ---------------------------------------------------------------------------------------------- entry points
def launch(run_or_pipeline, port: int = 7860, host: str = "127.0.0.1", device=None, step: int | None = None,
           out=None, block: bool = True, quiet: bool = False):
    """Serve the page for a run directory (or a loaded Pipeline) on `host:port`.

    Args:
        run_or_pipeline: `runs/<name>`, a checkpoint directory, or a `Pipeline`.
        port: TCP port (0: a free one, see `demo.server_port`).
        host: address to bind; the default 127.0.0.1 is reachable from this machine only.
        device, step: passed to `Pipeline.from_pretrained` when given a path.
        out: folder that keeps every request's clips (default: a temporary folder).
        block: serve until interrupted (True), or return the running `gr.Blocks` at once (`demo.close()` stops it).
    Returns:
        the launched `gr.Blocks` (`demo.local_url` is its address).
    """
    gr = _gradio()
    from .pipeline import Pipeline

    if isinstance(run_or_pipeline, Pipeline):
        pipe, run = run_or_pipeline, None
    else:
        pipe, run = Pipeline.from_pretrained(run_or_pipeline, device=device, step=step), str(run_or_pipeline)
    if port == 0:
        port = _free_port(host)
    demo = build_app(pipe, run=run, out=out)
    logging.getLogger("httpx").setLevel(logging.WARNING)    # not one line per request the server makes to itself
    try:
        demo.launch(prevent_thread_lock=True, **_launch_options(gr, host, port, demo.audiodiff_out))
    except OSError as e:
        raise AudiodiffError(f"port={port}: cannot serve on {host}:{port} ({_first_line(e)}); "
                             f"choose another port=") from None
    if not quiet:
        print(f"audiodiff serve: {demo.local_url} ({run or 'the given pipeline'}; clips are saved in "
              f"{demo.audiodiff_out}; Ctrl-C stops)", flush=True)
    if block:
        try:
            while demo.is_running:
                time.sleep(0.5)
        finally:            # Ctrl-C (KeyboardInterrupt) closes the server and goes on up: the CLI exits 130
            demo.close()
    return demo


def cmd_serve(args: list[str]) -> None:
    """`audiodiff serve run=R [port=7860] [host=127.0.0.1] [device=..] [step=..] [out=..]` (see HELP)."""
    kw = {}
    for a in args:
        key, sep, value = a.partition("=")
        if not sep or not key:
            raise UsageError(f"serve: arguments must be key=value; got {a!r}; allowed keys: {', '.join(KEYS)}")
        if key not in KEYS:
            raise UsageError(f"serve: unknown key {key!r}; allowed keys: {', '.join(KEYS)}")
        if key in kw:
            raise UsageError(f"serve: {key}= given twice; give each key once")
        kw[key] = value
    if not kw.get("run"):
        raise UsageError("serve: run= is required (a run directory, e.g. run=runs/tones); "
                         f"allowed keys: {', '.join(KEYS)}")
    for key, lo, hi in (("port", 0, 65535), ("step", 0, 10 ** 12)):
        if key in kw:
            value = kw[key]
            if not value.isdigit() or not lo <= int(value) <= hi:
                allowed = f"an integer {lo}..{hi}" if key == "port" else "a checkpoint step (an integer >= 0)"
                raise UsageError(f"serve: {key}={value!r} is not allowed; allowed: {allowed}")
            kw[key] = int(value)
    _gradio()    # fail on a missing extra before loading the model
    launch(kw.pop("run"), **kw)


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
