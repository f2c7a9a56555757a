"""Manifest for the Free Spoken Digit Dataset: `recordings/<digit>_<speaker>_<take>.wav` -> label, speaker.

    python recipes/fsdd/prepare.py <fsdd folder> <out manifest.jsonl>
"""
import sys

from audiodiff.data.manifest import build_manifest

src, out = sys.argv[1], sys.argv[2]
report = build_manifest(src, out=out, label_from=r"(?P<label>\d)_(?P<speaker>[a-z]+)_\d+\.wav")
print(report)
