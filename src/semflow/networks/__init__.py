"""Velocity backbones, built from a kind and a JSON config, saved as diffusers-style folders.

A backbone is any ``nn.Module`` called as ``net(sample, timestep)``. Register new kinds in
:data:`BACKBONES` with a builder (config -> module) and a loader (folder -> module); saving uses the
module's ``save_pretrained`` (diffusers' ``ModelMixin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from semflow.errors import SemflowInputError
from semflow.networks.unet import build_unet2d, load_unet2d


@dataclass(frozen=True)
class Backbone:
    """How to build a backbone of one kind from its config and how to load it from a saved folder."""

    build: Callable[[dict[str, Any], int], nn.Module]
    load: Callable[[Path], nn.Module]


BACKBONES: dict[str, Backbone] = {"unet2d": Backbone(build=build_unet2d, load=load_unet2d)}


def backbone(kind: str) -> Backbone:
    """The backbone registered under ``kind``; a clear error for unknown kinds."""
    try:
        return BACKBONES[kind]
    except KeyError:
        raise SemflowInputError(f"unknown network {kind!r}; expected one of {sorted(BACKBONES)}") from None


def build_network(kind: str, config: dict[str, Any], channels: int) -> nn.Module:
    """A freshly initialised backbone for latents with ``channels`` channels."""
    return backbone(kind).build(config, channels)


def load_network(kind: str, directory: Path) -> nn.Module:
    """A backbone saved with ``save_pretrained`` in ``directory``."""
    return backbone(kind).load(directory)


__all__ = ["BACKBONES", "Backbone", "backbone", "build_network", "load_network"]
