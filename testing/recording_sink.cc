#include "testing/recording_sink.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lss::testing {

void RecordingSink::Dispatch(const SealedBuffer& sealed) {
  const BufferState state = sealed.buffer->state();
  std::span<const std::byte> bytes = sealed.bytes();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto fail = [&](const std::string& what) {
      violations_.push_back(
          absl::StrCat("generation ", sealed.generation, ": ", what));
    };
    if (!state.sealed() || !state.flushing() || state.writers() != 0) {
      fail(absl::StrCat("handed out in state word ", state.word()));
    }
    if (sealed.used == 0 || sealed.used > sealed.padded) {
      fail(absl::StrCat("used ", sealed.used, " padded ", sealed.padded));
    }
    if (std::any_of(bytes.begin() + sealed.used, bytes.end(),
                    [](std::byte b) { return b != std::byte{0}; })) {
      fail("padding is not zero");
    }
    written_.push_back(Written{sealed.generation, sealed.address, sealed.used,
                               sealed.padded, state,
                               std::vector<std::byte>(bytes.begin(),
                                                      bytes.end())});
    if (recycling_ == Recycling::kDeferred) {
      held_.push_back(sealed);
      return;
    }
  }
  ring_->Recycle(sealed);
}

absl::Status RecordingSink::HelpDrain() {
  SealedBuffer sealed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) return failure_;
    if (held_.empty()) return absl::OkStatus();
    sealed = held_.front();
    held_.pop_front();
  }
  ring_->Recycle(sealed);
  return absl::OkStatus();
}

void RecordingSink::Fail(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  failure_ = std::move(status);
}

size_t RecordingSink::RecycleAll() {
  std::deque<SealedBuffer> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(held_);
  }
  for (const SealedBuffer& sealed : all) ring_->Recycle(sealed);
  return all.size();
}

size_t RecordingSink::held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.size();
}

std::vector<RecordingSink::Written> RecordingSink::written() const {
  std::vector<Written> written;
  {
    std::lock_guard<std::mutex> lock(mu_);
    written = written_;
  }
  // Concurrent last writers may hand buffers out of generation order.
  std::sort(written.begin(), written.end(),
            [](const Written& a, const Written& b) {
              return a.generation < b.generation;
            });
  return written;
}

std::optional<std::vector<std::byte>> RecordingSink::Read(uint64_t address,
                                                          size_t len) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Written& w : written_) {
    if (address >= w.address && address + len <= w.address + w.used) {
      const auto begin = w.bytes.begin() + (address - w.address);
      return std::vector<std::byte>(begin, begin + len);
    }
  }
  return std::nullopt;
}

std::vector<std::string> RecordingSink::violations() const {
  std::vector<std::string> violations;
  {
    std::lock_guard<std::mutex> lock(mu_);
    violations = violations_;
  }
  const std::vector<Written> written = this->written();
  for (size_t i = 1; i < written.size(); ++i) {
    const Written& prev = written[i - 1];
    const Written& w = written[i];
    if (w.generation == prev.generation) {
      violations.push_back(
          absl::StrCat("generation ", w.generation, ": handed out twice"));
    } else if (w.generation != prev.generation + 1) {
      violations.push_back(absl::StrCat("generation ", prev.generation + 1,
                                        ": never handed out"));
    } else if (w.address != prev.address + prev.padded) {
      violations.push_back(absl::StrCat(
          "generation ", w.generation, ": address ", w.address,
          " leaves a gap or overlap after ", prev.address, "+", prev.padded));
    }
  }
  return violations;
}

}  // namespace lss::testing
