"""Pseudo-masks: a segmentation mask drawn as an RGB image, so that the codec and the flow carry it as an image.

* :mod:`~semflow.pseudomask.palette`: class maps <-> pseudo-mask colours, and nearest-colour decoding.
* :mod:`~semflow.pseudomask.perturbation`: the finite perturbation ``U(-beta, beta)`` and the authors' ``beta``.

Colours and ``beta`` are in pixel levels (``[0, 255]``). Nothing here imports the configuration or the models.
"""

from semflow.pseudomask.palette import IGNORE_COLOR, Palette
from semflow.pseudomask.perturbation import AUTHORS_BETA, check_beta, perturb

__all__ = ["AUTHORS_BETA", "IGNORE_COLOR", "Palette", "check_beta", "perturb"]
