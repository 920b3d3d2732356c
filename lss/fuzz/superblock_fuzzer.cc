// Arbitrary bytes as a superblock slot. DecodeSuperblock must never crash;
// whatever it accepts must re-encode to the same bytes and decode again to
// the same fields.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "absl/status/statusor.h"
#include "lss/format.h"
#include "ring/check.h"

namespace {

bool SameFields(const lss::Superblock& a, const lss::Superblock& b) {
  return a.version == b.version && a.block_bytes == b.block_bytes &&
         a.buffer_bytes == b.buffer_bytes && a.store_id == b.store_id &&
         a.sequence == b.sequence && a.epoch == b.epoch &&
         a.epoch_start == b.epoch_start && a.data_start == b.data_start &&
         a.max_in_flight_bytes == b.max_in_flight_bytes && a.head == b.head &&
         a.checkpoint == b.checkpoint && a.holes == b.holes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data),
                                      size);
  absl::StatusOr<lss::Superblock> sb = lss::DecodeSuperblock(in, "fuzz");
  if (!sb.ok()) return 0;

  std::byte encoded[lss::kSuperblockBytes];
  lss::EncodeSuperblock(*sb, encoded);
  // The zero word after the last CRC is not checked on decode, so only the
  // fields, the holes and the CRCs must come back byte for byte; a version
  // 1 to 3 superblock comes back as the current version, its fields
  // unchanged.
  uint32_t version = 0;
  std::memcpy(&version, data + 8, sizeof(version));
  const size_t crc_at = 96 + 16 * sb->holes.size();
  LSS_CHECK(version < lss::kFormatVersion ||
                std::memcmp(encoded, data, crc_at + 4) == 0,
            "accepted superblock does not re-encode to its own bytes");
  absl::StatusOr<lss::Superblock> again = lss::DecodeSuperblock(encoded, "re");
  LSS_CHECK(again.ok(), "re-encoded superblock does not decode");
  LSS_CHECK(SameFields(*sb, *again), "superblock does not round-trip");
  return 0;
}
