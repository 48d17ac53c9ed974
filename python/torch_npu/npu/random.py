"""Random-number state of the NPU generators (one per device, Philox seed + offset)."""
from typing import Any, Iterable

import torch

from .. import _C
from ._utils import _checked_index


def _generator(device: Any = None) -> torch.Generator:
    return torch._C._accelerator_getDefaultGenerator(_checked_index(device))


def manual_seed(seed: int) -> None:
    """Seeds the current device's generator."""
    _generator().manual_seed(int(seed))


def manual_seed_all(seed: int) -> None:
    for idx in range(_C.device_count()):
        _generator(idx).manual_seed(int(seed))


def seed() -> None:
    """Seeds the current device's generator with a non-deterministic random number."""
    _generator().seed()


def seed_all() -> None:
    s = _generator(0).seed()
    for idx in range(1, _C.device_count()):
        _generator(idx).manual_seed(s)


def initial_seed() -> int:
    return _generator().initial_seed()


def get_rng_state(device: Any = "npu") -> torch.Tensor:
    return _generator(device).get_state()


def get_rng_state_all() -> list:
    return [get_rng_state(idx) for idx in range(_C.device_count())]


def set_rng_state(new_state: torch.Tensor, device: Any = "npu") -> None:
    _generator(device).set_state(new_state.clone(memory_format=torch.contiguous_format))


def set_rng_state_all(new_states: Iterable[torch.Tensor]) -> None:
    for idx, state in enumerate(new_states):
        set_rng_state(state, idx)
