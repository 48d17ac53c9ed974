"""``torch.npu.amp.GradScaler``: PyTorch's GradScaler on the npu, with torch_npu's ``dynamic``
switch. Dynamic scaling (the default) behaves as on CUDA: the unscale, the inf/NaN check and
the scale update run on the device (``_amp_foreach_non_finite_check_and_unscale_``,
``_amp_update_scale_``), a step whose gradients overflowed is skipped and the scale backs off,
and nothing waits for the device. ``dynamic=False`` keeps the scale fixed: gradients are
unscaled and every step is taken."""
from collections import defaultdict

import torch
from torch.amp.grad_scaler import _refresh_per_optimizer_state

__all__ = ["GradScaler"]


class GradScaler(torch.amp.GradScaler):
    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, dynamic: bool = True, enabled: bool = True):
        super().__init__("npu", init_scale=init_scale, growth_factor=growth_factor, backoff_factor=backoff_factor,
                         growth_interval=growth_interval, enabled=enabled)
        self._dynamic = dynamic

    def _unscale_grads_(self, optimizer, inv_scale, found_inf, allow_fp16):
        found = super()._unscale_grads_(optimizer, inv_scale, found_inf, allow_fp16)
        if not self._dynamic:
            # A fixed scale never skips a step: forget what the check found.
            for t in found.values():
                t.zero_()
        return found

    def update(self, new_scale=None):
        if self._enabled and not self._dynamic and new_scale is None:
            self._check_scale_growth_tracker("update")
            self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)
            return
        super().update(new_scale)

    def is_dynamic(self) -> bool:
        return self._dynamic

    def state_dict(self):
        state = super().state_dict()
        if self._enabled:
            state["dynamic"] = self._dynamic
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self._enabled:
            self._dynamic = state_dict.get("dynamic", True)
