"""The condition contract (audiodiff/conditions.py): made by the data, stored in the run's meta as the fields every
run has written, read back from runs of any format, and read by the network builder, the pipeline and the judge."""
import json
import re
from pathlib import Path

import pytest
import torch

from audiodiff import models
from audiodiff.conditions import (
    CONDITION_KEYS, NETWORK_KEYS, ConditionError, ConditionSpec, Vocabulary, VocabularyError, network_inputs,
)
from audiodiff.data import build_dataset
from audiodiff.errors import UsageError
from audiodiff.evaluation.judge import judge_vocabulary
from audiodiff.mel import MelSpec
from audiodiff.representations import Mel, Waveform
from audiodiff.runs.checkpoint import load_checkpoint
from audiodiff.training import loop
from tests.helpers import TINY_UNET1D, tiny_cfg, tiny_mel_cfg

OLD_RUN = Path(__file__).resolve().parent / "fixtures" / "run_v0_diffusion"  # format 0: no format_version
ENTRIES = [{"path": f"/d/{i}.wav", "duration": 1.0, "sample_rate": 8000, "timbre": t, "pitch": p}
           for i, (t, p) in enumerate([("snare", 60.2), ("kick", 64), ("tom", 59.6), ("kick", 61)])]


def test_the_data_makes_it_and_it_round_trips_through_the_meta_fields():
    spec = ConditionSpec.from_entries(ENTRIES, {"labels": "timbre", "pitch": "pitch"})
    assert spec.fields == {"labels": "timbre", "pitch": "pitch"}
    assert spec.vocab == ("kick", "snare", "tom") and spec.pitch_range == (60, 64)  # sorted ids; rounded notes
    stored = json.loads(json.dumps(spec.to_dict()))  # what meta.json holds
    assert stored == {"conditions": {"labels": "timbre", "pitch": "pitch"}, "vocab": ["kick", "snare", "tom"],
                      "pitch_range": [60, 64]}
    assert ConditionSpec.from_meta(stored) == spec
    # a fine-tune's base vocabulary keeps its ids, in its order
    ordered = ConditionSpec.from_entries(ENTRIES, {"labels": "timbre"}, vocab=["tom", "kick", "snare"])
    assert ordered.vocab == ("tom", "kick", "snare") and ordered.vocabulary.encode("kick") == 1
    assert ordered.pitch_range is None and ConditionSpec.from_meta(ordered.to_dict()) == ordered


def test_a_run_written_before_the_contract_is_read_from_its_old_fields():
    ck = load_checkpoint(OLD_RUN, train_state=False)
    assert "format_version" not in ck["meta"]
    spec = ConditionSpec.from_meta(ck["meta"])
    assert spec == ConditionSpec({"pitch": "pitch"}, None, (60, 72))
    assert spec.to_dict() == {k: ck["meta"][k] for k in ("conditions", "vocab", "pitch_range")}
    assert spec.net_kwargs() == {"pitch": True}
    assert models.from_data(ck["meta"]["model"], spec) == ck["meta"]["model"]  # the network it was built with
    assert ConditionSpec.from_meta({}) == ConditionSpec()  # a meta without the fields: unconditional
    assert ConditionSpec().allowed() == "none (this model is unconditional)"


def test_build_dataset_info_holds_the_contract(tmp_path):
    info = build_dataset(tiny_cfg(tmp_path / "run")["data"])["info"]
    spec = ConditionSpec.from_meta(info)
    assert spec == ConditionSpec({"pitch": "pitch"}, None, (60, 72)) and info["num_classes"] is None


def test_an_unknown_label_names_it_and_the_allowed_ones():
    spec = ConditionSpec.from_entries(ENTRIES, {"labels": "timbre"})
    with pytest.raises(VocabularyError, match=re.escape("unknown timbre 'clap'; allowed values: "
                                                        "['kick', 'snare', 'tom']")):
        spec.vocabulary.encode("clap")
    with pytest.raises(VocabularyError) as e:
        spec.request(["clap", "kick"], 2)
    assert str(e.value) == "labels ['clap'] are not in the model's vocabulary; allowed: ['kick', 'snare', 'tom']"
    assert isinstance(e.value, UsageError) and isinstance(e.value, KeyError)
    digits = ConditionSpec({"labels": "digit"}, list(range(10)))
    with pytest.raises(VocabularyError, match=re.escape("labels [3.5] are not in the model's vocabulary; allowed: "
                                                        "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]")):
        digits.request([3.5], 1)
    assert digits.request(["3"], 2)[0]["labels"].tolist() == [3, 3]  # the text "3" is the label 3; one for all


def test_a_label_is_what_the_user_wrote():
    """Folder labels are strings, a digit model's labels integers: the same text is the same class, never two."""
    digits = Vocabulary(range(10), name="label")
    assert digits.encode("3") == digits.encode(3) == 3 and "3" in digits and digits.canonical("3") == 3
    named = Vocabulary(["10", "3", "7"], name="label")
    assert named.values == ["10", "3", "7"] and named.ids([3, "7", 10]) == [1, 2, 0]
    assert " 3" not in named and 3.0 not in named and True not in Vocabulary([0, 1])
    with pytest.raises(VocabularyError, match=r"the label 3 is written both as an integer \(3\) and as a string "
                                              r"\('3'\), which would make two classes of one"):
        Vocabulary([3, "3", 7], name="label")
    with pytest.raises(VocabularyError):
        ConditionSpec.from_entries([{"path": "a", "label": 3}, {"path": "b", "label": "3"}], {"labels": "label"})
    spec = ConditionSpec({"labels": "label"}, ["no", "yes"])
    assert spec.request(["yes"], 3)[0]["labels"].tolist() == [1, 1, 1]  # a one-element list is one label for all
    with pytest.raises(ConditionError, match="got 2 labels for n=3; give one per item or a single one"):
        spec.request(["yes", "no"], 3)


def test_contracts_that_do_not_hold_together_are_refused():
    with pytest.raises(ConditionError, match=r"unknown condition key\(s\) \['speaker'\]; allowed: \['labels', 'pitch'\]"):
        ConditionSpec({"speaker": "spk"})
    with pytest.raises(ConditionError, match="a vocabulary is given exactly when 'labels' is a condition"):
        ConditionSpec({"labels": "timbre"})
    with pytest.raises(ConditionError, match="a vocabulary is given exactly when 'labels' is a condition"):
        ConditionSpec({}, ["a"])
    with pytest.raises(VocabularyError, match="values repeat"):
        ConditionSpec({"labels": "timbre"}, ["a", "a"])
    with pytest.raises(ConditionError, match=r"pitch_range=\[72, 60\] is not allowed"):
        ConditionSpec({"pitch": "pitch"}, None, [72, 60])
    with pytest.raises(ConditionError, match="condition 'pitch' reads field 'note', missing in 4 entries"):
        ConditionSpec.from_entries(ENTRIES, {"pitch": "note"})
    assert CONDITION_KEYS == ("labels", "pitch") and NETWORK_KEYS == ("labels", "pitch", "vector", "local")


def test_net_kwargs_and_the_network_builder():
    both = ConditionSpec({"labels": "timbre", "pitch": "pitch"}, ["a", "b", "c"], (60, 72))
    assert both.net_kwargs() == {"num_classes": 3, "pitch": True} and ConditionSpec().net_kwargs() == {}
    for given in (0, None, "auto"):
        assert models.from_data({"name": "unet1d", "num_classes": given}, both)["num_classes"] == 3
    assert models.from_data({"name": "unet1d", "num_classes": 12}, both)["num_classes"] == 12  # explicit: kept
    assert models.from_data({"name": "unet1d", "num_classes": "auto"}, ConditionSpec())["num_classes"] == 0
    assert models.from_data({"name": "unet1d"}, ConditionSpec()) == {"name": "unet1d"}
    cfg = models.from_data(TINY_UNET1D, both)
    net = models.build(cfg)
    y = net(torch.zeros(2, 1, 64), torch.zeros(2), labels=torch.tensor([0, 2]), pitch=torch.tensor([60.0, 61.0]))
    assert y.shape == (2, 1, 64)


def test_mel_bands_auto_takes_the_data_mels_and_is_an_error_on_waveforms():
    mel = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=24)
    cfg = models.from_data({**TINY_UNET1D, "mel_bands": "auto"}, ConditionSpec(), Mel(mel))
    assert cfg["mel_bands"] == 24
    assert models.build(cfg)(torch.zeros(1, 1, 24, 16), torch.zeros(1)).shape == (1, 1, 24, 16)
    with pytest.raises(UsageError) as e:
        models.from_data({**TINY_UNET1D, "mel_bands": "auto"}, ConditionSpec(), Waveform(8000))
    assert "model.mel_bands=auto" in str(e.value) and "waveform" in str(e.value) and "\n" not in str(e.value)


def test_a_mel_run_with_auto_settings_stores_the_resolved_network(tmp_path):
    cfg = tiny_mel_cfg(tmp_path / "run", steps=1)
    cfg["model"] = {**TINY_UNET1D, "pitch": False, "mel_bands": "auto", "num_classes": "auto"}
    cfg["train"]["ckpt_every"] = 1
    meta = load_checkpoint(loop.train(cfg))["meta"]
    assert meta["model"]["mel_bands"] == 32 and meta["model"]["num_classes"] == 0
    assert ConditionSpec.from_meta(meta) == ConditionSpec({}, None, (60, 64))


def test_the_request_and_batch_conversions():
    pitch_only = ConditionSpec({"pitch": "pitch"}, None, (60, 72))
    cond, items = pitch_only.request([60, 72], 2)  # the short form: a pitch model's labels are its pitches
    assert cond["pitch"].tolist() == [60.0, 72.0] and items == [{"pitch": 60}, {"pitch": 72}]
    with pytest.raises(ConditionError, match=r"pitch labels \[73\] are outside the model's range; allowed: MIDI "
                                             r"pitches 60\.\.72"):
        pitch_only.request(73, 1)
    both = ConditionSpec({"labels": "timbre", "pitch": "pitch"}, ["sine", "square"], (60, 72))
    cond, items = both.request("square", 2, pitch=[60, 64])
    assert cond["labels"].tolist() == [1, 1] and items[1] == {"timbre": "square", "pitch": 64}
    with pytest.raises(ConditionError, match="got 3 pitches for n=2"):
        both.request("sine", 2, pitch=[60, 61, 62])
    assert both.allowed() == "labels in ['sine', 'square']; MIDI pitches 60..72"
    batch = {"audio": torch.zeros(2, 1, 8), "labels": torch.tensor([0, 1]), "pitch": None, "local": torch.ones(2)}
    assert set(network_inputs(batch)) == {"labels", "local"}


def test_the_judge_takes_its_vocabulary_from_the_contract():
    vocab = judge_vocabulary(ENTRIES, "timbre")
    assert isinstance(vocab, Vocabulary)
    assert vocab.values == list(ConditionSpec.from_entries(ENTRIES, {"labels": "timbre"}).vocab)
