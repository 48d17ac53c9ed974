// Registrations that need the runtime: called once from the Python module's init.
#include <cstring>
#include <exception>

#include "common.h"

namespace torch_npu {
void register_hooks();
void register_rust_ops();
void register_storage();
}  // namespace torch_npu

extern "C" int tnpu_cx_init(char* err, size_t err_len) {
  try {
    torch_npu::register_hooks();
    torch_npu::register_storage();
    torch_npu::register_rust_ops();
    return TNPU_OK;
  } catch (const std::exception& e) {
    std::strncpy(err, e.what(), err_len - 1);
    err[err_len - 1] = '\0';
    return TNPU_ERR_RUNTIME;
  }
}
