"""The one way a seed becomes a random generator, so that two commands given the same seed never disagree.

A seed alone seeds the generator as it is (``torch.Generator().manual_seed(seed)``). A seed with keys (the
index of a mask in its list, an epoch and a batch, a process) is first mixed with them into one number, so
that the stream of input ``i`` depends on ``(seed, i)`` alone: not on the batch size, the order of work or the
number of processes. The mix is Python's hash of the tuple of whole numbers, which is the same in every
process and run (only strings and bytes are salted per process).
"""

from __future__ import annotations

import torch

from semflow.errors import SemflowInputError

# Seeds stay below 2^47: any positive mix fits ``manual_seed`` on every device.
_MASK = 0x7FFF_FFFF_FFFF
# The seeds a user may give: what numpy's legacy seeding (Accelerate's ``set_seed``) takes, 0 .. 2^32 - 1.
MAX_SEED = 2**32 - 1


def check_seed(seed: int, name: str = "seed") -> int:
    """``seed`` if it is a whole number from 0 to :data:`MAX_SEED`, else one line naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SemflowInputError(f"{name}={seed!r}; expected a whole number from 0 to {MAX_SEED}")
    return seed


def mix(seed: int, *keys: int) -> int:
    """``seed`` itself when there are no keys, else one whole number from ``(seed, *keys)``."""
    if not keys:
        return int(seed)
    return hash((int(seed), *(int(k) for k in keys))) & _MASK


def make_generator(seed: int, *keys: int, device: torch.device | str | None = None) -> torch.Generator:
    """A generator seeded by :func:`mix` of ``(seed, *keys)``, on ``device`` (default the CPU, whose streams are
    the same on every machine)."""
    generator = torch.Generator() if device is None else torch.Generator(device=device)
    return generator.manual_seed(mix(seed, *keys))


def reseed(generator: torch.Generator, seed: int, *keys: int) -> torch.Generator:
    """Reseed an existing generator (one that lives on an accelerator) by :func:`mix`; returns it."""
    return generator.manual_seed(mix(seed, *keys))
