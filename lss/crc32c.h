// CRC32C (Castagnoli), from ISA-L's SIMD crc32_iscsi: the checksum of every
// block and record in the log.

#ifndef LSS_LSS_CRC32C_H_
#define LSS_LSS_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace lss {

// The standard CRC32C of `n` bytes (crc32c("123456789") == 0xE3069283),
// continuing from `crc`, the CRC32C of the bytes before them (0 for none):
// Crc32c(b, Crc32c(a)) == Crc32c(a followed by b).
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace lss

#endif  // LSS_LSS_CRC32C_H_
