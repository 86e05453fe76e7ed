"""The TAESD family's encoder and decoder networks (madebyollin/taesd), including the FLUX.2 variant.

Written here because diffusers' ``AutoencoderTiny`` cannot express TAEF2: its three lowest-resolution blocks
(the last three of the encoder, the first three of the decoder) add a "mid-block group-norm" branch,
``x + pool(x)`` with ``pool = 1x1 conv (64->256) -> GroupNorm(4 groups) -> ReLU -> 1x1 conv (256->64)``,
before the block's residual convolutions. Everything else is plain TAESD: 64-channel residual blocks of three
3x3 convolutions, three stride-2 convolutions down (8x), three nearest-neighbour upsamplings back.

The modules are ``nn.Sequential`` with the released layer order, so the released ``.pth`` state dicts load
as they are (keys like ``11.conv.0.weight``, ``11.pool.1.bias``). Ranges: the encoder takes RGB in
``[0, 1]``; the decoder soft-clamps its latent with ``tanh(z/3)*3`` and returns RGB in nominal ``[0, 1]``
(unclamped; the released tools clamp it to ``[0, 1]`` only when saving pictures).
"""

from __future__ import annotations

import torch
from torch import nn

WIDTH = 64  # channels of every hidden layer
STAGES = 3  # each halves (encoder) or doubles (decoder) the resolution: 2**3 = 8x
BLOCKS_PER_STAGE = 3
GN_EXPANSION = 4  # the group-norm branch widens 64 -> 256 channels
GN_GROUPS = 4


def conv3x3(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """A 3x3 convolution that keeps the size (or halves it with ``stride=2``)."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """``tanh(z / 3) * 3``: keeps latents inside ``(-3, 3)``, near-identity for ``|z| < 1``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z / 3.0) * 3.0


class GroupNormPool(nn.Sequential):
    """The FLUX.2 variant's branch: 1x1 expand, GroupNorm, ReLU, 1x1 project; ``(B, c, h, w)`` in and out.

    GroupNorm pools statistics over whole channel groups of the image, giving the lowest-resolution blocks a
    view of global colour/brightness that 3x3 convolutions lack.
    """

    def __init__(self, channels: int) -> None:
        wide = channels * GN_EXPANSION
        super().__init__(
            nn.Conv2d(channels, wide, kernel_size=1, bias=False),
            nn.GroupNorm(GN_GROUPS, wide),
            nn.ReLU(),
            nn.Conv2d(wide, channels, kernel_size=1, bias=False),
        )


class TinyBlock(nn.Module):
    """Residual block ``relu(x' + conv(x'))`` with ``x' = x (+ pool(x))``; shape ``(B, c, h, w)`` kept."""

    def __init__(self, channels: int, midblock_gn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            conv3x3(channels, channels), nn.ReLU(), conv3x3(channels, channels), nn.ReLU(), conv3x3(channels, channels)
        )
        self.pool = GroupNormPool(channels) if midblock_gn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


def tiny_encoder(latent_channels: int, midblock_gn: bool = False) -> nn.Sequential:
    """RGB ``(B, 3, H, W)`` in ``[0, 1]`` -> latents ``(B, latent_channels, H/8, W/8)``.

    Args:
        latent_channels: 4 (TAESD, TAESDXL), 16 (TAEF1, TAESD3), 32 (TAEF2).
        midblock_gn: add the group-norm branch to the last (lowest-resolution) stage's blocks (TAEF2).
    """
    layers: list[nn.Module] = [conv3x3(3, WIDTH), TinyBlock(WIDTH)]
    for stage in range(STAGES):
        gn = midblock_gn and stage == STAGES - 1
        layers.append(conv3x3(WIDTH, WIDTH, stride=2, bias=False))
        layers.extend(TinyBlock(WIDTH, gn) for _ in range(BLOCKS_PER_STAGE))
    layers.append(conv3x3(WIDTH, latent_channels))
    return nn.Sequential(*layers)


def tiny_decoder(latent_channels: int, midblock_gn: bool = False) -> nn.Sequential:
    """Latents ``(B, latent_channels, h, w)`` -> RGB ``(B, 3, 8h, 8w)``, nominal ``[0, 1]``, unclamped.

    Args:
        latent_channels: as for :func:`tiny_encoder`.
        midblock_gn: add the group-norm branch to the first (lowest-resolution) stage's blocks (TAEF2).
    """
    layers: list[nn.Module] = [SoftClamp(), conv3x3(latent_channels, WIDTH), nn.ReLU()]
    for stage in range(STAGES):
        gn = midblock_gn and stage == 0
        layers.extend(TinyBlock(WIDTH, gn) for _ in range(BLOCKS_PER_STAGE))
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(WIDTH, WIDTH, bias=False)]
    layers += [TinyBlock(WIDTH), conv3x3(WIDTH, 3)]
    return nn.Sequential(*layers)
