// CPU fallback for ops without an NPU kernel. The software NPU's memory is host-addressable,
// so the op runs on CPU tensors that alias the device storages: no copies in, and in-place
// writes land directly in device memory. New results are copied into fresh npu tensors.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "formats.h"

namespace torch_npu {
namespace {

bool is_npu(const at::Tensor& t) { return t.defined() && t.device().type() == kNpu; }

// Ops that legitimately take CPU tensors beside npu ones (as on CUDA: CPU index tensors).
bool allows_cpu_tensors(const std::string& name) {
  return name.rfind("aten::index", 0) == 0 || name.rfind("aten::_index_put_impl_", 0) == 0;
}

class Fallback {
 public:
  Fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack)
      : op_(op), schema_(op.schema()), stack_(stack) {
    name_ = schema_.name();
    if (!schema_.overload_name().empty()) name_ += "." + schema_.overload_name();
    nargs_ = schema_.arguments().size();
    begin_ = stack_->size() - nargs_;
  }

  void run() {
    // Mixed devices are the caller's mistake whatever the fallback setting: say so first.
    check_devices();
    if (tnpu_fallback_disabled())
      TORCH_CHECK_NOT_IMPLEMENTED(false, "The operator '", name_,
                                  "' has no NPU kernel and the CPU fallback is disabled "
                                  "(TORCH_NPU_FALLBACK_CPU_DISABLE=1).");
    if (tnpu_fallback_note(name_.c_str()))
      TORCH_WARN("The operator '", name_,
                 "' is not supported on the NPU and falls back to the CPU. "
                 "This may hurt performance.");
    device_ = device_.value_or(c10::Device(kNpu, static_cast<c10::DeviceIndex>(tnpu_rt_get_device())));
    // New results and resized outputs must be allocated on the op's device.
    const c10::DeviceGuard guard(*device_);
    int64_t stream = 0;
    check(tnpu_rt_current_stream(device_->index(), &stream));
    check(tnpu_rt_stream_synchronize(device_->index(), stream));

    std::vector<c10::IValue> originals(stack_->begin() + begin_, stack_->end());
    std::vector<std::pair<at::Tensor, at::Tensor>> outs;  // (npu out argument, CPU stand-in)
    for (size_t i = 0; i < nargs_; ++i) {
      auto& v = (*stack_)[begin_ + i];
      const auto& arg = schema_.arguments()[i];
      if (v.isTensor()) {
        const auto& t = v.toTensor();
        if (!is_npu(t)) continue;
        if (arg.is_out()) {
          // out= tensors may need resizing, which an alias of device memory cannot do.
          at::Tensor stand_in = at::empty({0}, t.options().device(at::kCPU));
          outs.emplace_back(t, stand_in);
          v = stand_in;
        } else {
          v = to_cpu(t);
        }
      } else if (v.isTensorList()) {
        auto list = v.toTensorList();
        c10::List<at::Tensor> cpu;
        for (const at::Tensor& t : list) cpu.push_back(is_npu(t) ? to_cpu(t) : t);
        v = cpu;
      } else if (v.isOptionalTensorList()) {
        auto list = v.toOptionalTensorList();
        c10::List<std::optional<at::Tensor>> cpu;
        for (const std::optional<at::Tensor>& t : list)
          cpu.push_back(t.has_value() && is_npu(*t) ? std::optional<at::Tensor>(to_cpu(*t)) : t);
        v = cpu;
      } else if (v.isDevice() && v.toDevice().type() == kNpu) {
        v = c10::Device(at::kCPU);
      }
    }

    op_.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CPU), stack_);

    for (auto& [npu, cpu] : outs) {
      if (npu.sizes() != cpu.sizes()) npu.resize_(cpu.sizes());
      cpu_alias(npu).copy_(cpu);
    }
    const auto& rets = schema_.returns();
    size_t rbegin = stack_->size() - rets.size();
    for (size_t j = 0; j < rets.size(); ++j) {
      auto& r = (*stack_)[rbegin + j];
      if (auto k = aliased_argument(rets[j])) {
        r = originals[*k];
      } else if (r.isTensor()) {
        r = to_npu(r.toTensor());
      } else if (r.isTensorList()) {
        c10::List<at::Tensor> npu;
        for (const at::Tensor& t : r.toTensorList()) npu.push_back(to_npu(t));
        r = npu;
      }
    }
  }

 private:
  void check_devices() {
    bool cpu_ok = allows_cpu_tensors(name_);
    std::optional<c10::Device> cpu_seen;
    auto see = [&](const at::Tensor& t) {
      if (!t.defined()) return;
      if (is_npu(t)) {
        TORCH_CHECK(!device_ || *device_ == t.device(),
                    "Expected all tensors to be on the same device, but found at least two "
                    "devices, ", *device_, " and ", t.device(), "! (when checking arguments for ",
                    name_, ")");
        device_ = t.device();
      } else if (t.device().is_cpu() && t.dim() > 0 && !cpu_ok) {
        cpu_seen = t.device();
      }
    };
    for (size_t i = begin_; i < stack_->size(); ++i) {
      const auto& v = (*stack_)[i];
      if (v.isTensor()) {
        see(v.toTensor());
      } else if (v.isTensorList()) {
        for (const at::Tensor& t : v.toTensorList()) see(t);
      } else if (v.isOptionalTensorList()) {
        for (const std::optional<at::Tensor>& t : v.toOptionalTensorList())
          if (t.has_value()) see(*t);
      } else if (v.isDevice() && v.toDevice().type() == kNpu && !device_) {
        device_ = v.toDevice();
      }
    }
    TORCH_CHECK(!(device_ && cpu_seen),
                "Expected all tensors to be on the same device, but found at least two devices, ",
                *device_, " and cpu! (when checking arguments for ", name_, ")");
  }

  static at::Tensor cpu_alias(const at::Tensor& t) {
    return at::from_blob(t.data_ptr(), t.sizes(), t.strides(), t.options().device(at::kCPU));
  }

  // One CPU storage per device storage, so that arguments sharing memory still share it.
  at::Tensor to_cpu(const at::Tensor& t) {
    auto* impl = t.storage().unsafeGetStorageImpl();
    auto it = cpu_storages_.find(impl);
    if (it == cpu_storages_.end()) {
      void* data = impl->mutable_data();
      c10::Storage s(c10::Storage::use_byte_size_t(), impl->nbytes(),
                     c10::DataPtr(data, data, nullptr, c10::Device(at::kCPU)), nullptr, false);
      it = cpu_storages_.emplace(impl, std::make_pair(s, t.storage())).first;
    }
    return at::empty({0}, t.options().device(at::kCPU))
        .set_(it->second.first, t.storage_offset(), t.sizes(), t.strides());
  }

  at::Tensor to_npu(const at::Tensor& t) {
    if (!t.defined() || !t.device().is_cpu()) return t;
    // A view of an argument's memory stays a view of the device storage.
    for (auto& [impl, pair] : cpu_storages_) {
      if (t.has_storage() && t.storage().unsafeGetStorageImpl() == pair.first.unsafeGetStorageImpl()) {
        return at::empty({0}, t.options().device(*device_))
            .set_(pair.second, t.storage_offset(), t.sizes(), t.strides());
      }
    }
    auto options = t.options().device(*device_);
    at::Tensor out = t.is_non_overlapping_and_dense()
                         ? at::empty_strided(t.sizes(), t.strides(), options)
                         : at::empty(t.sizes(), options);
    cpu_alias(out).copy_(t);
    return out;
  }

  std::optional<size_t> aliased_argument(const c10::Argument& ret) const {
    const auto* info = ret.alias_info();
    if (!info || !info->isWrite()) return std::nullopt;
    const auto& args = schema_.arguments();
    for (size_t k = 0; k < args.size(); ++k) {
      const auto* a = args[k].alias_info();
      if (a && a->beforeSets() == info->beforeSets()) return k;
    }
    return std::nullopt;
  }

  const c10::OperatorHandle& op_;
  const c10::FunctionSchema& schema_;
  torch::jit::Stack* stack_;
  std::string name_;
  size_t nargs_ = 0, begin_ = 0;
  std::optional<c10::Device> device_;
  std::unordered_map<c10::StorageImpl*, std::pair<c10::Storage, c10::Storage>> cpu_storages_;
};

}  // namespace

void cpu_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const size_t nargs = op.schema().arguments().size();
  FormatArgs formats(op, stack, stack->size() - nargs, nargs);
  Fallback(op, stack).run();
  formats.finish(stack);
}

TORCH_LIBRARY_IMPL(_, PrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&cpu_fallback>());
}

}  // namespace torch_npu
