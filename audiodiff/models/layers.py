"""The U-Nets' shared code under its old import path: the blocks (:mod:`.blocks`) and the U-Net body (:mod:`.body`)."""
from .blocks import (  # noqa: F401
    NORMS, ConditionEmbedding, Downsample, GroupNorm32, LocalEncoder, PositionNorm, ResBlock, SelfAttention, Upsample,
    _tuple, batch_noise, checkpoint_call, conv_nd, conv_transpose_nd, log_frequencies, make_norm, no_autocast,
    norm_groups, sinusoidal_features, zero_)
from .body import UNetBody, UNetShell  # noqa: F401
