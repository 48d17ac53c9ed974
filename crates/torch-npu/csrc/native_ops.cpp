// Ops that only touch tensor metadata (allocation, views, resize) are registered here in C++:
// they manipulate TensorImpl/StorageImpl, which only C++ can. Everything that computes goes
// through the Rust op table (rust_ops.cpp).
#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <ATen/core/op_registration/adaption.h>
#include <ATen/ops/_reshape_alias_native.h>
#include <ATen/ops/as_strided_native.h>
#include <ATen/ops/resize_native.h>
#include <ATen/ops/unfold_native.h>
#include <ATen/ops/view_native.h>
#include <torch/library.h>

#include "common.h"
#include "formats.h"
#include "storage.h"

namespace torch_npu {

constexpr c10::DispatchKeySet kNpuKeys(c10::DispatchKey::PrivateUse1);

at::Tensor empty_on_npu(c10::IntArrayRef size, std::optional<c10::IntArrayRef> stride,
                        c10::ScalarType dtype, std::optional<c10::MemoryFormat> memory_format) {
  at::detail::check_size_nonnegative(size);
  const size_t itemsize = c10::elementSize(dtype);
  const size_t nbytes = stride ? at::detail::computeStorageNbytes(size, *stride, itemsize)
                               : at::detail::computeStorageNbytesContiguous(size, itemsize);
  c10::Storage storage = make_storage(nbytes);
  if (size.size() == 4 || size.size() == 5) npu_storage(storage).set_plain_label(fmt::plain_label(size.size()));
  at::Tensor t = at::detail::make_tensor<c10::TensorImpl>(std::move(storage), kNpuKeys,
                                                         c10::scalarTypeToTypeMeta(dtype));
  if (stride) {
    t.unsafeGetTensorImpl()->set_sizes_and_strides(size, *stride);
  } else {
    if (size.size() != 1 || size[0] != 0) t.unsafeGetTensorImpl()->set_sizes_contiguous(size);
    if (memory_format) t.unsafeGetTensorImpl()->empty_tensor_restride(*memory_format);
  }
  return t;
}

namespace {

void check_factory_args(std::optional<c10::Layout> layout, std::optional<bool> pin_memory) {
  TORCH_CHECK_NOT_IMPLEMENTED(c10::layout_or_default(layout) == c10::Layout::Strided,
                              "npu tensors support only the strided layout, got ", *layout);
  TORCH_CHECK(!c10::pinned_memory_or_default(pin_memory),
              "Only dense CPU tensors can be pinned (pin_memory=True with an npu device)");
}

at::Tensor empty_memory_format(c10::IntArrayRef size, std::optional<c10::ScalarType> dtype,
                               std::optional<c10::Layout> layout, std::optional<c10::Device> device,
                               std::optional<bool> pin_memory,
                               std::optional<c10::MemoryFormat> memory_format) {
  check_factory_args(layout, pin_memory);
  const c10::DeviceGuard guard(c10::device_or_default(device));
  return empty_on_npu(size, std::nullopt, c10::dtype_or_default(dtype), memory_format);
}

at::Tensor empty_strided(c10::IntArrayRef size, c10::IntArrayRef stride,
                         std::optional<c10::ScalarType> dtype, std::optional<c10::Layout> layout,
                         std::optional<c10::Device> device, std::optional<bool> pin_memory) {
  check_factory_args(layout, pin_memory);
  const c10::DeviceGuard guard(c10::device_or_default(device));
  return empty_on_npu(size, stride, c10::dtype_or_default(dtype), std::nullopt);
}

void sync_current_stream(c10::DeviceIndex device) {
  int64_t stream = 0;
  check(tnpu_rt_current_stream(device, &stream));
  check(tnpu_rt_stream_synchronize(device, stream));
}

// A CPU tensor viewing the same bytes (device memory is host-addressable). It does not order
// anything: read it after the device work that writes `t`. With `keep_alive` it holds t's
// storage (for views that may outlive `t`).
at::Tensor cpu_alias(const at::Tensor& t, bool keep_alive = false) {
  const auto options = t.options().device(at::kCPU);
  if (!keep_alive) return at::from_blob(t.data_ptr(), t.sizes(), t.strides(), options);
  return at::from_blob(t.data_ptr(), t.sizes(), t.strides(), [keep = t.storage()](void*) {}, options);
}

// npu::_host_view: cpu_alias for Python, for the hccl backend's zero-copy staging (Gloo works on
// the device memory in place).
at::Tensor host_view(const at::Tensor& self) {
  TORCH_CHECK(self.device().type() == kNpu, "npu::_host_view: expected an npu tensor, got ", self.device());
  TORCH_CHECK(!has_private_format(self),
              "npu::_host_view: the tensor's storage has a private format; cast it to a plain format first");
  return cpu_alias(self, true);
}

// `.item()`: a synchronization point, so pending device errors surface here.
at::Scalar local_scalar_dense(const at::Tensor& self) {
  const at::Tensor values = plain_values(self);
  sync_current_stream(self.device().index());
  return at::_local_scalar_dense(cpu_alias(values));
}

// out= copies whose destination may have the wrong size.
at::Tensor copy_from_and_resize(const at::Tensor& self, const at::Tensor& dst) {
  if (dst.sizes() != self.sizes()) dst.resize_(self.sizes());
  return at::_copy_from(self, dst, false);
}

// `set_()` with no source: an empty storage on the npu allocator (CPU's would use the CPU one).
at::Tensor& set_empty(at::Tensor& self) {
  const c10::DeviceGuard guard(self.device());
  self.unsafeGetTensorImpl()->set_storage_keep_dtype(make_storage(0));
  self.unsafeGetTensorImpl()->set_sizes_contiguous({0});
  return self;
}

// Metadata-only ops: the CPU kernels only build TensorImpls over the input's storage, so they
// serve npu tensors unchanged, and the result aliases the input as it must.
// A view of a private-format storage must alias plain memory: the storage is made plain first.
void redispatch_to_cpu(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  make_args_plain(op, stack);
  op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CPU), stack);
}

// Metadata ops that may move bytes (resize_ growing, set_ on a storage): the bytes move on the
// host, so wait for the work queued on the current stream first. A grown storage must come
// from self's device, hence the guard.
void sync_then_redispatch_to_cpu(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto nargs = op.schema().arguments().size();
  const at::Tensor& self = (*stack)[stack->size() - nargs].toTensor();
  const c10::DeviceGuard guard(self.device());
  make_args_plain(op, stack);
  sync_current_stream(self.device().index());
  op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CPU), stack);
}

// Tensor.record_stream(s): the caching allocator keeps the block until s's work is done.
void record_stream(at::Tensor& self, c10::Stream stream) {
  TORCH_CHECK(stream.device_type() == kNpu, "record_stream: expected an npu stream, got ",
              stream.device());
  if (self.has_storage() && self.storage().data() != nullptr)
    tnpu_rt_record_stream(self.storage().mutable_data(), stream.device_index(), stream.id());
}

// View ops whose only kernels are per-backend (no CompositeExplicit/Implicit kernel);
// tests/test_views.py checks that this list misses none. The hot ones (every reshape,
// transpose and slice ends in one of them) call the CPU kernels unboxed: boxing the arguments
// and redispatching cost a quarter of a microsecond per view.
const char* const kViewOps[] = {
    "view_as_real",
    "view_as_complex",
};

void plain_for_view(const at::Tensor& self) {
  if (has_private_format(self)) make_plain_in_place(self.storage());
}

at::Tensor view(const at::Tensor& self, c10::SymIntArrayRef size) {
  plain_for_view(self);
  return at::native::view(self, C10_AS_INTARRAYREF_SLOW(size));
}

at::Tensor as_strided(const at::Tensor& self, c10::SymIntArrayRef size, c10::SymIntArrayRef stride,
                      std::optional<c10::SymInt> storage_offset) {
  plain_for_view(self);
  std::optional<int64_t> offset;
  if (storage_offset) offset = storage_offset->guard_int(__FILE__, __LINE__);
  return at::native::as_strided_tensorimpl(self, C10_AS_INTARRAYREF_SLOW(size), C10_AS_INTARRAYREF_SLOW(stride),
                                           offset);
}

at::Tensor reshape_alias(const at::Tensor& self, c10::SymIntArrayRef size, c10::SymIntArrayRef stride) {
  plain_for_view(self);
  return at::native::_reshape_alias(self, C10_AS_INTARRAYREF_SLOW(size), C10_AS_INTARRAYREF_SLOW(stride));
}

at::Tensor unfold(const at::Tensor& self, int64_t dimension, int64_t size, int64_t step) {
  plain_for_view(self);
  return at::native::unfold(self, dimension, size, step);
}

// resize_ changes only metadata while the storage already holds the new size, or while it
// holds no bytes yet (a fresh out= tensor, as every arange(out=) makes): then nothing waits for
// the device. Growing a storage that has bytes copies them on the host, so that first waits
// for the work queued on the current stream.
const at::Tensor& resize_(const at::Tensor& self, c10::SymIntArrayRef size,
                          std::optional<c10::MemoryFormat> memory_format) {
  const c10::DeviceGuard guard(self.device());
  plain_for_view(self);
  const auto sizes = C10_AS_INTARRAYREF_SLOW(size);
  const size_t have = self.storage().nbytes();
  const size_t need = at::detail::computeStorageNbytesContiguous(sizes, self.itemsize(),
                                                                 self.storage_offset());
  if (need > have && have > 0) sync_current_stream(self.device().index());
  return at::native::resize_(self, sizes, memory_format);
}

const char* const kResizeOps[] = {
    "set_.source_Storage",
    "set_.source_Storage_storage_offset",
    "set_.source_Tensor",
};

// Whether `from`'s data may replace `self`'s in place (`param.data = t`, and nn.Module.to, which
// keeps tied parameters tied only when it can). ATen's TensorImpl check knows CPU and CUDA but
// not PrivateUse1, so moving a model to the npu would give each module its own copy of a shared
// weight (GPT-2's tied embedding and head). Dense CPU and npu tensors swap like CPU and CUDA do.
bool has_compatible_shallow_copy_type(const at::Tensor& self, const at::Tensor& from) {
  if (self.unsafeGetTensorImpl()->has_compatible_shallow_copy_type(from.key_set())) return true;
  auto dense = [](const at::Tensor& t) {
    auto ks = t.key_set();
    return ks.has(c10::DispatchKey::Dense) &&
           (ks.has_backend(c10::BackendComponent::CPUBit) ||
            ks.has_backend(c10::BackendComponent::PrivateUse1Bit));
  };
  return dense(self) && dense(from);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(npu, m) { m.def("_host_view(Tensor(a) self) -> Tensor(a)"); }

TORCH_LIBRARY_IMPL(npu, CompositeExplicitAutograd, m) { m.impl("_host_view", host_view); }

TORCH_LIBRARY_IMPL(aten, AutogradPrivateUse1, m) {
  m.impl("_has_compatible_shallow_copy_type", TORCH_FN(has_compatible_shallow_copy_type));
}

TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("_has_compatible_shallow_copy_type", TORCH_FN(has_compatible_shallow_copy_type));
  m.impl("empty.memory_format", empty_memory_format);
  m.impl("empty_strided", empty_strided);
  m.impl("_local_scalar_dense", local_scalar_dense);
  m.impl("set_", set_empty);
  m.impl("_copy_from_and_resize", copy_from_and_resize);
  m.impl("record_stream", record_stream);
  m.impl("view", TORCH_FN(view));
  m.impl("as_strided", TORCH_FN(as_strided));
  m.impl("_reshape_alias", TORCH_FN(reshape_alias));
  m.impl("unfold", TORCH_FN(unfold));
  m.impl("resize_", TORCH_FN(resize_));
  for (const char* name : kViewOps)
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&redispatch_to_cpu>());
  for (const char* name : kResizeOps)
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&sync_then_redispatch_to_cpu>());
}

// Copies resolve conjugate/negative bits themselves; without these fallthroughs the
// Conjugate/Negative fallbacks would call copy again and recurse.
TORCH_LIBRARY_IMPL(aten, Conjugate, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}
TORCH_LIBRARY_IMPL(aten, Negative, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}

}  // namespace torch_npu
