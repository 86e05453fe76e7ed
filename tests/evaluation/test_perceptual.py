"""Weight lookup and error messages of the FID/LPIPS wrappers; no real weights, nothing downloaded."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from semflow.errors import SemflowInputError
from semflow.evaluation.perceptual import (
    FID_WEIGHTS_URL,
    MissingMetricDependency,
    MissingMetricWeights,
    make_fid,
    make_lpips,
    resolve_fid_weights,
    resolve_lpips_backbone,
)

FID_FILE = "weights-inception-2015-12-05-6726825d.pth"
LPIPS_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$TORCH_HOME`` and no ``SEMFLOW_*_WEIGHTS`` variables."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("SEMFLOW_FID_WEIGHTS", raising=False)
    monkeypatch.delenv("SEMFLOW_LPIPS_WEIGHTS", raising=False)
    return home


def dummy(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really weights")
    return path


def test_missing_fid_weights_names_file_path_and_url(empty_torch_home: Path) -> None:
    expected = empty_torch_home / "hub" / "checkpoints" / FID_FILE
    with pytest.raises(MissingMetricWeights) as caught:
        resolve_fid_weights()
    message = str(caught.value)
    assert FID_FILE in message and str(expected) in message and FID_WEIGHTS_URL in message
    assert "SEMFLOW_FID_WEIGHTS" in message and "\n" not in message
    assert isinstance(caught.value, SemflowInputError)
    with pytest.raises(MissingMetricWeights):
        make_fid()  # weights are checked before the extra is imported
    assert list(empty_torch_home.iterdir()) == []  # nothing downloaded, no cache folder created


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_missing_lpips_backbone_names_file_path_and_url(empty_torch_home: Path, net: str) -> None:
    name = LPIPS_FILES[net]
    with pytest.raises(MissingMetricWeights) as caught:
        make_lpips(net)
    message = str(caught.value)
    assert str(empty_torch_home / "hub" / "checkpoints" / name) in message
    assert f"https://download.pytorch.org/models/{name}" in message and "SEMFLOW_LPIPS_WEIGHTS" in message
    assert list(empty_torch_home.iterdir()) == []


def test_weights_found_in_hub_cache(empty_torch_home: Path) -> None:
    fid = dummy(empty_torch_home / "hub" / "checkpoints" / FID_FILE)
    alex = dummy(empty_torch_home / "hub" / "checkpoints" / LPIPS_FILES["alex"])
    assert resolve_fid_weights() == fid
    assert resolve_lpips_backbone("alex") == alex


def test_pytorch_fid_file_name_accepted_from_hub_cache(empty_torch_home: Path) -> None:
    legacy = dummy(empty_torch_home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth")
    assert resolve_fid_weights() == legacy


def test_explicit_path_is_returned(empty_torch_home: Path, tmp_path: Path) -> None:
    fid = dummy(tmp_path / "any-name.pth")
    assert resolve_fid_weights(fid) == fid
    assert resolve_fid_weights(str(fid)) == fid
    assert resolve_lpips_backbone("vgg", fid) == fid


def test_explicit_folder_is_searched_for_standard_name(empty_torch_home: Path, tmp_path: Path) -> None:
    alex = dummy(tmp_path / "weights" / LPIPS_FILES["alex"])
    assert resolve_lpips_backbone("alex", tmp_path / "weights") == alex
    with pytest.raises(MissingMetricWeights, match=re.escape(str(tmp_path / "weights" / LPIPS_FILES["vgg"]))):
        resolve_lpips_backbone("vgg", tmp_path / "weights")


def test_missing_explicit_path_is_not_replaced_by_the_cache(empty_torch_home: Path, tmp_path: Path) -> None:
    dummy(empty_torch_home / "hub" / "checkpoints" / FID_FILE)
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(MissingMetricWeights, match=re.escape(str(missing))):
        resolve_fid_weights(missing)


def test_environment_variables(empty_torch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fid, vgg = dummy(tmp_path / "fid.pth"), dummy(tmp_path / "vgg.pth")
    monkeypatch.setenv("SEMFLOW_FID_WEIGHTS", str(fid))
    monkeypatch.setenv("SEMFLOW_LPIPS_WEIGHTS", str(vgg))
    assert resolve_fid_weights() == fid
    assert resolve_lpips_backbone("vgg") == vgg
    monkeypatch.setenv("SEMFLOW_FID_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(MissingMetricWeights, match=r"gone\.pth.*\$SEMFLOW_FID_WEIGHTS"):
        resolve_fid_weights()


def test_unknown_lpips_net_raises() -> None:
    with pytest.raises(SemflowInputError, match="'squeeze'"):
        resolve_lpips_backbone("squeeze")


def _skip_if_importable(module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here, so the missing-extra error cannot be provoked")


def test_fid_without_torch_fidelity_names_the_extra(empty_torch_home: Path, tmp_path: Path) -> None:
    _skip_if_importable("torch_fidelity")
    with pytest.raises(MissingMetricDependency, match=r"torch-fidelity.*pip install 'semflow\[metrics\]'"):
        make_fid(weights=dummy(tmp_path / "fid.pth"))


def test_lpips_without_torchvision_names_the_extra(empty_torch_home: Path, tmp_path: Path) -> None:
    _skip_if_importable("torchvision")
    with pytest.raises(MissingMetricDependency, match=r"torchvision.*pip install 'semflow\[metrics\]'"):
        make_lpips("alex", weights=dummy(tmp_path / "alex.pth"))
    assert list(empty_torch_home.iterdir()) == []


def test_make_fid_passes_the_file_and_normalize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # torch-fidelity is absent here: a stand-in metric records how torchmetrics' class would be built.
    import torchmetrics.image.fid

    built = {}
    monkeypatch.setattr("semflow.evaluation.perceptual._require", lambda *args: None)
    monkeypatch.setattr(torchmetrics.image.fid, "FrechetInceptionDistance", lambda **kwargs: built.update(kwargs))
    weights = dummy(tmp_path / "inception.pth")
    make_fid(weights)
    assert built == {"feature": 2048, "normalize": True, "feature_extractor_weights_path": str(weights)}


def test_make_lpips_shows_torchvision_the_file_only_while_building(
    empty_torch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torchvision is absent here: a stand-in metric checks what torchvision would find in the hub cache.
    import torch
    import torchmetrics.image.lpip

    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # undo the hub dir that make_lpips restores by value
    seen = {}

    def fake_lpips(**kwargs: object) -> torch.nn.Module:
        checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_FILES["vgg"]
        seen.update(kwargs, content=checkpoint.read_bytes())
        return torch.nn.Module()

    monkeypatch.setattr("semflow.evaluation.perceptual._require", lambda *args: None)
    monkeypatch.setattr(torchmetrics.image.lpip, "LearnedPerceptualImagePatchSimilarity", fake_lpips)
    make_lpips("vgg", weights=dummy(tmp_path / "renamed.pth"), device="cpu")
    assert seen == {"net_type": "vgg", "reduction": "none", "normalize": True, "content": b"not really weights"}
    assert Path(torch.hub.get_dir()) == empty_torch_home / "hub"
    assert list(empty_torch_home.iterdir()) == []
