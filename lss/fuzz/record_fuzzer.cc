// ParseRecord at an arbitrary address: the first 8 input bytes are the
// address, the rest is what follows it in the block. A kRecord result must
// describe bytes inside the input: its payload lies within them and its
// footprint fits.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "lss/format.h"
#include "ring/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < sizeof(uint64_t)) return 0;
  uint64_t address;
  std::memcpy(&address, data, sizeof(address));
  const std::span<const std::byte> in(
      reinterpret_cast<const std::byte*>(data) + sizeof(address),
      size - sizeof(address));

  lss::RecordView record;
  std::string reason;
  switch (lss::ParseRecord(address, in, record, reason)) {
    case lss::RecordParse::kPadding:
      LSS_CHECK(in.size() >= lss::kRecordAlignment, "padding past the end");
      break;
    case lss::RecordParse::kCorrupt:
      LSS_CHECK(!reason.empty(), "corrupt record without a reason");
      break;
    case lss::RecordParse::kRecord: {
      const auto* begin = reinterpret_cast<const char*>(in.data());
      const char* payload = record.payload.data();
      LSS_CHECK(!record.payload.empty(), "record with an empty payload");
      LSS_CHECK(payload == begin + lss::kRecordHeaderBytes,
                "payload does not follow the record header");
      LSS_CHECK(lss::RecordFootprint(record.payload.size()) <= in.size(),
                "record footprint runs past the input");
      LSS_CHECK(record.address == address, "record at another address");
      break;
    }
  }
  return 0;
}
