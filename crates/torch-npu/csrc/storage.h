#pragma once
#include <c10/core/ScalarType.h>
#include <c10/core/Storage.h>
#include <c10/core/StorageImpl.h>

#include <atomic>
#include <vector>

namespace torch_npu {

// torch_npu's storage format codes (ACL_FORMAT_*). The plain ones (ND, NCHW, NCDHW, NCL) hold
// the elements in row-major order of the logical shape; the others are private layouts (see
// crates/npu-kernels/src/format.rs), which every op reads through a plain copy.
namespace fmt {
constexpr int64_t NCHW = 0, NHWC = 1, ND = 2, NCDHW = 30, NCL = 47;
inline bool is_plain(int64_t f) { return f == ND || f == NCHW || f == NCDHW || f == NCL; }
// The format a new plain tensor of this rank is labelled with (as torch_npu guesses it).
inline int64_t plain_label(size_t rank) { return rank == 4 ? NCHW : rank == 5 ? NCDHW : ND; }
}  // namespace fmt

// What the NPU knows about a storage beyond its bytes (torch_npu's NPUStorageDesc): its format,
// the logical shape and dtype the format lays out, and the shape of the storage itself.
struct NpuStorageDesc {
  int64_t format = fmt::ND;
  std::vector<int64_t> base_sizes;
  std::vector<int64_t> storage_sizes;
  c10::ScalarType dtype = c10::ScalarType::Byte;
  bool is_private() const { return !fmt::is_plain(format); }
};

// How many storages hold a private format now: while there are none, ops skip looking.
extern std::atomic<int64_t> g_private_storages;

struct NpuStorageImpl final : public c10::StorageImpl {
  NpuStorageImpl(use_byte_size_t, size_t size_bytes, c10::DataPtr data_ptr, c10::Allocator* allocator,
                 bool resizable)
      : c10::StorageImpl(use_byte_size_t(), size_bytes, std::move(data_ptr), allocator, resizable) {
    desc_.base_sizes = {static_cast<int64_t>(size_bytes)};
    desc_.storage_sizes = desc_.base_sizes;
  }
  ~NpuStorageImpl() override {
    if (desc_.is_private()) g_private_storages.fetch_sub(1, std::memory_order_relaxed);
  }
  const NpuStorageDesc& desc() const { return desc_; }
  // Labels a plain storage with another plain format (no sizes: plain layouts need none).
  void set_plain_label(int64_t format) {
    if (!desc_.is_private() && fmt::is_plain(format)) desc_.format = format;
  }
  // Replaces the descriptor, keeping the count of private storages.
  void set_desc(NpuStorageDesc d) {
    if (d.is_private() != desc_.is_private())
      g_private_storages.fetch_add(d.is_private() ? 1 : -1, std::memory_order_relaxed);
    desc_ = std::move(d);
  }

 private:
  NpuStorageDesc desc_;
};

// The storage impl of an npu storage (every npu storage is an NpuStorageImpl).
NpuStorageImpl& npu_storage(const c10::Storage& storage);
inline const NpuStorageDesc& storage_desc(const c10::Storage& storage) {
  return npu_storage(storage).desc();
}

// A new ND storage of `nbytes` from the npu allocator on the current device.
c10::Storage make_storage(size_t nbytes);

}  // namespace torch_npu
