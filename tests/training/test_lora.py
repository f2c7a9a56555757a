"""LoRA adapters: start as the identity update, train only adapters, merge exactly."""
import pytest
import torch

from audiodiff import models
from audiodiff.models.lora import LoRA, apply_lora, lora_parameters, merge_lora
from tests.helpers import TINY_UNET1D


def test_lora_starts_equal_trains_adapters_and_merges_exactly():
    net = models.build(TINY_UNET1D).eval()
    x, c = torch.randn(2, 1, 64), torch.zeros(2)
    pitch = torch.tensor([60.0, 64.0])
    before = net(x, c, pitch=pitch)
    names = apply_lora(net, rank=2, alpha=4)
    assert names and all(isinstance(net.get_submodule(n), LoRA) for n in names)
    torch.testing.assert_close(net(x, c, pitch=pitch), before)  # B starts at zero
    trainable = lora_parameters(net)
    assert trainable and all(".down." in n or ".up." in n for n, p in net.named_parameters() if p.requires_grad)
    with torch.no_grad():
        for p in trainable:
            p.normal_(0, 0.05)
    adapted = net(x, c, pitch=pitch)
    assert not torch.allclose(adapted, before)
    merge_lora(net)
    assert not any(isinstance(m, LoRA) for m in net.modules())
    torch.testing.assert_close(net(x, c, pitch=pitch), adapted, rtol=1e-4, atol=1e-5)


def test_lora_targets_matching_nothing_raise():
    net = models.build(TINY_UNET1D)
    with pytest.raises(ValueError, match="matched no Linear/Conv layer"):
        apply_lora(net, targets="nothing_here")
