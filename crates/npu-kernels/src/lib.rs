//! npu-kernels: the op library of the software NPU.
//!
//! Kernels take [`View`]s (raw pointer, dtype, sizes, strides in elements) into memory the caller
//! owns, and compute with PyTorch's CPU semantics. No torch types, no streams: the runtime
//! decides when a kernel runs, the kernel only computes. Large work is split on rayon's global
//! pool; results never depend on the split.
//!
//! Kernels never panic on bad input: they return a [`KernelError`] whose message reads like
//! PyTorch's for the same mistake.

mod activation;
mod amp;
mod advanced_index;
mod attention;
mod argreduce;
mod binary;
mod binary_bf16;
mod conv;
mod convert;
mod copy;
mod counting;
mod dense;
mod cpu;
mod dtype;
mod elementwise;
mod embedding_bag;
mod fill;
mod format;
mod gather;
mod gemm_amx;
mod gemm_bf16;
mod gemm_f16;
mod gemm_split;
mod loss;
mod lanes;
mod math;
mod matmul;
mod norm;
mod pad;
mod pairwise;
mod optim;
mod philox;
mod pool;
mod random;
mod reduce;
mod scalar;
mod scratch;
mod scan;
mod scatter;
mod search;
mod select;
mod simd;
mod softmax;
mod sort;
mod ternary;
mod tri;
mod upsample;
mod upsample_u8;
mod unary;
mod unique;
mod variance;
mod view;
mod winograd;

pub use advanced_index::{index_gather, index_put, index_result_shape};
pub use activation::{activation, activation_backward, Activation, ActivationGrad};
pub use attention::{attention_backward, attention_forward, attention_reference, AttentionDropout, AttentionParams};
pub use argreduce::{arg_reduce, reduce_with_index};
pub use binary::{binary, binary_scalar, clamp_scalar, where_, BinaryOp};
pub use convert::{f32_to_bf16, Bool8, Complex, Element};
pub use embedding_bag::{embedding_bag, embedding_bag_backward, embedding_bag_psw_backward, BagMode, BagSpec};
pub use conv::{conv_backward, conv_forward, conv_output_sizes, ConvParams};
pub use copy::copy;
pub use counting::{bincount, bincount_size, histc, repeat_index, repeat_total};
pub use dtype::DType;
pub use fill::{arange, fill, linspace};
pub use format::{format_storage_shape, from_format, to_format, Format};
pub use gather::{index_add, index_select};
pub use loss::{nll_loss, nll_loss_backward, Reduction};
pub use matmul::matmul;
pub use amp::{check_unscale_target, unscale_and_check, update_scale};
pub use optim::{fused_adam, fused_layout, fused_sgd, AdamConfig, SgdConfig};
pub use pad::{pad, pad_backward, PadMode};
pub use pairwise::{log_sigmoid, log_sigmoid_backward, pair_backward, pair_loss, pair_loss_reduced, PairGrad, PairLoss};
pub use norm::{batch_norm, batch_norm_backward, group_norm, group_norm_backward, layer_norm, layer_norm_backward};
pub use philox::{philox4x32_10, PhiloxStream};
pub use pool::{adaptive_avg_pool, adaptive_max_pool, avg_pool, avg_pool_backward, max_pool, max_pool_backward, PoolParams};
pub use random::{
    bernoulli_scalar, bernoulli_tensor, cauchy, exponential, geometric, log_normal, normal,
    normal_tensor, random_from_to, random_full, randperm, uniform,
};
pub use reduce::{reduce, reduce_norm, ReduceOp};
pub use scalar::Scalar;
pub use scan::{scan, ScanOp};
pub use search::searchsorted;
pub use scatter::{check_index_shapes, gather, scatter, ScatterReduce, ScatterSrc};
pub use softmax::{softmax, softmax_backward};
pub use sort::{sort, topk};
pub use select::{count_nonzero, isin, masked_scatter, masked_select, nonzero};
pub use ternary::{ternary, TernaryOp, Third};
pub use tri::triangle;
pub use unary::{nan_to_num, unary, UnaryOp};
pub use unique::{unique_groups, unique_values, UniqueGroups};
pub use upsample::{upsample, upsample_backward, Interp};
pub use upsample_u8::upsample_u8;
pub use variance::variance;
pub use view::{for_each_parallel, with_sequential, View};

/// A kernel failure, with a PyTorch-style message.
#[derive(Debug, Clone)]
pub struct KernelError(pub String);

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}
