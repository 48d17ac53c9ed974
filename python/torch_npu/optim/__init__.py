"""torch_npu.optim: torch_npu's fused optimizers. Each combines its parameters, gradients and
state into flat buffers per dtype and updates them with a few launches per step."""
from .npu_fused_adadelta import NpuFusedAdadelta
from .npu_fused_adam import NpuFusedAdam
from .npu_fused_adamw import NpuFusedAdamW
from .npu_fused_bert_adam import NpuFusedBertAdam
from .npu_fused_lamb import NpuFusedLamb
from .npu_fused_optim_base import NpuFusedOptimizerBase
from .npu_fused_rmsprop import NpuFusedRMSprop
from .npu_fused_sgd import NpuFusedSGD

__all__ = ["NpuFusedOptimizerBase", "NpuFusedSGD", "NpuFusedAdadelta", "NpuFusedLamb", "NpuFusedAdam",
           "NpuFusedAdamW", "NpuFusedBertAdam", "NpuFusedRMSprop"]
