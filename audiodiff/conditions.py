"""The condition contract: which conditions a model takes, its label vocabulary and its pitch range.

A :class:`ConditionSpec` is to conditioning what :class:`audiodiff.mel.MelSpec` is to mel spectrograms: the
data makes it (:meth:`ConditionSpec.from_entries`, or the built-in notes), the run stores it, and everything
that turns a value into a network input reads it instead of keeping its own copy:

- the network builder takes `num_classes` and `pitch` from :meth:`~ConditionSpec.net_kwargs`
  (:func:`audiodiff.models.from_data`);
- a dataset item's conditions come from :func:`item_conditions`, and a training batch's network keywords
  from :func:`network_inputs`;
- the pipeline turns a request (`labels=`, `pitch=`) into network keywords with :meth:`~ConditionSpec.request`;
- the judge's label vocabulary is the same :class:`Vocabulary`, made from its manifest the same way.

Stored in a run's `meta.json` as the three fields every run has written since the first one (`conditions`,
`vocab`, `pitch_range`; :meth:`~ConditionSpec.to_dict`), so a run of any format version is read by
:meth:`~ConditionSpec.from_meta` as it was written, and there is no second copy to drift: the meta's
`format_version` versions it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import UsageError

__all__ = ["CONDITION_KEYS", "NETWORK_KEYS", "FILE_FIELDS", "MIDI_RANGE", "ConditionError", "VocabularyError",
           "Vocabulary", "ConditionSpec", "check_fields", "require_fields", "pitch_value", "item_conditions", "network_inputs",
           "label_fields_of", "label_key", "label_text"]

# Conditions a dataset fills from a data field: the network keyword -> the manifest / note field it reads.
CONDITION_KEYS = ("labels", "pitch")
# Every condition keyword a network's forward takes (CONTRIBUTING.md "Networks"); a batch passes these on.
NETWORK_KEYS = ("labels", "pitch", "vector", "local")
# Manifest fields that describe the file rather than its content: never a condition.
FILE_FIELDS = ("path", "duration", "sample_rate", "channels")
MIDI_RANGE = (0, 127)  # the pitches a pitch model takes when its run stored no range


class ConditionError(UsageError):
    """A condition setting or request the contract does not allow; the message names it and the allowed values."""


class VocabularyError(ConditionError, KeyError):
    """A label value is not in the vocabulary; the message lists the allowed values."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


def label_fields_of(entries: Sequence[dict]) -> list[str]:
    """Names of the fields of `entries` that can be conditions (every field but :data:`FILE_FIELDS`), first seen first."""
    names: dict[str, None] = {}
    for e in entries:
        for k in e:
            if k not in FILE_FIELDS:
                names[k] = None
    return list(names)


def label_key(value) -> tuple:
    """`(category, value)` under which a label matches a vocabulary entry: integers (numpy's too) match integers,
    strings match strings; a bool or a float never matches an integer label."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, numbers.Integral):
        return ("int", int(value))
    if isinstance(value, str):
        return ("str", str(value))
    return (type(value).__name__, value)


def _kind(v) -> str:
    """Type category of a label value for messages: integers, strings, floats or <type>s."""
    if isinstance(v, bool):
        return "booleans"
    if isinstance(v, numbers.Integral):
        return "integers"
    if isinstance(v, str):
        return "strings"
    if isinstance(v, numbers.Real):
        return "floats"
    return f"{type(v).__name__}s"


def _show(values: list) -> str:
    """A vocabulary in a message: `[0..9]` for a run of consecutive integers, else the values (at most 50)."""
    ints = [v for v in values if label_key(v)[0] == "int"]
    if len(ints) == len(values) and len(ints) > 3 and ints == list(range(ints[0], ints[0] + len(ints))):
        return f"[{ints[0]}..{ints[-1]}]"
    return str(values if len(values) <= 50 else values[:50] + ["..."])


# --------------------------------------------------------------------------------------------- vocabulary
def label_text(value) -> str | None:
    """The text a label is written as: an integer's digits, a string itself; None for other values (a float or a
    bool is never a class label's text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, str):
        return value
    return None


class Vocabulary:
    """Maps label values to contiguous ids `0..len-1`: the sorted unique values (ints before strings).

    A label is what the user wrote: a value matches an entry of its own type (:func:`label_key`), and otherwise
    the entry written the same way, so the folder label "3" (a string) is the integer label 3 of a digit model, and
    `labels=[3]` picks the class "3" of a model trained on folder names. A vocabulary that holds one label written
    both ways (3 and "3") is refused: it would be two classes for one.

    Args:
        values: label values (ints or strings, duplicates allowed).
        name: the data field the values come from (used in messages and saved with the vocabulary).
    """

    def __init__(self, values, name: str = "label"):
        uniq = set()
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise VocabularyError(f"vocabulary '{name}': values must be int or str; got {v!r} "
                                      f"({type(v).__name__})")
            uniq.add(v)
        if not uniq:
            raise VocabularyError(f"vocabulary '{name}': no values")
        texts: dict[str, list] = {}
        for v in uniq:
            texts.setdefault(label_text(v), []).append(v)
        twice = [sorted(vs, key=lambda v: isinstance(v, str)) for vs in texts.values() if len(vs) > 1]
        if twice:
            a, b = twice[0]
            raise VocabularyError(f"vocabulary '{name}': the label {a!r} is written both as an integer ({a!r}) and as a "
                                  f"string ({b!r}), which would make two classes of one; write field '{name}' one "
                                  "way in every entry")
        self.name = name
        self._set(sorted(uniq, key=lambda v: (isinstance(v, str), v)))

    def _set(self, values: list) -> None:
        self.values = list(values)
        self._ids = {label_key(v): i for i, v in enumerate(self.values)}
        self._texts = {label_text(v): i for i, v in enumerate(self.values)}

    def _id(self, value) -> int | None:
        """The id of `value`: its own type's entry, else the entry written the same way (see the class doc)."""
        i = self._ids.get(label_key(value))
        if i is None:
            text = label_text(value)
            i = self._texts.get(text) if text is not None else None
        return i

    @classmethod
    def ordered(cls, values: Sequence, name: str = "label") -> "Vocabulary":
        """A vocabulary whose ids follow `values` as given (a fine-tune keeps its base run's ids)."""
        vocab = cls(values, name=name)
        if len(vocab.values) != len(values):
            raise VocabularyError(f"vocabulary '{name}': values repeat in {list(values)}")
        vocab._set(values)
        return vocab

    @classmethod
    def from_entries(cls, entries: Sequence[dict], field: str) -> "Vocabulary":
        """Vocabulary of `field` over manifest entries; raises naming an entry that lacks the field."""
        missing = [e.get("path", "?") for e in entries if field not in e]
        if missing:
            raise VocabularyError(f"{len(missing)} manifest entries lack label field '{field}' "
                                  f"(e.g. {missing[0]}); fields present: {label_fields_of(entries)}")
        return cls((e[field] for e in entries), name=field)

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, value) -> bool:
        return self._id(value) is not None

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.values == other.values and self.name == other.name

    def __repr__(self) -> str:
        return f"Vocabulary({self.name!r}, {self.values!r})"

    def encode(self, value) -> int:
        """Id of `value`; raises :class:`VocabularyError` listing the allowed values for an unknown one."""
        if value not in self:
            shown = self.values if len(self.values) <= 50 else self.values[:50] + ["..."]
            raise VocabularyError(f"unknown {self.name} {value!r}; allowed values: {shown}")
        return self._id(value)

    def canonical(self, value):
        """The vocabulary's own value for `value` (the integer 3 for the string "3" in a digit vocabulary)."""
        return self.values[self.encode(value)]

    def decode(self, index: int):
        """Label value of id `index` (0 <= index < len)."""
        if not 0 <= int(index) < len(self.values):
            raise VocabularyError(f"{self.name} id {index} out of range; allowed: 0..{len(self.values) - 1}")
        return self.values[int(index)]

    def ids(self, values: Sequence) -> list[int]:
        """Ids of requested labels; one :class:`VocabularyError` for all unknown ones, saying what to pass when
        only the type differs (`'3'` or `3.0` for the integer label 3)."""
        bad = [v for v in values if v not in self]
        if bad:
            raise VocabularyError(self._mismatch(bad))
        return [self._id(v) for v in values]

    def _mismatch(self, bad: list) -> str:
        fixes = []
        for v in bad:
            fix = None
            if isinstance(v, str) and v.strip().lstrip("+-").isdigit() and int(v) in self:
                fix = self.canonical(int(v))
            elif isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and float(v) == int(v):
                if int(v) in self:
                    fix = self.canonical(int(v))
            fixes.append(fix)
        if all(f is not None for f in fixes):
            kinds = {_kind(v) for v in bad}
            vkinds = {_kind(f) for f in fixes}
            what = kinds.pop() if len(kinds) == 1 else "of another type"
            held = vkinds.pop() if len(vkinds) == 1 else "other types"
            shown = fixes[0] if len(fixes) == 1 else fixes
            return f"labels {bad!r} are {what} but the vocabulary holds {held} {_show(self.values)}: pass {shown!r}"
        return f"labels {bad!r} are not in the model's vocabulary; allowed: {self.values}"

    def to_dict(self) -> dict:
        return {"name": self.name, "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Vocabulary":
        if "values" not in d:
            raise VocabularyError(f"vocabulary JSON needs 'values' (and 'name'); got keys {sorted(d)}")
        return cls(d["values"], name=d.get("name", "label"))

    def save(self, path) -> Path:
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path) -> "Vocabulary":
        import json

        return cls.from_dict(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------------------------- values
def check_fields(fields: Mapping[str, str] | None) -> dict[str, str]:
    """`fields` (network keyword -> data field) as a dict; raises naming a keyword outside :data:`CONDITION_KEYS`."""
    fields = dict(fields or {})
    bad = [k for k in fields if k not in CONDITION_KEYS]
    if bad:
        raise ConditionError(f"unknown condition key(s) {bad}; allowed: {list(CONDITION_KEYS)} "
                             f"(mapped to manifest fields, e.g. {{'labels': 'label', 'pitch': 'pitch'}})")
    return fields


def require_fields(entries: Sequence[dict], fields: Mapping[str, str]) -> None:
    """Raise :class:`ConditionError` naming the first condition whose field some of `entries` lack."""
    for key, fld in fields.items():
        missing = [e.get("path", "?") for e in entries if fld not in e]
        if missing:
            raise ConditionError(f"condition {key!r} reads field {fld!r}, missing in {len(missing)} entries "
                                 f"(e.g. {missing[0]}); fields present: {label_fields_of(entries)}")


def pitch_value(value, where) -> float:
    """A pitch as the network takes it (float MIDI); raises naming `where` for a non-number, NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConditionError(f"{where}: pitch must be a finite MIDI number; got {value!r}")
    return float(value)


def item_conditions(fields: Mapping[str, str], vocab: Vocabulary | None, values: Mapping, where=None) -> dict:
    """A dataset item's conditions `{"labels": id, "pitch": float}` from its data `values` (an entry or a note)."""
    out: dict[str, Any] = {}
    for key, fld in fields.items():
        out[key] = vocab.encode(values[fld]) if key == "labels" else pitch_value(values[fld], where)
    return out


def network_inputs(batch: Mapping) -> dict:
    """The entries of a batch that a network takes as condition keywords (:data:`NETWORK_KEYS`, not None)."""
    return {k: v for k, v in batch.items() if k in NETWORK_KEYS and v is not None}


# --------------------------------------------------------------------------------------------- the contract
@dataclass(frozen=True)
class ConditionSpec:
    """What a model is conditioned on: the condition fields, the label vocabulary and the pitch range.

    Args:
        fields: network keyword -> the data field it reads, e.g. `{"labels": "timbre", "pitch": "pitch"}`
            (keys among :data:`CONDITION_KEYS`; empty for an unconditional model).
        vocab: the label values in id order (index k is label id k); given exactly when `labels` is a field.
        pitch_range: `(lo, hi)` MIDI range of the data's notes (requests for `pitch` must lie in it), or None.
    """

    fields: Mapping[str, str] = field(default_factory=dict)
    vocab: tuple | None = None
    pitch_range: tuple[int, int] | None = None

    def __post_init__(self):
        fields = check_fields(self.fields)
        for key, fld in fields.items():
            if not isinstance(fld, str) or not fld:
                raise ConditionError(f"conditions.{key}={fld!r} is not allowed; allowed: the name of a data field")
        object.__setattr__(self, "fields", fields)
        if ("labels" in fields) != (self.vocab is not None):
            raise ConditionError(f"a vocabulary is given exactly when 'labels' is a condition; got conditions "
                                 f"{fields} and vocab {self.vocab!r}")
        vocabulary = None
        if self.vocab is not None:
            vocabulary = Vocabulary.ordered(list(self.vocab), name=fields["labels"])
            object.__setattr__(self, "vocab", tuple(vocabulary.values))
        object.__setattr__(self, "_vocabulary", vocabulary)
        if self.pitch_range is not None:
            r = self.pitch_range
            if not isinstance(r, (list, tuple)) or len(r) != 2 or any(isinstance(p, bool) or not isinstance(p, int)
                                                                 for p in r) or r[0] > r[1]:
                raise ConditionError(f"pitch_range={r!r} is not allowed; allowed: [lo, hi], integers (MIDI), lo <= hi")
            object.__setattr__(self, "pitch_range", (int(r[0]), int(r[1])))

    # ------------------------------------------------------------------ made by the data
    @classmethod
    def from_entries(cls, entries: Sequence[dict], fields: Mapping[str, str] | None,
                     vocab: Sequence | None = None) -> "ConditionSpec":
        """The contract of a manifest's entries: the sorted vocabulary of the label field (or `vocab`, label values
        in id order, e.g. a fine-tune's base run's, which every label must be in) and the range of the pitches.

        Raises:
            VocabularyError: an entry lacks the label field, or `vocab` is not a list of distinct ints or strings.
            ConditionError: an unknown condition keyword, an entry without the pitch field, or a pitch that is
                not a finite number (each names the entry).
        """
        fields = check_fields(fields)
        vocabulary = None
        if "labels" in fields:
            fld = fields["labels"]
            # a dataset over these entries checks that each label is in a given vocabulary (naming the file)
            vocabulary = Vocabulary.from_entries(entries, fld) if vocab is None else Vocabulary.ordered(list(vocab), fld)
        pitch_range = None
        if "pitch" in fields:
            fld = fields["pitch"]
            require_fields(entries, {"pitch": fld})
            pitches = {int(round(pitch_value(e[fld], e.get("path", "?")))) for e in entries}
            pitch_range = (min(pitches), max(pitches))
        return cls(fields, None if vocabulary is None else vocabulary.values, pitch_range)

    # ------------------------------------------------------------------ stored in the run
    def to_dict(self) -> dict:
        """The run meta's fields: `{"conditions": fields, "vocab": [...] | None, "pitch_range": [lo, hi] | None}`."""
        return {"conditions": dict(self.fields), "vocab": None if self.vocab is None else list(self.vocab),
                "pitch_range": None if self.pitch_range is None else list(self.pitch_range)}

    @classmethod
    def from_meta(cls, meta: Mapping) -> "ConditionSpec":
        """The contract stored in a run's `meta.json` (any format version) or in :meth:`to_dict`'s output;
        other keys of `meta` are ignored, a missing field means none."""
        return cls(dict(meta.get("conditions") or {}), meta.get("vocab"), meta.get("pitch_range"))

    # ------------------------------------------------------------------ read by the network builder
    @property
    def vocabulary(self) -> Vocabulary | None:
        """The label :class:`Vocabulary` (ids in the stored order), or None without a `labels` condition."""
        return self._vocabulary

    @property
    def num_classes(self) -> int:
        return 0 if self.vocab is None else len(self.vocab)

    @property
    def pitches(self) -> tuple[int, int]:
        """The MIDI range a `pitch` request must lie in (:data:`MIDI_RANGE` when the run stored none)."""
        return self.pitch_range or MIDI_RANGE

    def net_kwargs(self) -> dict:
        """What a network needs to take these conditions: `num_classes` (labels) and `pitch=True` (pitch)."""
        out: dict[str, Any] = {}
        if "labels" in self.fields:
            out["num_classes"] = self.num_classes
        if "pitch" in self.fields:
            out["pitch"] = True
        return out

    # ------------------------------------------------------------------ read by the pipeline
    def allowed(self) -> str:
        """The conditions a request may give, in words (for messages)."""
        allowed = []
        if "labels" in self.fields:
            allowed.append(f"labels in {list(self.vocab)}")
        if "pitch" in self.fields:
            lo, hi = self.pitches
            allowed.append(f"MIDI pitches {lo}..{hi}")
        return "; ".join(allowed) or "none (this model is unconditional)"

    def request(self, labels, n: int, pitch=None, device=None) -> tuple[dict, list[dict]]:
        """Network keywords for a request of `n` items, and the per-item record of what was asked.

        A pitch-only model takes its pitches as `labels` (the short form); a model conditioned on both a class
        and a pitch takes class values as `labels` and MIDI pitches as `pitch`. One value stands for every item.

        Returns:
            `({"labels": (n,) long, "pitch": (n,) float}, [{<label field>: value, "pitch": p}, ...])`.
        Raises:
            ConditionError: a condition the model does not take, a label outside the vocabulary (a
                :class:`VocabularyError`), a pitch outside the range, or not one value per item.
        """
        import torch

        conds = self.fields
        if "pitch" in conds and "labels" not in conds and pitch is None:
            labels, pitch = None, labels
        cond, items = {}, [{} for _ in range(n)]
        if labels is not None:
            if "labels" not in conds:
                raise ConditionError(f"labels={labels} given but this model takes no class labels; "
                                     f"allowed: {self.allowed()}")
            labels = _per_item(labels, n, "labels")
            cond["labels"] = torch.tensor(self.vocabulary.ids(labels), device=device)
            for it, v in zip(items, labels):
                it[conds["labels"]] = v
        if pitch is not None:
            if "pitch" not in conds:
                raise ConditionError(f"pitch={pitch} given but this model takes no pitch; allowed: {self.allowed()}")
            pitch = _per_item(pitch, n, "labels" if "labels" not in conds else "pitches")
            lo, hi = self.pitches
            bad = [p for p in pitch if isinstance(p, bool) or not isinstance(p, numbers.Real)
                   or not math.isfinite(p) or not lo <= p <= hi]
            if bad:
                raise ConditionError(f"pitch labels {bad} are outside the model's range; allowed: MIDI pitches "
                                     f"{lo}..{hi}")
            cond["pitch"] = torch.tensor([float(p) for p in pitch], device=device)
            for it, p in zip(items, pitch):
                it["pitch"] = p
        return cond, items


def _per_item(values, n: int, what: str) -> list:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if len(values) == 1:  # one value stands for every item, as a list of one or alone
        values = values * n
    if len(values) != n:
        raise ConditionError(f"got {len(values)} {what} for n={n}; give one per item or a single one")
    return values
