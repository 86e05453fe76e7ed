"""Velocity backbones, built from a kind and a JSON config, saved as diffusers-style folders (and ``espnet``: the
judge's segmentation network, :mod:`semflow.networks.espnet`).

Kinds: ``unet2d`` (diffusers' ``UNet2DModel``, a small default), ``unet2d-condition`` (Stable Diffusion's
``UNet2DConditionModel`` with a fixed null text embedding, from scratch or from a local SD1.5 ``unet/``) and
``spade`` (a SPADE generator with its discriminator, for ``model.method=spade``).

A backbone is any ``nn.Module`` called as ``net(sample, timestep)``. Register new kinds in
:data:`BACKBONES` with a builder (config -> module) and a loader (folder -> module); saving uses the
module's ``save_pretrained`` (diffusers' ``ModelMixin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from semflow.bounds import check_config_numbers, planned_tensors
from semflow.errors import SemflowInputError
from semflow.networks.spade import build_spade, load_spade
from semflow.networks.unet import build_unet2d, load_unet2d
from semflow.networks.unet_condition import build_unet2d_condition, load_unet2d_condition


@dataclass(frozen=True)
class Backbone:
    """How to build a backbone of one kind from its config and how to load it from a saved folder."""

    build: Callable[[dict[str, Any], int, int], nn.Module]
    load: Callable[[Path], nn.Module]


BACKBONES: dict[str, Backbone] = {
    "unet2d": Backbone(build=build_unet2d, load=load_unet2d),
    # SD1.5's UNet driven by a fixed null text embedding (the authors' backbone), see unet_condition.py.
    "unet2d-condition": Backbone(build=build_unet2d_condition, load=load_unet2d_condition),
    # A SPADE generator and its multi-scale discriminator (model.method=spade), see spade.py.
    "spade": Backbone(build=build_spade, load=load_spade),
}


def backbone(kind: str) -> Backbone:
    """The backbone registered under ``kind``; a clear error for unknown kinds."""
    try:
        return BACKBONES[kind]
    except KeyError:
        raise SemflowInputError(f"unknown network {kind!r}; expected one of {sorted(BACKBONES)}") from None


def build_network(kind: str, config: dict[str, Any], channels: int, out_channels: int | None = None) -> nn.Module:
    """A freshly initialised backbone taking ``channels`` channels and giving ``out_channels`` (default the same:
    a velocity field on latents with ``channels`` channels)."""
    out = channels if out_channels is None else out_channels
    check_config_numbers(config, "model.network_args")
    if "pretrained" not in config:  # a pretrained UNet's size is its weights file's
        planned_tensors(lambda: backbone(kind).build(config, channels, out), "model.network_args")
    return backbone(kind).build(config, channels, out)


def load_network(kind: str, directory: Path) -> nn.Module:
    """A backbone saved with ``save_pretrained`` in ``directory``, computing bit for bit as before saving."""
    return own_memory(backbone(kind).load(directory))


def _diffusers_config(network: nn.Module) -> Any:
    inner = getattr(network, "unet", network)  # NullTextUNet holds its UNet
    return getattr(inner, "config", None)


def size_multiple(network: nn.Module) -> int:
    """What the sides of the network's input must be multiples of: diffusers' UNets halve the resolution in
    every down block but the last (``2^(levels-1)``); other backbones say it as ``input_multiple``; else 1."""
    if hasattr(network, "input_multiple"):
        return int(network.input_multiple)
    config = _diffusers_config(network)
    blocks = config.get("down_block_types") if hasattr(config, "get") else None
    return 2 ** (len(blocks) - 1) if blocks else 1


def network_channels(network: nn.Module) -> tuple[int, int] | None:
    """``(in_channels, out_channels)`` of a diffusers backbone (``None`` for backbones that do not say)."""
    config = _diffusers_config(network)
    if not hasattr(config, "get") or config.get("in_channels") is None:
        return None
    return int(config.get("in_channels")), int(config.get("out_channels") or config.get("in_channels"))


def own_memory(module: nn.Module) -> nn.Module:
    """``module`` with every parameter and buffer copied into freshly allocated memory.

    diffusers can hand back weights that start at any byte offset of the file's buffer; CPU kernels take other
    vectorised paths on unaligned data, so a reloaded UNet differed from the saved one in the last bit
    (2e-7 at a 1x1 resolution). Fresh allocations are aligned as the original weights were.
    """
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.data = tensor.data.clone()
    return module


__all__ = ["BACKBONES", "Backbone", "backbone", "build_network", "load_network", "network_channels", "size_multiple"]
