"""Manifest for the piano recordings: the folder's own manifest.jsonl carries the labels; re-probe every file.

    python recipes/piano/prepare.py <piano folder> <out manifest.jsonl>
"""
import sys
from pathlib import Path

from audiodiff.data.manifest import build_manifest

src, out = Path(sys.argv[1]), sys.argv[2]
print(build_manifest(src / "manifest.jsonl", out=out))
