// Test oracle for log images: file bytes in and out, and which blocks of an
// image verify, decided with lss/format.h alone so that tests of recovery do
// not judge it by its own code. Test-only.

#ifndef LSS_LSS_LOG_IMAGE_H_
#define LSS_LSS_LOG_IMAGE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lss/format.h"

namespace lss::testing {

// The whole file; a gtest failure (and what was read) if it cannot be read.
std::vector<std::byte> ReadFileBytes(const std::string& path);

// Makes the file hold exactly `bytes`, rewriting it in place and
// truncating only when its size differs (a fresh O_TRUNC per trial would
// make every fdatasync of a following open commit metadata again).
void WriteFileBytes(const std::string& path, std::span<const std::byte> bytes);

// Whether a block that verifies sits at `at`: the block magic, its own
// address, a used length that fits a buffer and, with its padding, the
// image (every block write covers its padding, so an image that ends inside
// it lost its end), its CRC, the store id (0: any), and every record's own
// CRC. Its header goes to `h`.
bool IntactBlockAt(std::span<const std::byte> image, uint64_t at,
                   uint32_t block_bytes, uint64_t buffer_bytes, BlockHeader& h,
                   uint64_t store_id = 0);

// The store id of a superblock slot of `image` that decodes (0 if none).
uint64_t StoreIdOf(std::span<const std::byte> image, uint32_t block_bytes);

}  // namespace lss::testing

#endif  // LSS_LSS_LOG_IMAGE_H_
