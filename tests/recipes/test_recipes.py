"""Recipes: every run.sh parses, every prepare.py builds its manifest from the shared recordings."""
import subprocess
import sys
from pathlib import Path

import pytest

from audiodiff.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p.parent.name for p in (ROOT / "recipes").glob("*/run.sh"))


def test_recipes_present():
    assert {"tones", "fsdd", "piano", "sax", "drums", "custom", "ljspeech"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_run_sh_parses(name):
    r = subprocess.run(["bash", "-n", str(ROOT / "recipes" / name / "run.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name,folder", [("fsdd", "fsdd"), ("piano", "piano"), ("drums", "drums")])
def test_prepare_builds_manifest(name, folder, shared_data, tmp_path):
    out = tmp_path / "manifest.jsonl"
    r = subprocess.run([sys.executable, str(ROOT / "recipes" / name / "prepare.py"), str(shared_data / folder),
                        str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    got = read_manifest(out)
    want = read_manifest(shared_data / folder / "manifest.jsonl")
    assert len(got) == len({e["path"] for e in want})
    if name == "fsdd":
        by_path = {e["path"]: e for e in want}
        assert all(str(e["label"]) == str(by_path[e["path"]]["label"]) for e in got)
