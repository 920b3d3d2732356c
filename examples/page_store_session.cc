// A PageStore session: allocate a page, replace and extend it, flush it to
// the log, make the flush stable, evict it, read it back from the log, and
// find it again after reopening (README: Using pages).
//
//   ./bazelw run //examples:page_store_session -- /tmp/pages.log

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "examples/example.h"
#include "mapping/page_store.h"

namespace lss_examples {
namespace {

// OK if `page` holds `base` and then `deltas`, oldest first.
absl::Status Expect(const lss::Page& page, const std::string& base,
                    const std::vector<std::string>& deltas) {
  if (page.base == base && page.deltas == deltas) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      "page reads \"", page.base, "\" + [", absl::StrJoin(page.deltas, ", "),
      "]; expected \"", base, "\" + [", absl::StrJoin(deltas, ", "), "]"));
}

}  // namespace

absl::Status RunExample(const std::string& path) {
  lss::PageStoreOptions options;
  options.store.allow_buffered_fallback = true;  // where O_DIRECT is refused
  const std::vector<std::string> deltas = {"+apple", "+pear"};
  uint64_t pid = 0;
  {
    auto pages = lss::PageStore::Open(path, options);
    if (!pages.ok()) return pages.status();
    absl::StatusOr<uint64_t> allocated = (*pages)->Allocate();
    if (!allocated.ok()) return allocated.status();
    pid = *allocated;

    {
      // Every update is a CAS against the state the caller last saw; the
      // pin keeps that state from being freed and reused meanwhile.
      lss::EpochGuard pin = (*pages)->Pin();
      absl::StatusOr<lss::PageState> state =
          (*pages)->UpdateR(pid, lss::PageState::Free(), "fruit:");
      for (const std::string& delta : deltas) {
        if (!state.ok()) return state.status();
        state = (*pages)->UpdateD(pid, *state, delta);  // Aborted if it moved
      }
      if (!state.ok()) return state.status();
    }

    absl::StatusOr<uint64_t> image = (*pages)->Flush(pid);  // LLAMA's flush
    if (!image.ok()) return image.status();
    if (absl::Status s = (*pages)->MkStable(*image); !s.ok()) return s;
    // Stable and unchanged since: the table may point at the log instead.
    if (absl::Status s = (*pages)->Evict(pid); !s.ok()) return s;
    absl::PrintF("page %d: 1 base + %d deltas flushed to %d, stable, evicted\n",
                 pid, deltas.size(), *image);

    absl::StatusOr<lss::Page> page = (*pages)->Read(pid);  // from the log
    if (!page.ok()) return page.status();
    if (absl::Status s = Expect(*page, "fruit:", deltas); !s.ok()) return s;
    absl::PrintF("page %d reloaded from the log: \"%s\" + [%s]\n", pid,
                 page->base, absl::StrJoin(page->deltas, ", "));
  }

  // Reopening replays the log and rebuilds the mapping table.
  auto pages = lss::PageStore::Open(path, options);
  if (!pages.ok()) return pages.status();
  absl::StatusOr<lss::Page> page = (*pages)->Read(pid);
  if (!page.ok()) return page.status();
  absl::PrintF("reopened: %d page(s) recovered, page %d reads \"%s\" + [%s]\n",
               (*pages)->recovered_pages(), pid, page->base,
               absl::StrJoin(page->deltas, ", "));
  return Expect(*page, "fruit:", deltas);
}

}  // namespace lss_examples
