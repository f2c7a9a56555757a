"""LoRA adapters: moved to :mod:`audiodiff.models.lora` (module code that training and the run format share).

This name stays so that existing imports keep working.
"""
from ..models.lora import LoRA, apply_lora, lora_parameters, merge_lora

__all__ = ["LoRA", "apply_lora", "merge_lora", "lora_parameters"]
