#include "ring/aligned_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lss {
namespace {

constexpr size_t kPageBytes = 4096;
constexpr size_t kHugePageBytes = size_t{2} << 20;

bool IsPowerOfTwo(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// mmap and munmap work in whole pages even when `size` is a smaller multiple.
size_t MappedBytes(size_t size) {
  return (size + kPageBytes - 1) / kPageBytes * kPageBytes;
}

}  // namespace

absl::StatusOr<AlignedBuffer> AlignedBuffer::Allocate(size_t size,
                                                      size_t alignment,
                                                      Pages pages) {
  if (!IsPowerOfTwo(alignment)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AlignedBuffer: alignment ", alignment, " is not a power of two"));
  }
  if (size == 0 || size % alignment != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AlignedBuffer: size ", size,
                     " is not a positive multiple of the alignment ", alignment));
  }
  // Huge pages only help when the region starts on a huge-page boundary, so
  // over-map by the larger of the two alignments and trim both ends.
  const bool want_huge = pages == Pages::kHugeIfAvailable;
  const size_t start_alignment =
      std::max(alignment, want_huge ? kHugePageBytes : kPageBytes);
  const size_t slack = start_alignment > kPageBytes ? start_alignment : 0;
  const size_t mapped = MappedBytes(size) + slack;
  void* raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    const int error = errno;
    return absl::ResourceExhaustedError(
        absl::StrCat("AlignedBuffer: mmap of ", mapped,
                     " bytes failed: ", std::strerror(error)));
  }
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned =
      (begin + start_alignment - 1) & ~(uintptr_t{start_alignment} - 1);
  const size_t head = aligned - begin;
  const size_t tail = mapped - head - MappedBytes(size);
  if (head > 0) munmap(raw, head);
  if (tail > 0) {
    munmap(reinterpret_cast<void*>(aligned + MappedBytes(size)), tail);
  }

  auto* data = reinterpret_cast<std::byte*>(aligned);
  const bool advised = want_huge && madvise(data, size, MADV_HUGEPAGE) == 0;
  // Pre-fault now (after the advice, so faults can be served with huge pages).
  std::memset(data, 0, size);
  return AlignedBuffer(data, size, alignment, advised);
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      alignment_(std::exchange(other.alignment_, 0)),
      huge_pages_advised_(std::exchange(other.huge_pages_advised_, false)) {}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    alignment_ = std::exchange(other.alignment_, 0);
    huge_pages_advised_ = std::exchange(other.huge_pages_advised_, false);
  }
  return *this;
}

AlignedBuffer::~AlignedBuffer() { Release(); }

void AlignedBuffer::Release() {
  if (data_ != nullptr) munmap(data_, MappedBytes(size_));
  data_ = nullptr;
}

}  // namespace lss
