// The one boxed kernel behind every op of the Rust op table, and the argument accessors the
// Rust adapters read the stack with. Accessors never throw: Rust frames sit between them and
// the dispatcher, so failures come back as a status and the message is kept in the call context.
#include <ATen/ATen.h>
#include <ATen/Dispatch_v2.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "formats.h"
#include "generator.h"

namespace torch_npu {
namespace {

struct CallCtx {
  const c10::OperatorHandle* op;
  c10::IValue* args;  // the op's arguments: on the boxed stack, or borrowed (call_unboxed)
  size_t nargs;
  std::vector<c10::IValue> results;
  std::vector<std::vector<int64_t>> int_lists;  // owns converted int lists
  int error_status = TNPU_OK;
  std::string error;

  c10::IValue& arg(int i) { return args[static_cast<size_t>(i)]; }
};

CallCtx& ctx_of(void* p) { return *static_cast<CallCtx*>(p); }

int32_t device_type_code(const c10::Device& d) {
  if (d.is_cpu()) return 0;
  if (d.type() == kNpu) return 1;
  return 2;
}

void describe(const at::Tensor& t, TnpuTensor* out) {
  auto* impl = t.unsafeGetTensorImpl();
  out->data = t.has_storage() ? static_cast<char*>(impl->storage().mutable_data()) +
                                    t.storage_offset() * static_cast<int64_t>(t.itemsize())
                              : nullptr;
  out->sizes = t.sizes().data();
  out->strides = t.strides().data();
  out->storage = t.has_storage() ? impl->storage().unsafeGetStorageImpl() : nullptr;
  out->numel = t.numel();
  out->ndim = static_cast<int32_t>(t.dim());
  out->dtype = static_cast<int32_t>(t.scalar_type());
  out->device_type = device_type_code(t.device());
  out->device_index = t.device().index();
  out->is_conj = t.is_conj();
  out->is_neg = t.is_neg();
  out->requires_grad = t.requires_grad();
  out->is_wrapped_number = t.unsafeGetTensorImpl()->is_wrapped_number();
}

template <class F>
int guarded(void* ctx, F&& f) {
  try {
    return f();
  } catch (const c10::OutOfMemoryError& e) {
    ctx_of(ctx).error_status = TNPU_ERR_OOM;
    ctx_of(ctx).error = e.what_without_backtrace();
  } catch (const c10::Error& e) {
    ctx_of(ctx).error_status = TNPU_ERR_RUNTIME;
    ctx_of(ctx).error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    ctx_of(ctx).error_status = TNPU_ERR_RUNTIME;
    ctx_of(ctx).error = e.what();
  }
  return ctx_of(ctx).error_status;
}

struct RustKernel final : public c10::OperatorKernel {
  explicit RustKernel(size_t index) : index_(index) {}

  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
    CallCtx ctx;
    ctx.op = &op;
    ctx.nargs = op.schema().arguments().size();
    const size_t begin = stack->size() - ctx.nargs;
    FormatArgs formats(op, stack, begin, ctx.nargs);
    ctx.args = stack->data() + begin;
    int status = tnpu_op_run(index_, &ctx);
    if (status == TNPU_USE_FALLBACK && ctx.error_status == TNPU_OK && ctx.results.empty()) {
      cpu_fallback(op, stack);
      formats.finish(stack);
      return;
    }
    check_ran(ctx, status);
    torch::jit::drop(*stack, ctx.nargs);
    for (auto& r : ctx.results) stack->push_back(std::move(r));
    formats.finish(stack);
  }

  // Throws the error of a run that failed.
  static void check_ran(const CallCtx& ctx, int status) {
    if (ctx.error_status != TNPU_OK) {
      // An accessor failed (e.g. out of memory allocating an output): report its error.
      if (ctx.error_status == TNPU_ERR_OOM) TORCH_CHECK_WITH(OutOfMemoryError, false, ctx.error);
      TORCH_CHECK(false, ctx.error);
    }
    if (status != TNPU_OK) throw_status(status, "");
  }

 private:
  size_t index_;
};

// The hottest ops are registered unboxed too. Boxing copies each tensor argument into an
// IValue, and a copy of a tensor that Python owns takes the GIL to keep its PyObject alive
// (and again to let go): with the boxing wrapper, a sixth of a small `a + b`. Unboxed, the
// arguments are lent to the Rust adapter as IValues that hold no reference.
c10::IValue lent(const at::Tensor& t) { return c10::IValue(c10::MaybeOwnedTraits<at::Tensor>::createBorrow(t)); }
c10::IValue lent(const c10::Scalar& s) { return c10::IValue(s); }

template <size_t N>
struct Lent {
  std::array<c10::IValue, N> args;
  ~Lent() {
    for (auto& a : args)
      if (a.isTensor()) c10::MaybeOwnedTraits<at::Tensor>::destroyBorrow(a.toTensor());
  }
};

template <class... Args>
at::Tensor call_boxed(size_t index, const c10::OperatorHandle& op, const Args&... args) {
  torch::jit::Stack stack{c10::IValue(args)...};
  RustKernel kernel(index);
  kernel(op, c10::DispatchKeySet(c10::DispatchKey::PrivateUse1), &stack);
  return std::move(stack.back()).toTensor();
}

// Arguments in private formats and ops that fall back to the CPU take the boxed path, which
// handles both.
template <class... Args>
at::Tensor call_unboxed(size_t index, const c10::OperatorHandle& op, const Args&... args) {
  if (any_private_formats()) return call_boxed(index, op, args...);
  Lent<sizeof...(Args)> lent_args{{lent(args)...}};
  CallCtx ctx;
  ctx.op = &op;
  ctx.args = lent_args.args.data();
  ctx.nargs = sizeof...(Args);
  const int status = tnpu_op_run(index, &ctx);
  if (status == TNPU_USE_FALLBACK && ctx.error_status == TNPU_OK && ctx.results.empty())
    return call_boxed(index, op, args...);
  RustKernel::check_ran(ctx, status);
  return std::move(ctx.results.at(0)).toTensor();
}

// Registers `name` unboxed if it is one of the hot ops; false otherwise.
bool register_unboxed(torch::Library& lib, const char* name, size_t index) {
  const std::string full = name;
  const auto dot = full.find('.');
  const auto op = [&] {
    return c10::Dispatcher::singleton().findSchemaOrThrow(("aten::" + full.substr(0, dot)).c_str(),
                                                          full.substr(dot + 1).c_str());
  };
  if (full == "add.Tensor" || full == "sub.Tensor") {
    lib.impl(name, [index, h = op()](const at::Tensor& a, const at::Tensor& b, const c10::Scalar& alpha) {
      return call_unboxed(index, h, a, b, alpha);
    });
    return true;
  }
  if (full == "mul.Tensor" || full == "div.Tensor") {
    lib.impl(name, [index, h = op()](const at::Tensor& a, const at::Tensor& b) { return call_unboxed(index, h, a, b); });
    return true;
  }
  return false;
}

}  // namespace

void register_rust_ops() {
  static auto* lib = new torch::Library(torch::Library::IMPL, "aten",
                                        c10::DispatchKey::PrivateUse1, __FILE__, __LINE__);
  size_t n = tnpu_op_count();
  for (size_t i = 0; i < n; ++i) {
    if (register_unboxed(*lib, tnpu_op_name(i), i)) continue;
    lib->impl(tnpu_op_name(i),
              torch::CppFunction::makeFromBoxedFunctor(std::make_unique<RustKernel>(i)));
  }
}

}  // namespace torch_npu

using torch_npu::ctx_of;
using torch_npu::guarded;

extern "C" {

int tnpu_cx_nargs(void* ctx) { return static_cast<int>(ctx_of(ctx).nargs); }

int tnpu_cx_arg_is_none(void* ctx, int i) { return ctx_of(ctx).arg(i).isNone() ? 1 : 0; }

int tnpu_cx_arg_tensor(void* ctx, int i, TnpuTensor* out) {
  auto& v = ctx_of(ctx).arg(i);
  if (!v.isTensor()) return 0;
  const auto& t = v.toTensor();
  if (!t.defined()) return 0;
  return guarded(ctx, [&] {
           torch_npu::describe(t, out);
           return 0;
         }) == TNPU_OK
             ? 1
             : 0;
}

int64_t tnpu_cx_arg_int(void* ctx, int i) {
  auto& v = ctx_of(ctx).arg(i);
  if (v.isInt()) return v.toInt();
  if (v.isSymInt()) return v.toSymInt().guard_int(__FILE__, __LINE__);
  if (v.isBool()) return v.toBool();
  return 0;
}

double tnpu_cx_arg_double(void* ctx, int i) {
  auto& v = ctx_of(ctx).arg(i);
  if (v.isDouble()) return v.toDouble();
  if (v.isInt()) return static_cast<double>(v.toInt());
  return 0.0;
}

int tnpu_cx_arg_bool(void* ctx, int i) {
  auto& v = ctx_of(ctx).arg(i);
  return v.isBool() && v.toBool() ? 1 : 0;
}

static void scalar_to_raw(const c10::Scalar& s, TnpuScalar* out) {
  *out = TnpuScalar{};
  if (s.isBoolean()) {
    out->tag = 0;
    out->i = s.toBool();
  } else if (s.isIntegral(false)) {
    out->tag = 1;
    out->i = s.toLong();
  } else if (s.isComplex()) {
    auto c = s.toComplexDouble();
    out->tag = 3;
    out->f = c.real();
    out->imag = c.imag();
  } else {
    out->tag = 2;
    out->f = s.toDouble();
  }
}

int tnpu_cx_arg_scalar(void* ctx, int i, TnpuScalar* out) {
  return guarded(ctx, [&] {
    auto& v = ctx_of(ctx).arg(i);
    c10::Scalar s;
    if (v.isTensor()) {
      const auto& t = v.toTensor();
      TORCH_CHECK(t.numel() == 1, "expected a scalar tensor with one element, got ", t.numel());
      if (t.is_cpu() && !t.is_conj() && !t.is_neg()) {
        // A wrapped Python number: read it in place (item() is two more dispatcher trips, about
        // a microsecond, on every `x * 2.0`).
        AT_DISPATCH_V2(t.scalar_type(), "npu_scalar_arg",
                       AT_WRAP([&] { s = c10::Scalar(*t.const_data_ptr<scalar_t>()); }),
                       AT_EXPAND(AT_ALL_TYPES_AND_COMPLEX), c10::kHalf, c10::kBFloat16, c10::kBool);
      } else {
        s = t.item();
      }
    } else {
      s = v.toScalar();
    }
    scalar_to_raw(s, out);
    return 0;
  });
}

int tnpu_cx_arg_int_list(void* ctx, int i, const int64_t** data, size_t* len) {
  return guarded(ctx, [&] {
    auto& c = ctx_of(ctx);
    auto& v = c.arg(i);
    std::vector<int64_t> values;
    if (v.isIntList()) {
      values = v.toIntVector();
    } else if (v.isInt()) {
      values = {v.toInt()};
    } else {
      for (const auto& e : v.toListRef()) values.push_back(e.toSymInt().guard_int(__FILE__, __LINE__));
    }
    c.int_lists.push_back(std::move(values));
    *data = c.int_lists.back().data();
    *len = c.int_lists.back().size();
    return 0;
  });
}

int tnpu_cx_arg_string(void* ctx, int i, char* out, size_t cap) {
  auto& v = ctx_of(ctx).arg(i);
  if (!v.isString()) return -1;
  const auto& str = v.toStringRef();
  std::memcpy(out, str.data(), std::min(cap, str.size()));
  return static_cast<int>(str.size());
}

int tnpu_cx_arg_scalar_list(void* ctx, int i, TnpuScalar* out, size_t cap) {
  int n = -1;
  guarded(ctx, [&] {
    auto& v = ctx_of(ctx).arg(i);
    if (!v.isList()) return 0;
    auto list = v.toListRef();
    for (size_t k = 0; k < list.size() && k < cap; ++k) scalar_to_raw(list[k].toScalar(), &out[k]);
    n = static_cast<int>(list.size());
    return 0;
  });
  return n;
}

void tnpu_cx_pack_results(void* ctx) {
  auto& c = ctx_of(ctx);
  c10::List<at::Tensor> list;
  for (auto& r : c.results) list.push_back(r.toTensor());
  c.results.clear();
  c.results.emplace_back(std::move(list));
}

int tnpu_cx_arg_bool_list(void* ctx, int i, uint8_t* out, size_t cap) {
  auto& v = ctx_of(ctx).arg(i);
  if (!v.isBoolList()) return -1;
  auto list = v.toBoolList();
  for (size_t k = 0; k < list.size() && k < cap; ++k) out[k] = list.get(k) ? 1 : 0;
  return static_cast<int>(list.size());
}

// Tensor?[] arguments (a list whose items may be None).
int tnpu_cx_arg_opt_tensor_list_len(void* ctx, int i) {
  auto& v = ctx_of(ctx).arg(i);
  return v.isList() ? static_cast<int>(v.toListRef().size()) : -1;
}

int tnpu_cx_arg_opt_tensor_list_item(void* ctx, int i, int item, TnpuTensor* out) {
  int found = 0;
  int status = guarded(ctx, [&] {
    auto& v = ctx_of(ctx).arg(i);
    if (!v.isList()) return 0;
    const auto& e = v.toListRef()[static_cast<size_t>(item)];
    if (!e.isTensor() || !e.toTensor().defined()) return 0;
    torch_npu::describe(e.toTensor(), out);
    found = 1;
    return 0;
  });
  return status == TNPU_OK ? found : -1;
}

int tnpu_cx_arg_tensor_list_len(void* ctx, int i) {
  auto& v = ctx_of(ctx).arg(i);
  return v.isTensorList() ? static_cast<int>(v.toTensorList().size()) : -1;
}

int tnpu_cx_arg_tensor_list_item(void* ctx, int i, int item, TnpuTensor* out) {
  int found = 0;
  int status = guarded(ctx, [&] {
    auto& v = ctx_of(ctx).arg(i);
    if (!v.isTensorList()) return 0;
    const at::Tensor t = v.toTensorList().get(static_cast<size_t>(item));
    if (!t.defined()) return 0;
    torch_npu::describe(t, out);
    found = 1;
    return 0;
  });
  return status == TNPU_OK ? found : 0;
}

int tnpu_cx_arg_generator(void* ctx, int i, int32_t device, uint64_t increment, uint64_t* seed,
                          uint64_t* offset) {
  return guarded(ctx, [&] {
    // i < 0: the op has no generator argument; use the device's default generator
    at::Generator gen;
    if (i < 0 || ctx_of(ctx).arg(i).isNone()) {
      gen = torch_npu::default_generator(static_cast<c10::DeviceIndex>(device));
    } else {
      gen = ctx_of(ctx).arg(i).toGenerator();
      TORCH_CHECK(gen.device().type() == torch_npu::kNpu,
                  "Expected a 'npu' device type for generator but found '", gen.device().type(),
                  "'");
    }
    auto* impl = at::check_generator<torch_npu::NpuGeneratorImpl>(gen);
    std::lock_guard<std::mutex> lock(impl->mutex_);
    auto [s, o] = impl->philox_reserve(increment);
    *seed = s;
    *offset = o;
    return 0;
  });
}

int tnpu_cx_new_output(void* ctx, int32_t ndim, const int64_t* sizes, const int64_t* strides,
                       int32_t dtype, int32_t device, TnpuTensor* out) {
  return guarded(ctx, [&] {
    c10::IntArrayRef sz(sizes, static_cast<size_t>(ndim));
    // The allocation itself, without a trip through the dispatcher (at::empty's dispatch cost
    // as much as the rest of a small op's allocation).
    const c10::DeviceGuard guard(c10::Device(torch_npu::kNpu, static_cast<c10::DeviceIndex>(device)));
    std::optional<c10::IntArrayRef> st;
    if (strides) st = c10::IntArrayRef(strides, sz.size());
    at::Tensor t = torch_npu::empty_on_npu(sz, st, static_cast<c10::ScalarType>(dtype), std::nullopt);
    torch_npu::describe(t, out);
    ctx_of(ctx).results.emplace_back(std::move(t));
    return 0;
  });
}

int tnpu_cx_resize_arg(void* ctx, int i, int32_t ndim, const int64_t* sizes, TnpuTensor* out) {
  return guarded(ctx, [&] {
    const at::Tensor& t = ctx_of(ctx).arg(i).toTensor();
    c10::IntArrayRef sz(sizes, static_cast<size_t>(ndim));
    if (t.sizes() != sz) {
      if (t.numel() != 0)
        TORCH_WARN("An output with one or more elements was resized since it had shape ",
                   t.sizes(), ", which does not match the required output shape ", sz, ".");
      t.resize_(sz);
    }
    torch_npu::describe(t, out);
    return 0;
  });
}

int32_t tnpu_cx_default_dtype(void) {
  return static_cast<int32_t>(c10::get_default_dtype_as_scalartype());
}

void tnpu_cx_return_arg(void* ctx, int i) {
  auto& c = ctx_of(ctx);
  c.results.push_back(c.arg(i));
}

void tnpu_cx_return_undefined(void* ctx) { ctx_of(ctx).results.emplace_back(at::Tensor()); }

void tnpu_cx_return_int(void* ctx, int64_t v) { ctx_of(ctx).results.emplace_back(v); }

void tnpu_cx_return_bool(void* ctx, int32_t v) { ctx_of(ctx).results.emplace_back(v != 0); }

}  // extern "C"
