// One backward pass on an npu device's autograd engine thread, built and run entirely in C++ so
// that no tensor or graph task of it holds a Python object. python/torch_npu/_exit.py runs it at
// interpreter exit: the engine thread serves its queue in order and releases each finished graph
// task (and the Python objects those hold, which needs the GIL) before taking the next, so once
// this pass returns, no engine thread will touch Python while the interpreter finalizes.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstring>
#include <exception>

#include "common.h"

extern "C" int tnpu_cx_drain_autograd(int32_t device, char* err, size_t err_len) {
  try {
    c10::AutoGradMode grad_mode(true);
    auto options = at::TensorOptions().device(c10::Device(torch_npu::kNpu, static_cast<c10::DeviceIndex>(device)));
    at::Tensor x = at::zeros({}, options).requires_grad_(true);
    at::Tensor y = x * 2;
    torch::autograd::backward({y}, {at::ones({}, options)});
    return TNPU_OK;
  } catch (const std::exception& e) {
    std::strncpy(err, e.what(), err_len - 1);
    err[err_len - 1] = '\0';
    return TNPU_ERR_RUNTIME;
  }
}
