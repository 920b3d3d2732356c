// Per-record durability from many threads: each thread appends a record and
// waits until that record is durable (WaitStable of its address) before it
// counts it as acknowledged. Concurrent waits share fdatasyncs. After a
// reopen every acknowledged record reads back (README: Durability from many
// threads).
//
//   ./bazelw run //examples:many_writers -- /tmp/demo.log

#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "examples/example.h"
#include "lss/log_structured_store.h"

namespace lss_examples {
namespace {

constexpr int kThreads = 8;
constexpr int kRecordsPerThread = 200;

std::string Payload(int thread, int i) {
  return absl::StrCat("thread ", thread, " record ", i);
}

}  // namespace

absl::Status RunExample(const std::string& path) {
  lss::StoreOptions options;
  options.allow_buffered_fallback = true;  // where O_DIRECT is refused (tmpfs)
  // What each thread acknowledged: (address, payload), or the error it met.
  std::vector<std::vector<std::pair<uint64_t, std::string>>> acked(kThreads);
  std::vector<absl::Status> errors(kThreads);
  {
    auto store = lss::LogStructuredStore::Open(path, options);
    if (!store.ok()) return store.status();
    lss::LogStructuredStore& log = **store;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kRecordsPerThread; ++i) {
          absl::StatusOr<uint64_t> a = log.Append(Payload(t, i));
          if (!a.ok()) {
            errors[t] = a.status();
            return;
          }
          // Durable once this returns OK: only then is it acknowledged.
          if (absl::Status s = log.WaitStable(*a); !s.ok()) {
            errors[t] = s;
            return;
          }
          acked[t].emplace_back(*a, Payload(t, i));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const absl::Status& s : errors) {
      if (!s.ok()) return s;
    }
    absl::PrintF("%d threads acknowledged %d records each, with %d fdatasyncs\n",
                 kThreads, kRecordsPerThread, log.appender_stats().syncs);
    if (absl::Status s = log.Close(); !s.ok()) return s;
  }

  auto store = lss::LogStructuredStore::Open(path, options);
  if (!store.ok()) return store.status();
  size_t checked = 0;
  for (const auto& records : acked) {
    for (const auto& [address, payload] : records) {
      absl::StatusOr<lss::LogRecord> r = (*store)->Read(address);
      if (!r.ok()) return r.status();
      if (r->payload != payload) {
        return absl::InternalError(absl::StrCat(
            "acknowledged \"", payload, "\" at ", address, "; reads \"",
            r->payload, "\""));
      }
      ++checked;
    }
  }
  absl::PrintF("reopened: all %d acknowledged records read back\n", checked);
  return (*store)->Close();
}

}  // namespace lss_examples
