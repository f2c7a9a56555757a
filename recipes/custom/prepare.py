"""Manifest for a folder of your own audio (any soundfile format, searched recursively).

    python recipes/custom/prepare.py <folder> <out manifest.jsonl>
Unreadable, empty or too-short files are listed with their reason and left out.
"""
import sys

from audiodiff.data.manifest import build_manifest

print(build_manifest(sys.argv[1], out=sys.argv[2]))
