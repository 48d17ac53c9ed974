// The C ABI between the C++ shim (registrations with PyTorch) and the Rust bridge.
// Functions named tnpu_rt_* / tnpu_op_* are exported by Rust; tnpu_cx_* by C++.
// Every tnpu_rt_* function that can fail returns a TnpuStatus; the message of the
// last failure on this thread is tnpu_rt_last_error().
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  TNPU_OK = 0,
  TNPU_ERR_RUNTIME = 1,        // RuntimeError
  TNPU_ERR_OOM = 2,            // torch.OutOfMemoryError
  TNPU_ERR_INDEX = 3,          // IndexError
  TNPU_ERR_VALUE = 4,          // ValueError
  TNPU_ERR_TYPE = 5,           // TypeError
  TNPU_ERR_NOT_IMPLEMENTED = 6, // NotImplementedError
  TNPU_USE_FALLBACK = 7        // an op adapter declines these arguments: run the CPU fallback
} TnpuStatus;

typedef struct {
  int64_t current, peak, allocated, freed;
} TnpuStat;

// Mirrors c10::CachingDeviceAllocator::DeviceStats; arrays are [all, small, large].
typedef struct {
  TnpuStat allocation[3], segment[3], active[3], inactive_split[3];
  TnpuStat allocated_bytes[3], reserved_bytes[3], active_bytes[3];
  TnpuStat inactive_split_bytes[3], requested_bytes[3];
  int64_t num_alloc_retries, num_ooms, num_sync_all_streams;
  int64_t num_device_alloc, num_device_free;
  TnpuStat oversize_allocations, oversize_segments;
  int64_t max_split_size;
} TnpuDeviceStats;

// ---- software NPU runtime (Rust) ----
const char* tnpu_rt_last_error(void);
int32_t tnpu_rt_device_count(void);
int32_t tnpu_rt_get_device(void);
int tnpu_rt_set_device(int32_t device);
int tnpu_rt_check_device(int32_t device);
int tnpu_rt_malloc(int32_t device, size_t size, void** out);
void tnpu_rt_free(void* ptr);
void tnpu_rt_record_stream(void* ptr, int32_t device, int64_t stream);
int tnpu_rt_empty_cache(void);
int tnpu_rt_memory_stats(int32_t device, TnpuDeviceStats* out);
int tnpu_rt_reset_peak_stats(int32_t device);
int tnpu_rt_reset_accumulated_stats(int32_t device);
int tnpu_rt_mem_info(int32_t device, uint64_t* free_bytes, uint64_t* total_bytes);
int32_t tnpu_rt_device_of_ptr(const void* ptr);  // -1 if not device memory

int tnpu_rt_current_stream(int32_t device, int64_t* out);
int tnpu_rt_set_current_stream(int32_t device, int64_t stream);
int tnpu_rt_pool_stream(int32_t device, int high_priority, int64_t* out);
int tnpu_rt_stream_priority(int32_t device, int64_t stream, int* out);
int tnpu_rt_stream_query(int32_t device, int64_t stream, int* done);
int tnpu_rt_stream_synchronize(int32_t device, int64_t stream);
int tnpu_rt_device_synchronize(int32_t device);

void* tnpu_rt_event_create(int enable_timing);
void tnpu_rt_event_destroy(void* event);
int tnpu_rt_event_record(void* event, int32_t device, int64_t stream);
int tnpu_rt_event_block(void* event, int32_t device, int64_t stream);
int tnpu_rt_event_query(void* event);  // 1 when complete (or never recorded)
int tnpu_rt_event_synchronize(void* event);
int tnpu_rt_event_elapsed(void* start, void* end, double* ms);

int tnpu_rt_host_alloc(size_t size, void** out);
void tnpu_rt_host_free(void* ptr);
int tnpu_rt_is_pinned(const void* ptr);
void tnpu_rt_host_record_stream(void* ptr, int32_t device, int64_t stream);
void tnpu_rt_host_empty_cache(void);

// ---- CPU fallback bookkeeping (Rust) ----
int tnpu_fallback_disabled(void);
int tnpu_fallback_note(const char* op_name);  // counts a call; 1 on the op's first call

// ---- storage formats (Rust) ----
// The storage shape of a tensor of `sizes` in format `code`, into out[0..cap); count in *out_ndim.
int tnpu_format_storage_shape(int64_t code, int32_t dtype, int32_t ndim, const int64_t* sizes,
                              int64_t* out, int32_t cap, int32_t* out_ndim);
// Launches on `device`'s current stream the conversion between a tensor (any strides) and a
// storage laid out in format `code`: into the storage when into_storage, else out of it.
int tnpu_format_convert(int32_t into_storage, int64_t code, int32_t device, void* storage,
                        void* data, int32_t dtype, int32_t ndim, const int64_t* sizes,
                        const int64_t* strides);

// ---- native ops (Rust) ----
size_t tnpu_op_count(void);
const char* tnpu_op_name(size_t index);
// Runs op `index` with its arguments read through `ctx` (tnpu_cx_* accessors).
int tnpu_op_run(size_t index, void* ctx);

// ---- argument access for Rust op adapters (C++) ----
typedef struct {
  void* data;            // first element (storage offset applied)
  const int64_t* sizes;  // valid while the call lasts
  const int64_t* strides;
  void* storage;         // identity of the storage (for aliasing checks)
  int64_t numel;
  int32_t ndim;
  int32_t dtype;         // c10::ScalarType
  int32_t device_type;   // 0 cpu, 1 npu, 2 other
  int32_t device_index;
  uint8_t is_conj, is_neg, requires_grad, is_wrapped_number;
} TnpuTensor;

typedef struct {
  int32_t tag;  // 0 bool, 1 int, 2 float, 3 complex
  int64_t i;
  double f, imag;
} TnpuScalar;

int tnpu_cx_nargs(void* ctx);
int tnpu_cx_arg_is_none(void* ctx, int index);
int tnpu_cx_arg_tensor(void* ctx, int index, TnpuTensor* out);  // 0 if None/undefined
int64_t tnpu_cx_arg_int(void* ctx, int index);
double tnpu_cx_arg_double(void* ctx, int index);
int tnpu_cx_arg_bool(void* ctx, int index);
int tnpu_cx_arg_scalar(void* ctx, int index, TnpuScalar* out);  // Scalar, number or 0-dim CPU tensor
int tnpu_cx_arg_int_list(void* ctx, int index, const int64_t** data, size_t* len);
// A str argument: copies up to `cap` bytes, returns its length (-1: not a string).
int tnpu_cx_arg_string(void* ctx, int index, char* out, size_t cap);
// A Scalar[] argument: writes up to `cap` values, returns the list's length (-1: not a list).
int tnpu_cx_arg_scalar_list(void* ctx, int index, TnpuScalar* out, size_t cap);
// Replaces the results appended so far by one Tensor[] result (ops returning a list).
void tnpu_cx_pack_results(void* ctx);
// A bool[] argument: writes up to `cap` values, returns the list's length (-1: not a list).
int tnpu_cx_arg_bool_list(void* ctx, int index, uint8_t* out, size_t cap);
int tnpu_cx_arg_tensor_list_len(void* ctx, int index);
int tnpu_cx_arg_tensor_list_item(void* ctx, int index, int item, TnpuTensor* out);
// Reads the generator argument (None: the device's default generator), returns its seed and
// philox offset and advances the offset by `increment`, atomically.
int tnpu_cx_arg_generator(void* ctx, int index, int32_t device, uint64_t increment,
                          uint64_t* seed, uint64_t* offset);
// Allocates a new npu tensor and appends it to the results. strides may be NULL (contiguous).
int tnpu_cx_new_output(void* ctx, int32_t ndim, const int64_t* sizes, const int64_t* strides,
                       int32_t dtype, int32_t device, TnpuTensor* out);
// Appends argument `index` (a tensor) to the results: for in-place and out= ops.
void tnpu_cx_return_arg(void* ctx, int index);
// Appends an undefined tensor to the results (a gradient an op was asked not to compute).
void tnpu_cx_return_undefined(void* ctx);
// Resizes tensor argument `index` (an out= tensor) to `sizes` if it differs, as PyTorch's
// out= ops do, and describes it again.
int tnpu_cx_resize_arg(void* ctx, int index, int32_t ndim, const int64_t* sizes, TnpuTensor* out);
// torch.get_default_dtype() as a c10::ScalarType.
int32_t tnpu_cx_default_dtype(void);

#ifdef __cplusplus
}
#endif
