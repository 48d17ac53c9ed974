// torch_npu's storage formats: npu_format_cast(_), empty_with_format, get_npu_format, and the
// conversions ops need around tensors whose storage holds a private format (formats.h). The
// layouts themselves are in Rust (tnpu_format_*).
#include "formats.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/clone_native.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "common.h"

namespace torch_npu {
namespace {

constexpr int kMaxStorageDims = 16;

// torch.npu.config.allow_internal_format: off (torch_npu's default on Atlas A2), casts to a
// private format give the base format instead.
std::atomic<bool> g_allow_internal_format{false};

bool internal_format_allowed() { return g_allow_internal_format.load(); }
void set_internal_format_allowed(bool allow) { g_allow_internal_format.store(allow); }

std::vector<int64_t> storage_shape(int64_t format, c10::ScalarType dtype, c10::IntArrayRef sizes) {
  int64_t out[kMaxStorageDims];
  int32_t n = 0;
  check(tnpu_format_storage_shape(format, static_cast<int32_t>(dtype), static_cast<int32_t>(sizes.size()),
                                  sizes.data(), out, kMaxStorageDims, &n));
  return std::vector<int64_t>(out, out + n);
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// The plain format whose logical shape `format` lays out (torch_npu's base format).
int64_t base_format(int64_t format, size_t rank) {
  switch (format) {
    case 1: case 3: case 4: return fmt::NCHW;            // NHWC, NC1HWC0, FRACTAL_Z
    case 27: case 32: case 33: return fmt::NCDHW;        // NDHWC, NDC1HWC0, FRACTAL_Z_3D
    case 29: return fmt::ND;                             // FRACTAL_NZ
    default: return fmt::is_plain(format) ? format : (rank == 4 ? fmt::NCHW : fmt::ND);
  }
}

void convert(bool into_storage, int64_t format, const at::Tensor& t, void* storage) {
  check(tnpu_format_convert(into_storage ? 1 : 0, format, t.device().index(), storage, t.data_ptr(),
                            static_cast<int32_t>(t.scalar_type()), static_cast<int32_t>(t.dim()),
                            t.sizes().data(), t.strides().data()));
}

// A contiguous tensor of `sizes` over the whole of `storage` (no dispatch, no sync).
at::Tensor alias_of(const c10::Storage& storage, c10::IntArrayRef sizes, c10::ScalarType dtype) {
  at::Tensor t = at::detail::make_tensor<c10::TensorImpl>(c10::Storage(storage),
                                                         c10::DispatchKeySet(c10::DispatchKey::PrivateUse1),
                                                         c10::scalarTypeToTypeMeta(dtype));
  t.unsafeGetTensorImpl()->set_sizes_contiguous(sizes);
  return t;
}

// Whether `t` is the whole logical tensor its storage's format lays out (not a view of it).
bool canonical(const at::Tensor& t, const NpuStorageDesc& d) {
  return t.sizes() == c10::IntArrayRef(d.base_sizes) && t.scalar_type() == d.dtype &&
         t.storage_offset() == 0 && t.is_contiguous();
}

void check_npu(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.defined() && t.device().type() == kNpu, op, ": expected an npu tensor, got one on ",
              t.defined() ? t.device().str() : std::string("no device (undefined)"));
}

// Re-lays a plain storage out in `format`, in place; false when its bytes cannot hold it.
bool make_private_in_place(const at::Tensor& t, int64_t format) {
  auto& impl = npu_storage(t.storage());
  const NpuStorageDesc& d = impl.desc();
  if (d.is_private() || !t.is_contiguous() || t.storage_offset() != 0) return false;
  auto shape = storage_shape(format, t.scalar_type(), t.sizes());
  const size_t bytes = static_cast<size_t>(numel_of(shape)) * t.itemsize();
  if (impl.nbytes() < bytes) return false;
  const c10::DeviceGuard guard(t.device());
  at::Tensor values = t.clone();  // on the stream, before the layout changes
  impl.set_desc(NpuStorageDesc{format, t.sizes().vec(), shape, t.scalar_type()});
  convert(true, format, values, impl.mutable_data());
  return true;
}

// The format a cast to `acl_format` gives under the current allow_internal_format setting.
int64_t allowed_format(int64_t acl_format, c10::ScalarType dtype, c10::IntArrayRef sizes) {
  storage_shape(acl_format, dtype, sizes);  // rejects unknown codes and impossible ranks
  if (fmt::is_plain(acl_format) || internal_format_allowed()) return acl_format;
  TORCH_WARN_ONCE("npu_format_cast: private format ", acl_format,
                  " requested while torch.npu.config.allow_internal_format is False; the tensor keeps "
                  "its base format. Set torch.npu.config.allow_internal_format = True to use private formats.");
  return base_format(acl_format, sizes.size());
}

// torch_npu.npu_format_cast(self, acl_format): self's values in a new storage of that format
// (self itself when it already has it).
at::Tensor npu_format_cast(const at::Tensor& self, int64_t acl_format) {
  check_npu(self, "npu_format_cast");
  acl_format = allowed_format(acl_format, self.scalar_type(), self.sizes());
  const NpuStorageDesc& d = storage_desc(self.storage());
  if (d.format == acl_format && (!d.is_private() || canonical(self, d))) return self;
  const c10::DeviceGuard guard(self.device());
  at::Tensor src = plain_values(self);
  if (fmt::is_plain(acl_format)) {
    at::Tensor out = at::empty(self.sizes(), self.options());
    out.copy_(src);
    auto& impl = npu_storage(out.storage());
    impl.set_desc(NpuStorageDesc{acl_format, out.sizes().vec(), out.sizes().vec(), out.scalar_type()});
    return out;
  }
  auto shape = storage_shape(acl_format, self.scalar_type(), self.sizes());
  c10::Storage storage = make_storage(static_cast<size_t>(numel_of(shape)) * self.itemsize());
  npu_storage(storage).set_desc(NpuStorageDesc{acl_format, self.sizes().vec(), shape, self.scalar_type()});
  at::Tensor out = alias_of(storage, self.sizes(), self.scalar_type());
  convert(true, acl_format, src, storage.mutable_data());
  return out;
}

// torch_npu.npu_format_cast_(self, acl_format): self now holds a storage of that format.
at::Tensor& npu_format_cast_(at::Tensor& self, int64_t acl_format) {
  at::Tensor r = npu_format_cast(self, acl_format);
  if (!r.is_same(self)) {
    self.unsafeGetTensorImpl()->set_storage_keep_dtype(r.storage());
    self.unsafeGetTensorImpl()->set_storage_offset(0);
    self.unsafeGetTensorImpl()->set_sizes_contiguous(r.sizes());
  }
  return self;
}

at::Tensor& npu_format_cast_src_(at::Tensor& self, const at::Tensor& src) {
  check_npu(src, "npu_format_cast_");
  return npu_format_cast_(self, storage_desc(src.storage()).format);
}

int64_t get_npu_format(const at::Tensor& self) {
  check_npu(self, "get_npu_format");
  return storage_desc(self.storage()).format;
}

// torch_npu.empty_with_format(size, ..., acl_format): an uninitialized tensor of that format.
at::Tensor empty_with_format(c10::IntArrayRef size, std::optional<c10::ScalarType> dtype,
                             std::optional<c10::Layout> layout, std::optional<c10::Device> device,
                             std::optional<bool> pin_memory, int64_t acl_format) {
  TORCH_CHECK(c10::layout_or_default(layout) == c10::Layout::Strided,
              "empty_with_format: npu tensors support only the strided layout");
  TORCH_CHECK(!c10::pinned_memory_or_default(pin_memory), "empty_with_format: npu tensors cannot be pinned");
  auto dev = device.value_or(c10::Device(kNpu, static_cast<c10::DeviceIndex>(tnpu_rt_get_device())));
  TORCH_CHECK(dev.type() == kNpu, "empty_with_format: expected an npu device, got ", dev);
  const c10::DeviceGuard guard(dev);
  at::detail::check_size_nonnegative(size);
  const auto st = c10::dtype_or_default(dtype);
  acl_format = allowed_format(acl_format, st, size);
  auto shape = storage_shape(acl_format, st, size);
  c10::Storage storage = make_storage(static_cast<size_t>(numel_of(shape)) * c10::elementSize(st));
  npu_storage(storage).set_desc(NpuStorageDesc{acl_format, size.vec(), shape, st});
  return alias_of(storage, size, st);
}

// The storage shape of an npu tensor's storage (torch_npu's storage sizes, padding included).
std::vector<int64_t> npu_storage_shape(const at::Tensor& self) {
  check_npu(self, "npu_storage_shape");
  const NpuStorageDesc& d = storage_desc(self.storage());
  if (d.is_private()) return d.storage_sizes;
  // Plain storages keep no shape: the tensor's own when it spans the storage, else elements.
  const int64_t elems = static_cast<int64_t>(self.storage().nbytes() / self.itemsize());
  if (self.is_contiguous() && self.storage_offset() == 0 && self.numel() == elems) return self.sizes().vec();
  return {elems};
}

bool has_private_format_op(const at::Tensor& self) { return has_private_format(self); }

// clone keeps a private format, as torch_npu's does; other tensors clone as everywhere.
at::Tensor clone(const at::Tensor& self, std::optional<c10::MemoryFormat> memory_format) {
  if (has_private_format(self)) {
    const NpuStorageDesc& d = storage_desc(self.storage());
    if (canonical(self, d)) {
      const int64_t format = d.format;
      return npu_format_cast(plain_values(self), format);
    }
  }
  return at::native::clone(self, memory_format);
}

}  // namespace

bool has_private_format(const at::Tensor& t) {
  // The count first: while no storage is private (the usual case) nothing else is looked at.
  return any_private_formats() && t.defined() && t.device().type() == kNpu && t.has_storage() &&
         storage_desc(t.storage()).is_private();
}

void make_plain_in_place(const c10::Storage& storage) {
  auto& impl = npu_storage(storage);
  const NpuStorageDesc d = impl.desc();
  if (!d.is_private()) return;
  const c10::DeviceGuard guard(storage.device());
  at::Tensor values = at::empty(d.base_sizes, at::TensorOptions().dtype(d.dtype).device(storage.device()));
  convert(false, d.format, values, impl.mutable_data());
  impl.set_desc(NpuStorageDesc{base_format(d.format, d.base_sizes.size()), d.base_sizes, d.base_sizes, d.dtype});
  alias_of(storage, d.base_sizes, d.dtype).copy_(values);
}

at::Tensor plain_values(const at::Tensor& t) {
  if (!has_private_format(t)) return t;
  const NpuStorageDesc& d = storage_desc(t.storage());
  if (!canonical(t, d)) {
    // A view of the storage under another shape or dtype: make the storage itself plain.
    make_plain_in_place(t.storage());
    return t;
  }
  const c10::DeviceGuard guard(t.device());
  at::Tensor values = at::empty(d.base_sizes, t.options());
  convert(false, d.format, values, npu_storage(t.storage()).mutable_data());
  return values;
}

void make_args_plain(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  if (!any_private_formats()) return;
  const size_t nargs = op.schema().arguments().size();
  for (size_t i = stack->size() - nargs; i < stack->size(); ++i) {
    const auto& v = (*stack)[i];
    if (v.isTensor() && has_private_format(v.toTensor())) make_plain_in_place(v.toTensor().storage());
    if (v.isStorage() && v.toStorage().device().type() == kNpu) make_plain_in_place(v.toStorage());
  }
}

FormatArgs::FormatArgs(const c10::OperatorHandle& op, torch::jit::Stack* stack, size_t begin, size_t nargs) {
  if (!any_private_formats()) return;
  const auto& schema = op.schema();
  const auto& name = schema.name();
  const bool copy = name == "aten::_copy_from" || name == "aten::_copy_from_and_resize";
  for (size_t i = 0; i < nargs; ++i) {
    const auto& arg = schema.arguments()[i];
    const bool writes = (arg.alias_info() && arg.alias_info()->isWrite()) || (copy && i == 1);
    auto& v = (*stack)[begin + i];
    if (v.isTensor() || v.isTensorList() || v.isOptionalTensorList()) v = convert(v, writes);
  }
}

at::Tensor FormatArgs::convert_tensor(const at::Tensor& t, bool writes) {
  if (!has_private_format(t)) return t;
  const NpuStorageDesc& d = storage_desc(t.storage());
  if (!writes && canonical(t, d)) {
    at::Tensor copy = plain_values(t);
    replaced_.push_back({t, copy});
    return copy;
  }
  const int64_t format = d.format;
  const bool whole = canonical(t, d);
  make_plain_in_place(t.storage());
  if (writes && whole) written_.push_back({t, format});
  return t;
}

at::IValue FormatArgs::convert(const at::IValue& v, bool writes) {
  if (v.isTensor()) return convert_tensor(v.toTensor(), writes);
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorList()) out.push_back(convert_tensor(t, writes));
    return out;
  }
  c10::List<std::optional<at::Tensor>> out;
  for (const std::optional<at::Tensor>& t : v.toOptionalTensorList())
    out.push_back(t.has_value() ? std::optional<at::Tensor>(convert_tensor(*t, writes)) : t);
  return out;
}

void FormatArgs::finish(torch::jit::Stack* stack) {
  for (auto& w : written_) {
    const NpuStorageDesc& d = storage_desc(w.tensor.storage());
    // Unless the op resized it, the written tensor goes back to its format.
    if (!d.is_private() && w.tensor.sizes() == c10::IntArrayRef(d.base_sizes)) make_private_in_place(w.tensor, w.format);
  }
  if (replaced_.empty()) return;
  for (auto& r : *stack) {
    if (!r.isTensor()) continue;
    for (auto& rep : replaced_)
      if (r.toTensor().is_same(rep.copy)) r = rep.original;
  }
}

TORCH_LIBRARY(npu, m) {
  m.def("get_npu_format(Tensor self) -> int");
  m.def("npu_format_cast(Tensor self, int acl_format) -> Tensor");
  m.def("npu_format_cast_.acl_format(Tensor(a!) self, int acl_format) -> Tensor(a!)");
  m.def("npu_format_cast_(Tensor(a!) self, Tensor src) -> Tensor(a!)");
  m.def("empty_with_format(int[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, "
        "bool? pin_memory=None, int acl_format=2) -> Tensor");
  m.def("npu_storage_shape(Tensor self) -> int[]");
  m.def("has_private_format(Tensor self) -> bool");
  m.def("_internal_format_allowed() -> bool");
  m.def("_set_internal_format_allowed(bool allow) -> ()");
}

TORCH_LIBRARY_IMPL(npu, CatchAll, m) {
  m.impl("_internal_format_allowed", internal_format_allowed);
  m.impl("_set_internal_format_allowed", set_internal_format_allowed);
}

// Registered for every backend so that a tensor of another device gets a clear error.
TORCH_LIBRARY_IMPL(npu, CompositeExplicitAutograd, m) {
  m.impl("get_npu_format", get_npu_format);
  m.impl("npu_storage_shape", npu_storage_shape);
  m.impl("has_private_format", has_private_format_op);
  m.impl("npu_format_cast_.acl_format", npu_format_cast_);
  m.impl("npu_format_cast_", npu_format_cast_src_);
}

TORCH_LIBRARY_IMPL(npu, PrivateUse1, m) { m.impl("npu_format_cast", npu_format_cast); }
// CPU tensors have no storage format: a clear error rather than a missing-kernel one.
TORCH_LIBRARY_IMPL(npu, CPU, m) { m.impl("npu_format_cast", npu_format_cast); }
TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) { m.impl("clone", clone); }
TORCH_LIBRARY_IMPL(npu, BackendSelect, m) { m.impl("empty_with_format", empty_with_format); }

}  // namespace torch_npu
