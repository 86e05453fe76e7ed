"""The null text embedding that drives a text-conditioned UNet without text.

Stable Diffusion's UNet attends to a text embedding ``(1, 77, D)`` (``D = 768`` for SD1.5's CLIP ViT-L/14).
SemFlow has no prompt, so, as the authors do, the UNet always sees the empty prompt ``""`` tokenized to the
tokenizer's full length (77: start token, end token, then padding) and passed through the text encoder.
That tensor is computed once and kept in the model folder, so inference needs neither the text encoder nor
``transformers``.

Two sources:
    * :func:`compute_null_embedding`: from a local Stable Diffusion folder's ``text_encoder/`` and
      ``tokenizer/`` (needs the optional ``transformers`` package: ``pip install 'semflow[sd]'``);
    * :func:`load_null_embedding`: a saved tensor (``.safetensors``, or a ``.pt``/``.pth``/``.bin`` pickle).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semflow.errors import SemflowInputError
from semflow.weights import load_weights_only

# The empty prompt: SemFlow's "no text" condition.
NULL_PROMPT = ""
# Key of the tensor in the ``.safetensors`` files written by :func:`save_null_embedding`.
TENSOR_KEY = "null_embedding"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin")


def as_batch_of_one(embedding: torch.Tensor, source: str) -> torch.Tensor:
    """``(L, D)`` or ``(1, L, D)`` to a float32 ``(1, L, D)``; anything else is an error naming ``source``."""
    if embedding.dim() == 2:
        embedding = embedding[None]
    if embedding.dim() != 3 or embedding.shape[0] != 1 or not embedding.is_floating_point():
        raise SemflowInputError(
            f"{source}: a null embedding must be a float tensor of shape (1, L, D) or (L, D), "
            f"got {str(embedding.dtype).removeprefix('torch.')} {tuple(embedding.shape)}"
        )
    return embedding.detach().to(torch.float32).contiguous()


def save_null_embedding(embedding: torch.Tensor, path: str | Path) -> None:
    """Write ``embedding`` ``(1, L, D)`` as a one-tensor safetensors file (key :data:`TENSOR_KEY`)."""
    save_file({TENSOR_KEY: as_batch_of_one(embedding, str(path)).cpu()}, str(path))


def load_null_embedding(path: str | Path) -> torch.Tensor:
    """A saved null embedding as float32 ``(1, L, D)`` on the CPU.

    Args:
        path: a ``.safetensors`` file holding one tensor (or one named :data:`TENSOR_KEY`), or a
            ``.pt``/``.pth``/``.bin`` file holding a tensor or a one-tensor dict (read with
            ``weights_only=True``, so it cannot run code).

    Raises:
        SemflowInputError: the file is missing, unreadable, or not one ``(1, L, D)``/``(L, D)`` float tensor.
    """
    path = Path(path).expanduser()
    expected = "a .safetensors (or .pt) file holding the (1, 77, D) text embedding of the empty prompt"
    if not path.is_file():
        raise SemflowInputError(f"{path} does not exist; expected {expected}")
    try:
        if path.suffix in PICKLE_SUFFIXES:
            loaded = load_weights_only(path, expected)
            tensors = loaded if isinstance(loaded, dict) else {TENSOR_KEY: loaded}
        else:
            tensors = load_file(str(path))
    except SemflowInputError:
        raise
    except (SafetensorError, OSError, RuntimeError, ValueError, EOFError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SemflowInputError(f"{path}: corrupt or unreadable ({reason}); expected {expected}") from None
    if TENSOR_KEY in tensors:
        tensor = tensors[TENSOR_KEY]
    elif len(tensors) == 1:
        (tensor,) = tensors.values()
    else:
        raise SemflowInputError(f"{path}: holds {len(tensors)} tensors {sorted(tensors)[:4]}; expected one")
    if not isinstance(tensor, torch.Tensor):
        raise SemflowInputError(f"{path}: holds a {type(tensor).__name__}; expected {expected}")
    return as_batch_of_one(tensor, str(path))


def compute_null_embedding(sd_folder: str | Path) -> torch.Tensor:
    """The empty prompt through a local Stable Diffusion text encoder, float32 ``(1, L, D)`` on the CPU.

    The prompt is padded to the tokenizer's ``model_max_length`` (77 for SD1.5) and the text encoder's last
    hidden state is returned, as SD pipelines and the SemFlow authors compute it.

    Args:
        sd_folder: a local Stable Diffusion folder holding ``tokenizer/`` (CLIP BPE files) and
            ``text_encoder/`` (a transformers ``CLIPTextModel``). Nothing is downloaded.

    Raises:
        SemflowInputError: ``transformers`` is not installed, or the folders are missing or unusable.
    """
    folder = Path(sd_folder).expanduser()
    for sub in ("tokenizer", "text_encoder"):
        if not (folder / sub).is_dir():
            raise SemflowInputError(
                f"{folder / sub} does not exist; expected a local Stable Diffusion folder holding tokenizer/ and "
                "text_encoder/ (or give a saved null embedding file instead)"
            )
    try:
        import transformers
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError:
        raise SemflowInputError(
            "computing the null text embedding needs the transformers package: pip install 'semflow[sd]' "
            "(or give a saved null embedding file instead)"
        ) from None
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        encoder = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), local_files_only=True)
    except (OSError, ValueError, RuntimeError, TypeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SemflowInputError(f"{folder}: cannot load the text encoder/tokenizer: {reason}") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    tokens = tokenizer(
        NULL_PROMPT, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = encoder.eval()(tokens.input_ids)[0]
    return as_batch_of_one(hidden, str(folder / "text_encoder"))
