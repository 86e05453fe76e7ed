"""ESPNet: shapes at every scale, and the release's CamVid weights loading into it (where ../shared exists)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.evaluation.judge import load_release_weights
from semflow.networks.espnet import ESPNet

RELEASE = "weights/espnet-camvid/espnet_p_2_q_8_camvid.pth"


@pytest.mark.parametrize(("p", "q", "classes"), [(2, 8, 12), (1, 2, 5)])
def test_shapes(p: int, q: int, classes: int) -> None:
    out = ESPNet(classes, p, q).eval().forward_features(torch.randn(2, 3, 24, 32))
    assert out.logits.shape == (2, classes, 24, 32)
    assert (out.half.shape, out.quarter.shape, out.eighth.shape) == ((2, 19, 12, 16), (2, 131, 6, 8), (2, 256, 3, 4))


def test_the_release_state_dict_loads_strictly(shared) -> None:
    path = shared / RELEASE
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("7d354a25")
    network = load_release_weights(path, classes=11)
    assert len([k for k in network.state_dict() if not k.endswith("num_batches_tracked")]) == 189
    assert sum(p.numel() for p in network.parameters()) == 354_517  # the release's parameter count
    assert network.classifier.weight.shape[0] == 12


def test_missing_and_foreign_weights_give_one_line(tmp_path) -> None:
    with pytest.raises(SemflowInputError, match="do not exist.*nothing is downloaded"):
        load_release_weights(tmp_path / "absent.pth", classes=11)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(SemflowInputError, match="not an ESPNet"):
        load_release_weights(tmp_path / "other.pth", classes=11)
    torch.save(ESPNet(6).state_dict(), tmp_path / "six.pth")
    with pytest.raises(SemflowInputError, match="fewer than"):
        load_release_weights(tmp_path / "six.pth", classes=11)
