"""The base of torch_npu's fused optimizers. On the first step the parameters, their gradients
and the optimizer state are moved into flat buffers, one per dtype (`npu_combine_tensors`: every
tensor keeps its identity and views its slice), and each step then updates a whole param group
of one dtype with a few launches, whatever the number of parameters.

Unlike torch_npu, a combination that no longer holds (a parameter gained or lost its gradient,
a gradient was replaced, `load_state_dict`) is detected at the next step and rebuilt, instead of
silently stepping stale buffers."""
from dataclasses import dataclass, field

import torch
from torch.optim.optimizer import Optimizer

from ..utils import npu_combine_tensors

__all__ = ["NpuFusedOptimizerBase"]

# The order of the combined buffers (`get_combined_params()[i]`): torch_npu's float32 and
# float16, then bfloat16.
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@dataclass
class _Slice:
    """The parameters of one param group and one dtype, as flat views of the combined buffers."""
    params: list
    param: torch.Tensor
    grad: torch.Tensor
    state: dict = field(default_factory=dict)
    step: int = 0
    # No parameter of the slice had state before this combination (SGD's first step).
    first: bool = False


class NpuFusedOptimizerBase(Optimizer):
    # Whether the per-parameter state has a 'step' count (SGD's does not).
    _tracks_step = True

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        self.is_fused_optimizer = True
        self._forget_combination()

    # What each optimizer defines.
    def _state_names(self, group) -> list:
        """The per-parameter state tensors (shaped like the parameter) this group's step uses."""
        raise NotImplementedError

    def _slice_step(self, group, s: _Slice) -> None:
        """One update of the flat parameter `s.param` from `s.grad` and `s.state`, at step `s.step`."""
        raise NotImplementedError

    def _prepare_step(self) -> None:
        """Work over all the combined buffers before the groups step (LAMB's global norm)."""

    def _forget_combination(self):
        self.is_params_grads_combined = False
        self.is_states_combined = False
        self.params_all_group_combined = [None] * len(_DTYPES)
        self.grads_all_group_combined = [None] * len(_DTYPES)
        self._slices = [[] for _ in self.param_groups]
        self._layout = {}

    def _with_grads(self):
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    def _combination_valid(self) -> bool:
        if not self.is_params_grads_combined:
            return False
        params = self._with_grads()
        if len(params) != len(self._layout):
            return False
        for p in params:
            entry = self._layout.get(id(p))
            if entry is None or entry[0] is not p or entry[1] != p.data_ptr() or entry[2] != p.grad.data_ptr():
                return False
        return True

    def _maybe_init_combined_params_and_grads(self):
        name = type(self).__name__
        by_dtype = {dt: [[] for _ in self.param_groups] for dt in _DTYPES}
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{name} does not support sparse gradients")
                if p.dtype not in by_dtype:
                    raise TypeError(f"{name}: parameters must be float32, float16 or bfloat16, got {p.dtype}")
                if p.grad.dtype != p.dtype or p.grad.shape != p.shape:
                    raise RuntimeError(f"{name}: a gradient must have its parameter's dtype and shape, got "
                                       f"{p.grad.dtype} {tuple(p.grad.shape)} for {p.dtype} {tuple(p.shape)}")
                by_dtype[p.dtype][gi].append(p)
        self._forget_combination()
        for k, dt in enumerate(_DTYPES):
            groups = by_dtype[dt]
            params = [p for ps in groups for p in ps]
            if not params:
                continue
            flat_p = npu_combine_tensors(params)
            flat_g = npu_combine_tensors([p.grad for p in params])
            if flat_p is None:  # only empty parameters
                continue
            self.params_all_group_combined[k], self.grads_all_group_combined[k] = flat_p, flat_g
            start = 0
            for gi, ps in enumerate(groups):
                n = sum(p.numel() for p in ps)
                if n:
                    self._slices[gi].append(_Slice(ps, flat_p[start:start + n], flat_g[start:start + n]))
                start += n
        self._layout = {id(p): (p, p.data_ptr(), p.grad.data_ptr()) for p in self._with_grads()}
        self.is_params_grads_combined = any(t is not None for t in self.params_all_group_combined)

    def _init_state(self, p, group) -> bool:
        """Creates the missing state of `p` (zeros); True when it was missing."""
        state = self.state[p]
        missing = False
        for n in self._state_names(group):
            if n not in state:
                state[n] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                missing = True
            elif not isinstance(state[n], torch.Tensor) or state[n].shape != p.shape:
                raise RuntimeError(f"{type(self).__name__}: state '{n}' of a parameter of shape {tuple(p.shape)} "
                                   f"is not a tensor of that shape")
            else:
                # A loaded state may be strided or on the CPU: a copy of our own to combine.
                state[n] = state[n].to(device=p.device, dtype=p.dtype).contiguous().clone()
        if self._tracks_step:
            state.setdefault("step", 0)
        return missing

    def _maybe_init_combined_states(self):
        for gi, group in enumerate(self.param_groups):
            runs = []
            for s in self._slices[gi]:
                first = [self._init_state(p, group) for p in s.params]
                steps = [int(self.state[p].get("step", 0)) for p in s.params]
                state = {n: npu_combine_tensors([self.state[p][n] for p in s.params]) for n in self._state_names(group)}
                # One update per run of parameters at the same step (a parameter that got its
                # first gradient late has its own bias correction, as in torch.optim).
                start = i = 0
                while i < len(s.params):
                    j = i
                    while j < len(s.params) and (steps[j], first[j]) == (steps[i], first[i]):
                        j += 1
                    n = sum(p.numel() for p in s.params[i:j])
                    runs.append(_Slice(s.params[i:j], s.param[start:start + n], s.grad[start:start + n],
                                       {k: v[start:start + n] for k, v in state.items()}, steps[i], first[i]))
                    start, i = start + n, j
            self._slices[gi] = runs
        self.is_states_combined = True

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self._combination_valid():
            self._maybe_init_combined_params_and_grads()
        if not self.is_states_combined:
            self._maybe_init_combined_states()
        self._prepare_step()
        for group, slices in zip(self.param_groups, self._slices):
            for s in slices:
                s.step += 1
                if self._tracks_step:
                    for p in s.params:
                        self.state[p]["step"] = s.step
                self._slice_step(group, s)
        return loss

    def zero_grad(self, set_to_none: bool = False):
        """Zeroes the gradients in place (their combined buffers stay). As in torch_npu,
        ``set_to_none=True`` is refused: it would drop the combined gradients."""
        if set_to_none:
            raise ValueError(f"{type(self).__name__}.zero_grad: set_to_none=True is not supported by fused "
                             "optimizers (the gradients live in combined buffers); use zero_grad()")
        if self._combination_valid():
            with torch.no_grad():
                for g in self.grads_all_group_combined:
                    if g is not None:
                        g.zero_()
        else:
            super().zero_grad(set_to_none=False)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if hasattr(self, "_slices"):
            self._forget_combination()

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.is_states_combined = False  # combine the loaded state at the next step

    def get_combined_params(self):
        return self.params_all_group_combined

    def get_combined_grads(self):
        return self.grads_all_group_combined

    def clip_grad_norm_fused_(self, max_norm, norm_type=2.0):
        """``torch.nn.utils.clip_grad_norm_`` over the combined gradients; returns the total norm."""
        if not self._combination_valid():
            self._maybe_init_combined_params_and_grads()
        grads = [g for g in self.grads_all_group_combined if g is not None]
        if not grads:
            return torch.tensor(0.0)
        with torch.no_grad():
            norms = torch.stack([torch.linalg.vector_norm(g, float(norm_type), dtype=torch.float32) for g in grads])
            total = torch.linalg.vector_norm(norms, float(norm_type))
            # No host sync: scaling by a clamped coefficient of 1 leaves the gradients as they are.
            coef = (float(max_norm) / (total + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef)
        return total
