// Self-describing payloads for tests: byte k of record (stream, index) is a
// hash of all three, so a byte that is lost, duplicated, misplaced, stale
// (from another record or an earlier buffer generation) or torn is detected.

#ifndef LSS_TESTING_PAYLOAD_H_
#define LSS_TESTING_PAYLOAD_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "absl/strings/string_view.h"

namespace lss::testing {

// A record a test appended: whose payload it carries and where it went.
struct AppendedRecord {
  uint64_t stream;
  uint64_t index;
  uint64_t address;
  size_t len;
};

// SplitMix64's finaliser: cheap, and every input bit affects every output
// bit. Payloads are made of it; tests also derive sizes and seeds from it.
uint64_t Mix(uint64_t x);

// Writes the payload of record (stream, index) into `out`.
void FillPayload(uint64_t stream, uint64_t index, std::span<std::byte> out);

// Returns the position of the first byte of `bytes` that is not the payload
// of record (stream, index), or nothing when all match.
std::optional<size_t> FirstPayloadMismatch(uint64_t stream, uint64_t index,
                                           std::span<const std::byte> bytes);

// The payload of record (stream, index), `bytes` long, as a string (for
// APIs that take payloads as strings).
std::string Payload(uint64_t stream, uint64_t index, size_t bytes);

// True if `bytes` is all the payload of record (stream, index): the
// absl::string_view form of !FirstPayloadMismatch(...).has_value().
bool IsPayload(uint64_t stream, uint64_t index, absl::string_view bytes);

}  // namespace lss::testing

#endif  // LSS_TESTING_PAYLOAD_H_
