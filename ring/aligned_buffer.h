// AlignedBuffer: an owning block of memory aligned for O_DIRECT I/O.
//
// The memory comes from one anonymous mmap, is advised for transparent huge
// pages where the caller asks (4 MiB O_DIRECT writes from huge-page memory ran
// 3-4x faster on our machines, see shared/PERFORMANCE.md) and is pre-faulted,
// so the first write into it never pays the ~13 us-per-page first-touch cost on
// the hot path. Allocate once, reuse for the owner's lifetime.
//
// Thread safety: the object itself is not synchronised; the bytes it owns are
// plain memory and their users synchronise access.

#ifndef LSS_RING_ALIGNED_BUFFER_H_
#define LSS_RING_ALIGNED_BUFFER_H_

#include <cstddef>
#include <span>

#include "absl/status/statusor.h"

namespace lss {

class AlignedBuffer {
 public:
  enum class Pages { kOrdinary, kHugeIfAvailable };

  // Returns `size` bytes, zero-filled, whose address is a multiple of
  // `alignment`. `alignment` must be a power of two; `size` must be a positive
  // multiple of it. Anything else is InvalidArgument naming the value.
  static absl::StatusOr<AlignedBuffer> Allocate(
      size_t size, size_t alignment = 4096,
      Pages pages = Pages::kHugeIfAvailable);

  AlignedBuffer() = default;
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  size_t alignment() const { return alignment_; }
  std::span<std::byte> span() const { return {data_, size_}; }
  // True when the kernel accepted MADV_HUGEPAGE for the whole region.
  bool huge_pages_advised() const { return huge_pages_advised_; }

 private:
  AlignedBuffer(std::byte* data, size_t size, size_t alignment,
                bool huge_pages_advised)
      : data_(data),
        size_(size),
        alignment_(alignment),
        huge_pages_advised_(huge_pages_advised) {}
  void Release();

  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t alignment_ = 0;
  bool huge_pages_advised_ = false;
};

}  // namespace lss

#endif  // LSS_RING_ALIGNED_BUFFER_H_
