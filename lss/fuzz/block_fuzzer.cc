// Arbitrary bytes as a block: ParseBlockHeader, then BlockCrcMatches and
// ForEachRecord over the header's `used` bytes, cut to the input, as
// BlockReader::Check calls them. Nothing may crash or read out of bounds,
// and every record visited must lie inside the block, past its header, in
// address order.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "lss/block_reader.h"
#include "lss/format.h"
#include "ring/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data),
                                      size);
  lss::BlockHeader header;
  if (!lss::ParseBlockHeader(in, header)) return 0;
  LSS_CHECK(size >= lss::kBlockHeaderBytes, "header parsed from short input");

  // BlockReader::Check only looks at blocks with used in (header, buffer].
  const std::span<const std::byte> block =
      in.first(std::min<size_t>(header.used, size));
  if (block.size() <= lss::kBlockHeaderBytes) return 0;
  (void)lss::BlockCrcMatches(block);

  const char* begin = reinterpret_cast<const char*>(block.data());
  const char* end = begin + block.size();
  const char* next = begin + lss::kBlockHeaderBytes;  // earliest next record
  const absl::Status s = lss::ForEachRecord(
      block, header.address, "fuzz", [&](const lss::RecordView& r) {
        const char* record = r.payload.data() - lss::kRecordHeaderBytes;
        LSS_CHECK(record >= next, "record before the previous one's end");
        LSS_CHECK((record - begin) % lss::kRecordAlignment == 0,
                  "record not 8-byte aligned in its block");
        LSS_CHECK(r.address == header.address + (record - begin),
                  "record address is not its place in the block");
        LSS_CHECK(!r.payload.empty() &&
                      r.payload.size() <= static_cast<size_t>(end - record),
                  "record payload outside the block");
        next = record + lss::RecordFootprint(r.payload.size());
        LSS_CHECK(next <= end, "record footprint runs past the block");
        return absl::OkStatus();
      });
  LSS_CHECK(s.ok() || absl::IsDataLoss(s), "ForEachRecord: unexpected code");
  return 0;
}
