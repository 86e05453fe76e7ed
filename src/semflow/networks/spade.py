"""A SPADE generator and a multi-scale PatchGAN discriminator (Park et al. 2019, "Semantic Image Synthesis with
Spatially-Adaptive Normalization"; Wang et al. 2018, pix2pixHD), at our scale, saved as one diffusers-style folder.

* :class:`SpadeGenerator`: the mask (one channel per class) and a noise vector broadcast over it (OASIS's "3D
  noise", the source of multi-modal output) are read by every normalisation layer: a parameter-free instance norm
  whose scale and shift are convolutions of that map (SPADE). It starts from the map at the coarsest level and
  upsamples through SPADE residual blocks, one per level of ``block_out_channels`` (finest first, as diffusers'
  UNets list them).
* :class:`MultiscaleDiscriminator`: ``scales`` PatchGANs (4x4 convolutions, spectral norm, instance norm, leaky
  ReLU) on the image and the mask stacked, each scale on a 2x smaller copy; every layer's output is returned
  for feature matching.
* :class:`SpadeGAN`: both, as the one ``network`` of a model folder (``config.json`` + safetensors); only the
  generator runs at synthesis.

Written by hand: diffusers has no SPADE block and no discriminator.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from semflow.errors import SemflowInputError
from semflow.networks.unet import load_exact, read_network_folder

# The UNet's default widths; SPADE's hidden width follows the widest level (None), which keeps the generator's
# parameters within 20% of SemFlow's UNet at the same block_out_channels (tests/models/test_rivals.py).
DEFAULT_SPADE: dict[str, Any] = {
    "block_out_channels": [32, 64, 128],
    "noise_channels": 32,
    "spade_hidden": None,
    "disc_channels": 32,
    "disc_layers": 3,
    "disc_scales": 2,
}


class Spade(nn.Module):
    """Spatially-adaptive normalisation: ``IN(x) * (1 + gamma(m)) + beta(m)`` with ``gamma``, ``beta`` convolutions of
    the map ``m`` resized to ``x``.

    Args:
        channels: of ``x``.
        map_channels: of ``m`` (classes + noise).
        hidden: channels of the shared convolution that reads ``m``.
    """

    def __init__(self, channels: int, map_channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(map_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, h, w)``, ``m`` ``(B, M, H, W)`` (nearest-resized to ``h x w``) to ``(B, C, h, w)``."""
        h = self.shared(F.interpolate(m, size=x.shape[-2:], mode="nearest"))
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SpadeResBlock(nn.Module):
    """SPADE's residual block: two (SPADE, leaky ReLU, 3x3 conv) and a learned shortcut where widths change."""

    def __init__(self, fin: int, fout: int, map_channels: int, hidden: int) -> None:
        super().__init__()
        mid = min(fin, fout)
        self.norm_0, self.conv_0 = Spade(fin, map_channels, hidden), nn.Conv2d(fin, mid, 3, padding=1)
        self.norm_1, self.conv_1 = Spade(mid, map_channels, hidden), nn.Conv2d(mid, fout, 3, padding=1)
        self.shortcut = None
        if fin != fout:
            self.norm_s, self.shortcut = Spade(fin, map_channels, hidden), nn.Conv2d(fin, fout, 1, bias=False)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(self.norm_s(x, m))
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, m), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, m), 0.2))
        return skip + dx


class SpadeGenerator(nn.Module):
    """Mask and noise to a latent image.

    Args:
        in_channels: mask channels ``K`` (class fractions).
        out_channels: the latent's channels ``C``.
        block_out_channels: widths from the finest level to the coarsest; ``L`` levels start at ``1 / 2^(L-1)``
            of the output size.
        noise_channels: length of the noise vector ``Z``.
        spade_hidden: channels of every SPADE's shared convolution (``None``: the widest level's).
    """

    def __init__(self, in_channels: int, out_channels: int, block_out_channels: list[int], noise_channels: int,
                 spade_hidden: int | None) -> None:
        super().__init__()
        widths = list(block_out_channels)[::-1]  # coarsest first
        spade_hidden = max(widths) if spade_hidden is None else spade_hidden
        map_channels = in_channels + noise_channels
        self.levels = len(widths)
        self.head = nn.Conv2d(map_channels, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList(
            SpadeResBlock(widths[max(i - 1, 0)], widths[i], map_channels, spade_hidden) for i in range(len(widths)))
        self.out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, mask: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``mask`` ``(B, K, h, w)``, ``noise`` ``(B, Z)`` to ``(B, C, h, w)``; ``h``, ``w`` multiples of ``2^(L-1)``."""
        m = torch.cat([mask, noise[:, :, None, None].expand(-1, -1, *mask.shape[-2:]).to(mask.dtype)], dim=1)
        scale = 2 ** (self.levels - 1)
        x = self.head(F.interpolate(m, size=(mask.shape[-2] // scale, mask.shape[-1] // scale), mode="nearest"))
        for i, block in enumerate(self.blocks):
            if i:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(x, m)
        return self.out(F.leaky_relu(x, 0.2))


class PatchDiscriminator(nn.Module):
    """pix2pixHD's PatchGAN: ``layers`` 4x4 convolutions (the first two of stride 2), then one to a logit per patch;
    spectral norm on every convolution, instance norm after all but the first."""

    def __init__(self, in_channels: int, channels: int, layers: int) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        width, fin = channels, in_channels
        for i in range(layers):
            conv = spectral_norm(nn.Conv2d(fin, width, 4, stride=2 if i < 2 else 1, padding=2))
            norm: list[nn.Module] = [nn.InstanceNorm2d(width, affine=False)] if i else []
            stages.append(nn.Sequential(conv, *norm, nn.LeakyReLU(0.2)))
            fin, width = width, min(width * 2, channels * 8)
        stages.append(spectral_norm(nn.Conv2d(fin, 1, 4, padding=2)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output; the last is the patch logits ``(B, 1, h', w')``."""
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``scales`` PatchGANs, scale ``s`` on the input average-pooled ``s`` times (3x3, stride 2)."""

    def __init__(self, in_channels: int, channels: int, layers: int, scales: int) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, channels, layers) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """``x`` ``(B, C + K, h, w)`` (image and mask stacked) to each scale's stage outputs."""
        outputs = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(d(x))
        return outputs


class SpadeGAN(ModelMixin, ConfigMixin):
    """The generator and the discriminator of a ``spade`` model (one folder; only the generator synthesizes).

    Args:
        in_channels: mask channels ``K``.
        out_channels: latent channels ``C``.
        block_out_channels, noise_channels, spade_hidden: the generator's (:class:`SpadeGenerator`).
        disc_channels, disc_layers, disc_scales: the discriminator's first width, stride-2/1 stages and scales.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, in_channels: int, out_channels: int, block_out_channels: list[int] = (32, 64, 128),
                 noise_channels: int = 32, spade_hidden: int | None = None, disc_channels: int = 32, disc_layers: int = 3,
                 disc_scales: int = 2) -> None:
        super().__init__()
        self.generator = SpadeGenerator(in_channels, out_channels, list(block_out_channels), noise_channels,
                                        spade_hidden)
        self.discriminator = MultiscaleDiscriminator(in_channels + out_channels, disc_channels, disc_layers,
                                                     disc_scales)

    @property
    def input_multiple(self) -> int:
        """The sides of the generator's output must be multiples of this (:func:`semflow.networks.size_multiple`)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, mask: torch.Tensor, noise: torch.Tensor, real: torch.Tensor | None = None):
        """Synthesis (``real`` is ``None``): the generated latents ``(B, C, h, w)``.

        Training (``real`` the image latents ``(B, C, h, w)``): one call that a distributed wrapper sees, returning
        ``(fake, d_real, d_fake, g_fake)``: the generated latents and the discriminator's outputs (per scale, per
        stage) on the real pairs, on the generated ones detached (gradients reach only the discriminator), and on
        the generated ones through the discriminator's weights detached (gradients reach only the generator).
        """
        fake = self.generator(mask, noise)
        if real is None:
            return fake
        d = self.discriminator
        d_real = d(torch.cat([real, mask], dim=1))
        d_fake = d(torch.cat([fake.detach(), mask], dim=1))
        # The same discriminator with its parameters cut from the graph (spectral norm applies to the detached
        # originals): the generator's loss moves the generator alone.
        frozen = {name: p.detach() for name, p in d.named_parameters()}
        g_fake = torch.func.functional_call(d, frozen, (torch.cat([fake, mask], dim=1),))
        return fake, d_real, d_fake, g_fake


def build_spade(config: dict[str, Any], channels: int, out_channels: int | None = None) -> SpadeGAN:
    """A randomly initialised :class:`SpadeGAN` reading ``channels`` mask channels and making ``out_channels``
    latent channels; ``config`` overrides :data:`DEFAULT_SPADE`."""
    args = {**DEFAULT_SPADE, **config, "in_channels": channels,
            "out_channels": channels if out_channels is None else out_channels}
    accepted = set(inspect.signature(SpadeGAN.__init__).parameters) - {"self"}
    unknown = sorted(set(args) - accepted)
    if unknown:
        raise SemflowInputError(f"network_args {sorted(config)}: {unknown} do not apply to the spade network; "
                                f"expected some of {sorted(accepted - {'in_channels', 'out_channels'})}")
    if not args["block_out_channels"] or min(int(w) for w in args["block_out_channels"]) < 1:
        raise SemflowInputError(f"network_args.block_out_channels={args['block_out_channels']}; expected widths >= 1")
    for name in ("noise_channels", "spade_hidden", "disc_channels", "disc_layers", "disc_scales"):
        if name == "spade_hidden" and args[name] is None:
            continue
        if not isinstance(args[name], int) or args[name] < (0 if name == "noise_channels" else 1):
            raise SemflowInputError(f"network_args.{name}={args[name]!r}; expected a whole number >= "
                                    f"{0 if name == 'noise_channels' else 1}")
    return SpadeGAN(**args)


def load_spade(directory: Path) -> SpadeGAN:
    """A :class:`SpadeGAN` saved with ``save_pretrained`` (local safetensors only; every key and tensor checked).

    Raises:
        SemflowInputError: a missing or corrupt file, an unknown config key, weights that do not fit.
    """
    directory = Path(directory)
    config, config_file, weights = read_network_folder(directory, "the spade network")
    args = {k: v for k, v in config.items() if not k.startswith("_")}
    try:
        model = build_spade({k: v for k, v in args.items() if k not in ("in_channels", "out_channels")},
                            int(args.get("in_channels", 0)), int(args.get("out_channels", 0)))
    except (TypeError, ValueError, RuntimeError) as err:
        raise SemflowInputError(f"{config_file}: does not make a spade network ({str(err).splitlines()[0]})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise SemflowInputError(f"{weights}: truncated or corrupt ({str(err).splitlines()[0]})") from None
    load_exact(model, state, weights)
    return model.eval()
