#include "common.h"

namespace torch_npu {

void throw_status(int status, const std::string& context) {
  std::string msg = tnpu_rt_last_error();
  if (!context.empty()) msg = context + ": " + msg;
  switch (status) {
    case TNPU_ERR_OOM:
      TORCH_CHECK_WITH(OutOfMemoryError, false, msg);
    case TNPU_ERR_INDEX:
      TORCH_CHECK_WITH(IndexError, false, msg);
    case TNPU_ERR_VALUE:
      TORCH_CHECK_WITH(ValueError, false, msg);
    case TNPU_ERR_TYPE:
      TORCH_CHECK_WITH(TypeError, false, msg);
    case TNPU_ERR_NOT_IMPLEMENTED:
      TORCH_CHECK_WITH(NotImplementedError, false, msg);
    default:
      TORCH_CHECK(false, msg);
  }
}

}  // namespace torch_npu
