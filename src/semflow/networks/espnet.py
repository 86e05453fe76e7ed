"""ESPNet (Mehta et al., ECCV 2018): a light segmentation network built of efficient spatial pyramids of dilated
convolutions, the encoder-decoder variant with ``p`` modules at 1/4 scale and ``q`` at 1/8 scale.

Written here from the paper's description; its module and parameter names follow the public release
(sacmehta/ESPNet, MIT) so that the authors' ``state_dict`` files load as they are, e.g. the CamVid model
``espnet_p_2_q_8_camvid.pth`` (189 tensors, 12 outputs: the 11 SegNet CamVid classes, then Unlabelled).

Shapes: images ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of 8, normalised as the weights expect (see
:class:`semflow.evaluation.judge` for the calibration); logits ``(B, C, H, W)``. :meth:`ESPNet.forward_features`
also returns the intermediate feature maps at 1/2, 1/4 and 1/8 scale, the judge's feature space.

Every batch norm uses ``eps=1e-3`` and every activation is a per-channel PReLU, as in the release.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

BN_EPS = 1e-3


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """A bias-free convolution that keeps the size (up to the stride)."""
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2 * dilation, dilation=dilation,
                     bias=False)


class _Conv(nn.Module):
    """A bare convolution (the release's ``C`` and ``CDilated``: one ``conv`` parameter)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out, kernel, stride, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _NormAct(nn.Module):
    """Batch norm then PReLU (``BR``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class _ConvNormAct(nn.Module):
    """Convolution, batch norm, PReLU (``CBR``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out, kernel, stride)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class _Pyramid(nn.Module):
    """The ESP pyramid: reduce to ``n = c_out // 5`` channels (``c1``), five parallel 3x3 convolutions with
    dilations 1, 2, 4, 8, 16 (the first one wider, ``c_out - 4n``, so the widths add up to ``c_out``), and
    hierarchical feature fusion (each dilated branch adds the one before it) to remove gridding artefacts."""

    DILATIONS = (2, 4, 8, 16)

    def __init__(self, c_in: int, c_out: int, reduce_kernel: int, stride: int) -> None:
        super().__init__()
        n = c_out // 5
        self.c1 = _Conv(c_in, n, reduce_kernel, stride)
        self.d1 = _Conv(n, c_out - 4 * n, 3)
        for d in self.DILATIONS:
            setattr(self, f"d{d}", _Conv(n, n, 3, dilation=d))

    def pyramid(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.c1(x)
        branches, total = [self.d1(reduced)], None
        for d in self.DILATIONS:
            out = getattr(self, f"d{d}")(reduced)
            total = out if total is None else total + out
            branches.append(total)
        return torch.cat(branches, dim=1)


class _DownESP(_Pyramid):
    """The strided ESP module (``DownSamplerB``): halves the size, then norm and PReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, reduce_kernel=3, stride=2)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pyramid(x)))


class _ESP(_Pyramid):
    """The ESP module (``DilatedParllelResidualBlockB``): 1x1 reduction, with an identity shortcut when
    ``residual`` (input and output widths equal), then norm and PReLU."""

    def __init__(self, c_in: int, c_out: int, residual: bool = True) -> None:
        super().__init__(c_in, c_out, reduce_kernel=1, stride=1)
        self.bn = _NormAct(c_out)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pyramid(x)
        return self.bn(x + out if self.residual else out)


class _ImagePyramid(nn.Module):
    """The input image average-pooled ``times`` times by 3x3 windows with stride 2 (``InputProjectionA``)."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.pool = nn.ModuleList(nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for pool in self.pool:
            x = pool(x)
        return x


class _Encoder(nn.Module):
    """ESPNet-C: the encoder (1/8 scale), with the input image re-injected at 1/2 and 1/4 scale."""

    def __init__(self, classes: int, p: int, q: int) -> None:
        super().__init__()
        self.level1 = _ConvNormAct(3, 16, 3, stride=2)
        self.sample1, self.sample2 = _ImagePyramid(1), _ImagePyramid(2)
        self.b1 = _NormAct(16 + 3)
        self.level2_0 = _DownESP(16 + 3, 64)
        self.level2 = nn.ModuleList(_ESP(64, 64) for _ in range(p))
        self.b2 = _NormAct(128 + 3)
        self.level3_0 = _DownESP(128 + 3, 128)
        self.level3 = nn.ModuleList(_ESP(128, 128) for _ in range(q))
        self.b3 = _NormAct(256)
        self.classifier = _Conv(256, classes, 1)


@dataclass
class ESPNetFeatures:
    """What one pass computes: ``logits`` ``(B, C, H, W)`` and the feature maps the judge compares images by:
    ``half`` ``(B, 19, H/2, W/2)``, ``quarter`` ``(B, 131, H/4, W/4)``, ``eighth`` ``(B, 256, H/8, W/8)`` (the
    encoder's concatenated outputs at each scale, after their norm and PReLU)."""

    logits: torch.Tensor
    half: torch.Tensor
    quarter: torch.Tensor
    eighth: torch.Tensor


class ESPNet(nn.Module):
    """ESPNet with its decoder (the paper's best variant): ``p`` ESP modules at 1/4 scale, ``q`` at 1/8.

    Args:
        classes: output channels (the authors' CamVid model: 12, the last one Unlabelled).
        p, q: modules at 1/4 and 1/8 scale (the paper's CamVid and Cityscapes models: 2 and 8).
    """

    def __init__(self, classes: int, p: int = 2, q: int = 8) -> None:
        super().__init__()
        self.encoder = _Encoder(classes, p, q)
        self.level3_C = _Conv(128 + 3, classes, 1)
        self.br = nn.BatchNorm2d(classes, eps=BN_EPS)
        self.conv = _ConvNormAct(16 + 3 + classes, classes, 3)
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False))
        self.combine_l2_l3 = nn.Sequential(_NormAct(2 * classes), _ESP(2 * classes, classes, residual=False))
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False), _NormAct(classes))
        self.classifier = nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False)

    def forward_features(self, x: torch.Tensor) -> ESPNetFeatures:
        """Logits and the encoder's features of normalised images ``(B, 3, H, W)``, ``H, W`` multiples of 8."""
        e = self.encoder
        half = e.b1(torch.cat([e.level1(x), e.sample1(x)], dim=1))
        down2 = e.level2_0(half)
        out2 = down2
        for module in e.level2:
            out2 = module(out2)
        quarter = e.b2(torch.cat([out2, down2, e.sample2(x)], dim=1))
        down3 = e.level3_0(quarter)
        out3 = down3
        for module in e.level3:
            out3 = module(out3)
        eighth = e.b3(torch.cat([down3, out3], dim=1))
        # Decoder: 1/8 scale class maps up to 1/4, fused with the 1/4 features' projection, up to 1/2, fused with
        # the 1/2 features, up to full size.
        coarse = self.up_l3(self.br(e.classifier(eighth)))
        fused = self.up_l2(self.combine_l2_l3(torch.cat([self.level3_C(quarter), coarse], dim=1)))
        logits = self.classifier(self.conv(torch.cat([fused, half], dim=1)))
        return ESPNetFeatures(logits=logits, half=half, quarter=quarter, eighth=eighth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, H, W)`` of normalised images ``(B, 3, H, W)``."""
        return self.forward_features(x).logits
