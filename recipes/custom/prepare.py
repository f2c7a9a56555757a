"""Write the manifest of a folder of your own audio and print its summary (same as `audiodiff prepare`).

    python recipes/custom/prepare.py <folder> <out manifest.jsonl>

Every WAV, FLAC, OGG, MP3, ... file in the folder and its sub-folders (any rate, mono or stereo, any case of
extension) is decoded. Left out, each listed with its reason: files that cannot be decoded, are empty,
truncated, hold NaN or infinite samples, are shorter than 0.05 s or are silent (peak below -60 dBFS).
When every file lies in a sub-folder of <folder> (at least two of them: my_wavs/yes/..., my_wavs/no/...),
the sub-folder names become the class labels (field `label`). For other settings (label_from=, labels=<table>,
silence_db=, min_duration=) use `audiodiff prepare source=<folder> ...` (see `audiodiff prepare --help`).
"""
import sys

from audiodiff.data.manifest import build_manifest

if len(sys.argv) != 3:
    sys.exit("usage: python recipes/custom/prepare.py <folder> <out manifest.jsonl>")
print(build_manifest(sys.argv[1], out=sys.argv[2]))
