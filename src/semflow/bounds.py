"""Sane bounds of a network's config and weights, checked before anything is allocated.

A model folder (or a codec folder) comes from strangers: its ``config.json`` decides how much memory a
network takes, and weights that do not fit it are found only after the network exists. Here the config's
numbers are bounded first, the network is built on the ``meta`` device (shapes only, no memory) and its
tensors are compared with the safetensors header (names, shapes, dtypes: read without loading a tensor). Only
then is the real network built, as large as the weights file that fills it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from semflow.errors import SemflowInputError

# The largest whole number a network config may hold (channels, sample size, heads): 16384, the widest side a
# model may have (semflow.config.MAX_SIZE), is 12x Stable Diffusion's widest channel count (1280).
MAX_CONFIG_INT = 16384
# Keys naming a depth (layers_per_block, transformer_layers_per_block): each is a loop of modules.
MAX_LAYERS = 64
# Items of a list in a network config (block types, channel lists: SD has 4).
MAX_LIST = 16
# Parameters of one network: twice SDXL's UNet (2.6 billion).
MAX_PARAMETERS = 5 * 10**9
# Floating-point dtypes weights may have (safetensors names).
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def check_config_numbers(config: Any, where: str, key: str = "") -> None:
    """Every number in a network config finite and within the bounds above; one line naming the key otherwise."""
    if isinstance(config, dict):
        for k, v in config.items():
            check_config_numbers(v, where, f"{key}.{k}" if key else str(k))
    elif isinstance(config, (list, tuple)):
        if len(config) > MAX_LIST:
            raise SemflowInputError(f"{where}: {key} has {len(config)} items; expected at most {MAX_LIST}")
        for v in config:
            check_config_numbers(v, where, key)
    elif isinstance(config, bool) or config is None or isinstance(config, str):
        return
    elif isinstance(config, int):
        limit = MAX_LAYERS if "layers" in key.rsplit(".", 1)[-1] else MAX_CONFIG_INT
        if abs(config) > limit:
            raise SemflowInputError(f"{where}: {key}={config}; expected at most {limit} (a network that would not "
                                    "fit in memory)")
    elif isinstance(config, float) and not math.isfinite(config):
        raise SemflowInputError(f"{where}: {key}={config}; expected a finite number")


def planned_tensors(build: Callable[[], nn.Module], where: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state of the module ``build()`` makes, built on the meta device (no memory).

    Raises:
        SemflowInputError: more than :data:`MAX_PARAMETERS` parameters.
    """
    with torch.device("meta"):
        module = build()
    shapes = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    count = sum(math.prod(s) for s in shapes.values())
    if count > MAX_PARAMETERS:
        raise SemflowInputError(f"{where}: describes a network of {count:.3g} parameters; expected at most "
                                f"{MAX_PARAMETERS:.0e}")
    return shapes


def header_tensors(file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes and dtypes of a safetensors file's tensors, from its header alone."""
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise SemflowInputError(f"{file}: truncated or corrupt ({str(err).splitlines()[0]})") from None


def check_weights_fit(planned: dict[str, tuple[int, ...]], file: Path, what: str = "the network config") -> None:
    """The safetensors ``file`` holds exactly the ``planned`` tensors, with their shapes, in floating point."""
    held = header_tensors(file)
    missing, unexpected = sorted(set(planned) - set(held)), sorted(set(held) - set(planned))
    if missing or unexpected:
        raise SemflowInputError(f"{file}: does not fit {what} ({len(missing)} tensors missing, e.g. {missing[:2]}; "
                                f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    for name, (shape, dtype) in held.items():
        if shape != planned[name]:
            raise SemflowInputError(f"{file}: {name} has shape {shape}, {what} gives {planned[name]}")
        if dtype not in FLOAT_DTYPES:
            raise SemflowInputError(f"{file}: {name} is {dtype}; expected floating-point weights "
                                    f"({', '.join(FLOAT_DTYPES)})")


def check_diffusers_folder(model_class: Any, config: dict[str, Any], config_file: Path, weights: Path | None) -> None:
    """A diffusers model's ``config`` (read from ``config_file``) within bounds, and its safetensors ``weights``
    (when given) holding exactly the tensors it describes: all before the model is built.

    Raises:
        SemflowInputError: a number out of bounds, a config the class refuses, weights that do not fit.
    """
    check_config_numbers(config, str(config_file))
    from diffusers.utils import logging as diffusers_logging

    name = model_class.__name__
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its notes on the config come once, from the real load after this
    try:
        planned = planned_tensors(lambda: model_class.from_config(config), str(config_file))
    except SemflowInputError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
        raise SemflowInputError(f"{config_file}: does not make a {name} ({str(err).splitlines()[0]})") from None
    finally:
        diffusers_logging.set_verbosity(level)
    if weights is not None and weights.suffix == ".safetensors":
        check_weights_fit(planned, weights, f"the {name} config")
