// Helpers for tests of a LogStructuredStore on a real file: small flush
// buffers, records of stream 0 (testing/payload.h) appended a block at a
// time, a bit flipped on disk, and the store's options in words.

#ifndef LSS_TESTING_TEST_LOG_H_
#define LSS_TESTING_TEST_LOG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lss/log_structured_store.h"

namespace lss::testing {

// 64 KiB flush buffers (a test's records span many blocks), 1 MiB of
// preallocation, buffered I/O where the file system refuses O_DIRECT.
StoreOptions SmallLogOptions();

// Appends records `first` to `first + count - 1` of stream 0, each
// Payload(0, i, bytes), sealing a block after every record whose index is
// 19 modulo 20, then syncs. Returns their addresses; a failure fails the
// test (an address of 0 stands for it).
std::vector<uint64_t> FillLog(LogStructuredStore& store, uint64_t first,
                              uint64_t count, size_t bytes);

// "kTailLocalized" or "kSerialized".
std::string WritePolicyName(WritePolicy p);

// The options a crash test varies, for its failure messages.
std::string DescribeStoreOptions(const StoreOptions& o);

// Flips the lowest bit of the byte at `offset` of the file at `path`.
void FlipBitAt(const std::string& path, uint64_t offset);

}  // namespace lss::testing

#endif  // LSS_TESTING_TEST_LOG_H_
