#include "testing/payload.h"

#include <cstring>

namespace lss::testing {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

namespace {

uint64_t Word(uint64_t seed, size_t word_index) {
  return Mix(seed + word_index);
}

uint64_t Seed(uint64_t stream, uint64_t index) {
  return Mix(Mix(stream) ^ index);
}

}  // namespace

void FillPayload(uint64_t stream, uint64_t index, std::span<std::byte> out) {
  const uint64_t seed = Seed(stream, index);
  size_t k = 0;
  for (; k + 8 <= out.size(); k += 8) {
    const uint64_t w = Word(seed, k / 8);
    std::memcpy(out.data() + k, &w, 8);
  }
  if (k < out.size()) {
    const uint64_t w = Word(seed, k / 8);
    std::memcpy(out.data() + k, &w, out.size() - k);
  }
}

std::optional<size_t> FirstPayloadMismatch(uint64_t stream, uint64_t index,
                                           std::span<const std::byte> bytes) {
  const uint64_t seed = Seed(stream, index);
  for (size_t k = 0; k < bytes.size(); k += 8) {
    const uint64_t w = Word(seed, k / 8);
    const size_t n = bytes.size() - k < 8 ? bytes.size() - k : 8;
    if (std::memcmp(bytes.data() + k, &w, n) != 0) {
      for (size_t j = 0; j < n; ++j) {
        if (bytes[k + j] != static_cast<std::byte>(w >> (8 * j))) return k + j;
      }
    }
  }
  return std::nullopt;
}

std::string Payload(uint64_t stream, uint64_t index, size_t bytes) {
  std::string s(bytes, '\0');
  FillPayload(stream, index,
              {reinterpret_cast<std::byte*>(s.data()), s.size()});
  return s;
}

bool IsPayload(uint64_t stream, uint64_t index, absl::string_view bytes) {
  return !FirstPayloadMismatch(
              stream, index,
              {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()})
              .has_value();
}

}  // namespace lss::testing
