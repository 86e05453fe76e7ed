"""Commands under a launcher (``accelerate launch``, ``torchrun``): the processes, their devices and shares.

Outside a launcher everything here describes one process, so the commands need no separate code path.
Accelerate is imported only when a command runs, never by the library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from semflow.cli.common import pick_device
from semflow.errors import SemflowInputError
from semflow.files import Processes
from semflow.training.launcher import launched_processes, multiprocess_without_accelerator

if TYPE_CHECKING:
    from accelerate import PartialState


def process_state() -> PartialState:
    """Accelerate's view of the processes, using the CPU (gloo) when launched on a machine without GPUs.

    Raises:
        RuntimeError: the launcher started more processes than Accelerate joined (they would run separately).
    """
    from accelerate import PartialState

    state = PartialState(cpu=multiprocess_without_accelerator())
    if launched_processes() != state.num_processes:
        raise RuntimeError(f"the launcher started {launched_processes()} processes but Accelerate set up "
                           f"{state.num_processes} ({state.distributed_type}); they would run as separate copies. "
                           "Check the accelerate config (accelerate env) and the devices.")
    return state


def inference_device(state: PartialState, name: str) -> torch.device:
    """``--device``: ``auto`` gives each process its own device under a launcher (``cuda:LOCAL_RANK``, or the
    CPU); otherwise the device named (``auto``: the first GPU if any, else the CPU)."""
    if name == "auto" and state.num_processes > 1:
        return state.device
    return pick_device(name)


def my_share(state: PartialState, count: int) -> list[int]:
    """This process's contiguous share of ``range(count)``, as Accelerate's ``split_between_processes`` cuts it
    (shares differ in length by at most one; process 0's comes first)."""
    with state.split_between_processes(list(range(count))) as share:
        return list(share)


def stop_if_any_failed(state: PartialState, error: SemflowInputError | None) -> None:
    """After each process checked its share of the inputs: if any found bad input, all stop before writing.

    Process 0 raises the first error found (so it is printed once); the others exit with code 2 quietly.
    """
    if state.num_processes == 1:
        if error is not None:
            raise error
        return
    from accelerate.utils import gather_object

    messages = [m for m in gather_object([None if error is None else str(error)]) if m is not None]
    if messages:
        if state.is_main_process:
            raise SemflowInputError(messages[0])
        raise SystemExit(2)


class LaunchedProcesses(Processes):
    """:class:`semflow.files.Processes` backed by Accelerate's state (:func:`process_state`)."""

    def __init__(self, state: PartialState) -> None:
        self.state = state
        self.num_processes, self.is_main_process = state.num_processes, state.is_main_process

    def share(self, count: int) -> list[int]:
        return my_share(self.state, count)

    def stop_if_any_failed(self, error: SemflowInputError | None) -> None:
        stop_if_any_failed(self.state, error)

    def wait_for_everyone(self) -> None:
        self.state.wait_for_everyone()
