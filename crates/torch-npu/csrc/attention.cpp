// Which kernel scaled_dot_product_attention uses for npu tensors. PyTorch's composite SDPA asks
// `_fused_sdp_choice_stub` for the device; answering "overrideable" routes it to
// `_scaled_dot_product_fused_attention_overrideable` (and its backward), which the Rust op table
// serves with the blocked attention kernel. Anything that kernel does not take goes to the math
// composition, which reports PyTorch's own errors.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/native/transformers/attention.h>
#include <ATen/native/transformers/sdp_utils_cpp.h>
#include <torch/library.h>

namespace torch_npu {
namespace {

bool blocked_kernel_takes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask, bool enable_gqa) {
  if (q.is_nested() || k.is_nested() || v.is_nested()) return false;
  const auto rank = q.dim();
  if ((rank != 3 && rank != 4) || k.dim() != rank || v.dim() != rank) return false;
  if (!at::isFloatingType(q.scalar_type()) || k.scalar_type() != q.scalar_type() ||
      v.scalar_type() != q.scalar_type())
    return false;
  if (mask.has_value() && mask->defined() && mask->dim() > rank) return false;
  if (rank == 4) {
    const auto hq = q.size(1), hk = k.size(1);
    if (v.size(1) != hk) return false;
    if (hq != hk && !(enable_gqa && hk > 0 && hq % hk == 0)) return false;
  }
  return true;
}

int64_t npu_sdp_choice(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const std::optional<at::Tensor>& mask, double /*dropout_p*/,
                       bool /*is_causal*/, std::optional<double> /*scale*/, bool enable_gqa) {
  auto& ctx = at::globalContext();
  if (ctx.userEnabledOverrideableSDP() && blocked_kernel_takes(q, k, v, mask, enable_gqa))
    return static_cast<int64_t>(sdp::SDPBackend::overrideable);
  if (ctx.userEnabledMathSDP()) return static_cast<int64_t>(sdp::SDPBackend::math);
  TORCH_CHECK(false,
              "No available kernel for scaled_dot_product_attention on npu: the overrideable "
              "(npu) and math backends are both disabled or do not take these inputs.");
}

}  // namespace
}  // namespace torch_npu

namespace at::native {
REGISTER_PRIVATEUSE1_DISPATCH(_fused_sdp_choice_stub, &torch_npu::npu_sdp_choice)
}

TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) { m.impl("_fused_sdp_choice", torch_npu::npu_sdp_choice); }
