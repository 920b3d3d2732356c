#include "lss/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>

namespace lss {

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  // ISA-L's crc32_iscsi neither pre- nor post-inverts; the standard CRC32C
  // does both, so invert around it. It takes an int length: go in pieces.
  constexpr size_t kPiece = size_t{1} << 30;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  uint32_t raw = ~crc;
  while (n > 0) {
    const size_t piece = std::min(n, kPiece);
    raw = crc32_iscsi(p, static_cast<int>(piece), raw);
    p += piece;
    n -= piece;
  }
  return ~raw;
}

}  // namespace lss
