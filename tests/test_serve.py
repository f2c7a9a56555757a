"""`audiodiff serve`: the page in a real headless Chromium, its API, bad input, queueing, and the command line.

The server runs in this process on 127.0.0.1; a guard refuses (and records) any connection or name lookup from
this process to another address, and the browser is started so that it resolves nothing else, and every request
it made is checked afterwards. The browser test needs Debian's chromium + chromium-driver (`apt-get install -y
chromium chromium-driver`); it is skipped when they are absent unless AUDIODIFF_REQUIRE_BROWSER=1 (CI), where it
fails instead. Set AUDIODIFF_SCREENSHOT=path.png to keep the page's screenshot (the README's comes from this).
"""
import inspect
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodiff.errors import AudiodiffError, UsageError
from tests.helpers import tiny_cfg

REQUIRED = os.environ.get("AUDIODIFF_REQUIRE_BROWSER") == "1"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LOCAL = ("127.0.0.1", "::1", "localhost")
BROWSER_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                "--no-proxy-server", "--window-size=1400,900",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


def _need(module: str):
    """Import an optional test dependency (the `web` extra, installed by `make install`)."""
    if REQUIRED:
        return __import__(module)
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install 'audiodiff[web]')")


# ---------------------------------------------------------------------------------------------- network guard
class _Guard:
    """Refuse and record every connection and name lookup from this process to anything but loopback."""

    def __init__(self):
        self.attempts = []
        self._connect, self._getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def __enter__(self):
        guard = self

        def connect(sock, address):
            host = address[0] if isinstance(address, tuple) else address
            if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in LOCAL:
                guard.attempts.append(("connect", address))
                raise OSError(f"test network guard: refused a connection to {address}")
            return guard._connect(sock, address)

        def getaddrinfo(host, *args, **kwargs):
            if host not in LOCAL and host is not None:
                guard.attempts.append(("lookup", host))
                raise socket.gaierror(f"test network guard: refused to resolve {host}")
            return guard._getaddrinfo(host, *args, **kwargs)

        socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
        return self

    def __exit__(self, *exc):
        socket.socket.connect, socket.getaddrinfo = self._connect, self._getaddrinfo
        return False


@pytest.fixture(scope="module")
def guard():
    saved = {k: os.environ.get(k) for k in ("NO_PROXY", "no_proxy")}
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    with _Guard() as g:
        yield g
        _hub_offline(restore=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    assert g.attempts == [], f"something reached beyond 127.0.0.1: {g.attempts}"


# ---------------------------------------------------------------------------------------------- runs + server
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny trained runs: class (timbre) + pitch conditioned, and pitch only."""
    from audiodiff.training.loop import train

    root = tmp_path_factory.mktemp("serve_runs")
    both = tiny_cfg(root / "both", steps=2)
    both["data"]["conditions"] = {"pitch": "pitch", "labels": "timbre"}
    both["data"]["synth"]["timbres"] = ["sine", "square"]
    return {"both": train(both), "pitch": train(tiny_cfg(root / "pitch", steps=2))}


@pytest.fixture(scope="module")
def server(guard, runs, tmp_path_factory):
    """`launch(run, port=0, block=False)` on 127.0.0.1 for the class + pitch run; closed at the end."""
    _need("gradio")
    from audiodiff.serve import launch

    out = tmp_path_factory.mktemp("serve_out")
    demo = launch(runs["both"], port=0, host="127.0.0.1", device="cpu", out=out, block=False, quiet=True)
    assert demo.local_url.startswith("http://127.0.0.1:")
    yield demo
    demo.close()


_HUB = {}


def _hub_offline(restore=False):
    """The test's Gradio client builds Hugging Face headers, which would look agents up on the Hub: keep it offline."""
    if restore:
        if _HUB:
            import huggingface_hub.constants as hc

            for k, v in _HUB.items():
                setattr(hc, k, v)
        return
    import huggingface_hub.constants as hc

    for k in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        _HUB.setdefault(k, getattr(hc, k))
        setattr(hc, k, True)


@pytest.fixture(scope="module")
def client(server):
    gradio_client = _need("gradio_client")
    _hub_offline()
    return gradio_client.Client(server.local_url, verbose=False, analytics_enabled=False)


def _fetch(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never through a proxy
    with opener.open(url, timeout=30) as r:
        return r.read()


def _pipeline_message(pipe, **kw) -> str:
    """What the package itself says for this request (the page must show exactly this)."""
    with pytest.raises(AudiodiffError) as e:
        pipe.generate(progress=False, **kw)
    return str(e.value)


# ---------------------------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def browser(guard):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if REQUIRED:
            pytest.fail(f"AUDIODIFF_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing "
                        "(apt-get install -y chromium chromium-driver)")
        pytest.skip(f"{CHROMIUM} / {CHROMEDRIVER} not installed (apt-get install -y chromium chromium-driver)")
    _need("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    def no_download(*a, **k):
        raise AssertionError("selenium-manager must not run: the driver path is given explicitly")

    selenium_manager.SeleniumManager.binary_paths = no_download
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in BROWSER_ARGS:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _requested_urls(driver) -> set[str]:
    urls = set()
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            urls.add(msg["params"].get("request", {}).get("url") or msg["params"].get("url"))
    return urls


def _set_number(driver, css: str, value):
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element("css selector", css)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value), Keys.TAB)


def _until(driver, condition, what: str, shots: Path, timeout: float = 60):
    """Wait for `condition`; on a timeout keep a screenshot and report the page's error messages."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        driver.save_screenshot(str(shots / "timeout.png"))
        toasts = [t.text for t in driver.find_elements("css selector", "[data-testid=toast-body]")]
        raise AssertionError(f"timed out waiting for {what}; page messages: {toasts}; "
                             f"screenshot: {shots / 'timeout.png'}") from None


def test_page_in_a_real_browser(server, browser, runs, tmp_path):
    """Pick a label and a pitch, press Generate, get an audio player, a spectrogram, the settings and the WAV."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d, wait = browser, WebDriverWait(browser, 60)
    d.get(server.local_url)
    label = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#label input"))
    assert label.get_attribute("value") == "sine"
    label.click()
    options = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=option]"))
    assert [o.get_attribute("aria-label") for o in options] == ["sine", "square"]   # only the vocabulary
    next(o for o in options if o.get_attribute("aria-label") == "square").click()
    assert label.get_attribute("value") == "square"
    pitch = d.find_element(By.CSS_SELECTOR, "#pitch input[type=range]")
    assert (pitch.get_attribute("min"), pitch.get_attribute("max")) == ("60", "72")   # the run's pitch range
    _set_number(d, "#pitch input[type=number]", 64)
    _set_number(d, "#steps input[type=number]", 6)
    d.find_element(By.ID, "generate").click()

    player = _until(d, lambda d: d.find_element(By.ID, "clip0").is_displayed()
                    and d.find_elements(By.CSS_SELECTOR, "#clip0_audio audio")
                    and d.find_elements(By.CSS_SELECTOR, "#clip0_audio a[download='clip_000.wav']"),
                    "the generated clip's player", tmp_path)
    assert not any(e.is_displayed() for e in d.find_elements(By.ID, "clip1"))   # one clip asked, one slot shown
    row = json.loads(d.find_element(By.CSS_SELECTOR, "#clip0_json .cm-content").text)
    assert row["timbre"] == "square" and row["pitch"] == 64 and row["steps"] == 6 and row["seed"] == 0
    assert row["task"] == "generate" and row["sampler"] == "dpmpp_2m"
    spec = d.find_element(By.CSS_SELECTOR, "#clip0_spec img")
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", spec) > 0)

    (tmp_path / "clip.wav").write_bytes(_fetch(player[0].get_attribute("href")))     # the player's WAV
    audio, sr = sf.read(tmp_path / "clip.wav", dtype="float32")
    assert sr == 8000 and audio.shape == (1000,)                  # 0.125 s at the run's rate, mono
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    links = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "#clip0_files a")]
    assert sorted(u.rsplit(".", 1)[-1] for u in links) == ["json", "wav"]
    stored = json.loads(_fetch(next(u for u in links if u.endswith(".json"))))
    assert stored == row                                          # the download carries the same record
    saved = list(Path(server.audiodiff_out).glob("*-generate-*/generated.jsonl"))
    assert any(json.loads(line) == row for p in saved for line in p.read_text().splitlines())

    d.save_screenshot(str(tmp_path / "page.png"))
    if os.environ.get("AUDIODIFF_SCREENSHOT"):
        shutil.copy(tmp_path / "page.png", os.environ["AUDIODIFF_SCREENSHOT"])

    # bad input shows the package's one-line message in the page; the page keeps working
    from audiodiff import Pipeline

    want = _pipeline_message(Pipeline.from_pretrained(runs["both"], device="cpu"), n=1, seconds=1000,
                             labels="square", pitch=64)
    _set_number(d, "#seconds input", 1000)
    d.find_element(By.ID, "generate").click()
    toast = _until(d, lambda d: [t.text for t in d.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")
                                 if want in t.text], f"the message {want!r}", tmp_path)
    assert "\n" not in want and toast

    bad = [u for u in _requested_urls(d) if not u.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:",
                                                                "blob:"))]
    assert bad == [], f"the page asked for something beyond 127.0.0.1: {bad}"


# ---------------------------------------------------------------------------------------------- API
def _generate(client, label="sine", pitch=62, seconds=0.125, count=1, sampler="euler", steps=3, guidance=1.0,
              seed=0):
    return client.predict(label, pitch, seconds, count, sampler, steps, guidance, seed, api_name="/generate")


def test_api_generate_records_every_clip(client):
    r = _generate(client, label="square", pitch=61, count=2, seed=7, guidance=2.0)
    assert len(r) == 1 + 4 * 4 and r[9] is None          # status + 4 slots x (audio, image, settings, files)
    assert r[0].startswith("2 clip(s), generate,") and str(Path(r[1]).name) == "clip_000.wav"
    for k in range(2):
        wav, png, settings, files = r[1 + 4 * k: 5 + 4 * k]
        row = json.loads(settings)
        assert row["seed"] == 7 + k and row["timbre"] == "square" and row["pitch"] == 61
        assert row["guidance"] == 2.0 and row["steps"] == 3 and row["sampler"] == "euler"
        info = sf.info(wav)
        assert (info.samplerate, info.frames) == (8000, 1000)
        assert Path(png).stat().st_size > 0 and sorted(Path(f).suffix for f in files) == [".json", ".wav"]


def test_api_bad_input_one_line_message_then_serves(client, runs, tmp_path):
    from audiodiff import Pipeline
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    pipe = Pipeline.from_pretrained(runs["both"], device="cpu")
    for kw, asked in ((dict(label="bogus"), dict(labels="bogus", pitch=62)),
                      (dict(seconds=1000.0), dict(labels="sine", pitch=62, seconds=1000.0))):
        want = _pipeline_message(pipe, n=1, **asked)
        with pytest.raises(AppError) as e:
            _generate(client, **kw)
        assert str(e.value) == want and "\n" not in want and "allowed" in want
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really audio")
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(bad)), 0.5, "sine", 62, 1, "euler", 3, 1.0, 0, api_name="/vary")
    msg = str(e.value)
    assert "broken.wav" in msg and "\n" not in msg
    assert json.loads(_generate(client, seed=3)[3])["seed"] == 3      # still serving


def test_api_variation_and_continuation_of_an_upload(client, tmp_path):
    t = np.arange(800) / 8000
    sf.write(tmp_path / "prompt.wav", (0.4 * np.sin(2 * math.pi * 330 * t)).astype(np.float32), 8000)
    from gradio_client import handle_file

    up = handle_file(str(tmp_path / "prompt.wav"))
    r = client.predict(up, 0.5, "sine", 64, 2, "euler", 4, 1.0, 1, api_name="/vary")
    rows = [json.loads(r[3]), json.loads(r[7])]
    assert [x["seed"] for x in rows] == [1, 2] and {x["task"] for x in rows} == {"variation"}
    assert rows[0]["source"] == "prompt.wav" and rows[0]["strength"] == 0.5
    assert sf.info(r[1]).frames == 800                         # a variation keeps the clip's length
    r = client.predict(up, 0.05, "square", 64, 1, "euler", 4, 1.0, 0, api_name="/continue")
    assert sf.info(r[1]).frames == 800 + 400                   # continued by 0.05 s
    cont, _ = sf.read(r[1], dtype="float32")
    prompt, _ = sf.read(tmp_path / "prompt.wav", dtype="float32")
    np.testing.assert_allclose(cont[:800], prompt, atol=2e-3)   # the prompt is kept
    assert json.loads(r[3])["task"] == "continue"


def test_two_concurrent_requests_queue_on_the_model(server, client):
    from gradio_client import Client

    deps = [f for f in server.fns.values() if f.api_name in ("generate", "vary", "continue")]
    assert len(deps) == 3 and {f.concurrency_limit for f in deps} == {1} and len({f.concurrency_id for f in deps}) == 1
    pipe = server.audiodiff_pipeline
    active, peak, real = [0], [0], pipe.generate
    lock = threading.Lock()

    def counted(*a, **k):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.3)
            return real(*a, **k)
        finally:
            with lock:
                active[0] -= 1

    pipe.generate = counted
    try:
        other = Client(server.local_url, verbose=False, analytics_enabled=False)
        jobs = [client.submit("sine", 60, 0.125, 1, "euler", 3, 1.0, 11, api_name="/generate"),
                other.submit("square", 70, 0.125, 1, "euler", 3, 1.0, 22, api_name="/generate")]
        rows = [json.loads(j.result(timeout=60)[3]) for j in jobs]
    finally:
        pipe.generate = real
    assert [(r["timbre"], r["pitch"], r["seed"]) for r in rows] == [("sine", 60, 11), ("square", 70, 22)]
    assert peak[0] == 1                                           # one at a time on the model


def test_progress_of_the_sampler_reaches_the_client(client):
    """gr.Progress(track_tqdm=True) forwards the sampler's step counter while a request runs."""
    job = client.submit("sine", 62, 0.125, 2, "euler", 100, 1.0, 0, api_name="/generate")
    seen = set()
    while not job.done():
        for p in job.status().progress_data or []:
            seen.add((p.unit, p.length))
        time.sleep(0.02)
    assert json.loads(job.result()[3])["steps"] == 100
    assert ("steps", 100) in seen, seen


# ---------------------------------------------------------------------------------------------- direct calls
def test_pitch_only_page_and_direct_call(guard, runs, tmp_path):
    gr = _need("gradio")
    from audiodiff import Pipeline
    from audiodiff.serve import build_app

    pipe = Pipeline.from_pretrained(runs["pitch"], device="cpu")
    demo = build_app(pipe, run="runs/pitch", out=tmp_path)
    comps = {c.elem_id: c for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    assert comps["label"].visible is False                        # no class labels for this run
    lo, hi = pipe.meta["pitch_range"]
    assert (comps["pitch"].minimum, comps["pitch"].maximum) == (lo, hi) and comps["pitch"].visible
    fn = next(f for f in demo.fns.values() if f.api_name == "generate").fn
    progress = inspect.signature(fn).parameters["progress"].default
    assert isinstance(progress, gr.Progress) and progress.track_tqdm     # the sampler's steps show in the page
    out = fn(None, 64, 0.1, 1, "euler", 2, 1.0, 5, progress=lambda *a, **k: None)
    assert out[0].startswith("1 clip(s), generate,") and str(tmp_path) in out[0]
    row = json.loads(out[4])                                # status, then slot 0: column, audio, image, settings
    assert row["pitch"] == 64 and row["seed"] == 5 and row["run"]
    data, sr = sf.read(out[2])
    assert sr == 8000 and data.shape == (800,)
    with pytest.raises(gr.Error) as e:
        fn(None, 64, 0.1, 9, "euler", 2, 1.0, 5, progress=lambda *a, **k: None)
    assert e.value.message == "count=9 is not allowed; allowed: an integer 1..4"
    with pytest.raises(gr.Error) as e:
        fn(None, 64, 0.1, 1, "bogus", 2, 1.0, 5, progress=lambda *a, **k: None)
    assert e.value.message == _pipeline_message(pipe, n=1, pitch=64, sampler="bogus")


# ---------------------------------------------------------------------------------------------- command line
@pytest.mark.parametrize("args, match", [
    (["port=7860"], r"^serve: run= is required .*allowed keys: run, port, host, device, step, out$"),
    (["run=x", "colour=red"], r"^serve: unknown key 'colour'; allowed keys: run, port, host"),
    (["run=x", "port=http"], r"^serve: port='http' is not allowed; allowed: an integer 0\.\.65535$"),
    (["run=x", "port=70000"], r"^serve: port='70000' is not allowed"),
    (["run=x", "step=last"], r"^serve: step='last' is not allowed; allowed: a checkpoint step"),
    (["run=x", "8080"], r"^serve: arguments must be key=value; got '8080'"),
    (["run=x", "run=y"], r"^serve: run= given twice"),
])
def test_cmd_serve_rejects_bad_arguments(args, match):
    from audiodiff.serve import cmd_serve

    with pytest.raises(UsageError, match=match) as e:
        cmd_serve(args)
    assert "\n" not in str(e.value)


def test_help_names_keys_defaults_and_an_example():
    from audiodiff.serve import HELP

    for text in ("run=", "port=7860", "host=127.0.0.1", "device", "step", "out", "audiodiff[web]",
                 "Example: audiodiff serve run=runs/tones"):
        assert text in HELP


def test_missing_gradio_says_to_install_the_extra(monkeypatch):
    from audiodiff import serve

    monkeypatch.setitem(sys.modules, "gradio", None)          # `import gradio` now raises ImportError
    with pytest.raises(AudiodiffError) as e:
        serve.cmd_serve(["run=runs/tones"])
    assert not isinstance(e.value, UsageError)
    assert "pip install 'audiodiff[web]'" in str(e.value) and "\n" not in str(e.value)


def test_command_line_prints_one_line_and_exits_2(capsys):
    from audiodiff.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "run=runs/tones", "colour=red"])
    assert e.value.code == 2
    assert capsys.readouterr().err == ("audiodiff serve: error: unknown key 'colour'; "
                                       "allowed keys: run, port, host, device, step, out\n")
