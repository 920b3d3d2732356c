// Runs lsstool as a subprocess against logs made by the store and checks its
// output and exit codes.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "mapping/page_store.h"
#include "testing/process.h"

namespace lss {
namespace {

constexpr uint32_t kBlockBytes = 4096;
constexpr size_t kBufferBytes = 64 << 10;

struct ToolRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  // The last line of stdout (the --json summary).
  std::string LastLine() const {
    std::vector<std::string> lines =
        absl::StrSplit(out, '\n', absl::SkipEmpty());
    return lines.empty() ? "" : lines.back();
  }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

class LsstoolTest : public ::testing::Test {
 public:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/",
                        ::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name());
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_ << ": " << strerror(errno);
  }

  std::string Path(const std::string& name) const {
    return absl::StrCat(dir_, "/", name);
  }

  // Runs tools/lsstool (the runfiles path, relative to the test's working
  // directory) with `args`, stdout and stderr to files.
  ToolRun Tool(const std::vector<std::string>& args) {
    const std::string out = Path("stdout"), err = Path("stderr");
    std::vector<std::string> argv = {"tools/lsstool"};
    argv.insert(argv.end(), args.begin(), args.end());
    ToolRun run;
    const absl::StatusOr<int> status = testing::RunCommand(argv, out, err);
    EXPECT_TRUE(status.ok()) << status.status();
    if (!status.ok()) return run;
    EXPECT_TRUE(WIFEXITED(*status))
        << "lsstool died: " << testing::WaitStatusString(*status);
    run.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
    run.out = ReadFile(out);
    run.err = ReadFile(err);
    return run;
  }

  struct Appended {
    uint64_t address;
    std::string payload;
    RecordTag tag;
  };

  // A cleanly closed log of `n` records of varied sizes over several blocks.
  std::vector<Appended> MakeLog(const std::string& path, int n) {
    StoreOptions options;
    options.block_bytes = kBlockBytes;
    options.buffer_bytes = kBufferBytes;
    options.allow_buffered_fallback = true;
    options.preallocate_bytes = kBufferBytes;
    auto store = LogStructuredStore::Open(path, options);
    EXPECT_TRUE(store.ok()) << store.status();
    std::vector<Appended> records;
    if (!store.ok()) return records;
    for (int i = 0; i < n; ++i) {
      Appended a;
      a.payload = absl::StrCat("record ", i, " ",
                               std::string(1 + (i * 977) % 5000, 'a' + i % 26));
      a.tag = RecordTag{.type = i % 3 == 0 ? kFirstUserRecordType
                                           : kDataRecordType,
                        .key = static_cast<uint64_t>(1000 + i)};
      absl::StatusOr<uint64_t> address = (*store)->Append(a.payload, a.tag);
      EXPECT_TRUE(address.ok()) << address.status();
      if (!address.ok()) return records;
      a.address = *address;
      records.push_back(std::move(a));
      // Several sealed buffers, so the log has several blocks.
      if (i % 17 == 16) {
        EXPECT_TRUE((*store)->Flush().ok());
      }
    }
    EXPECT_TRUE((*store)->Close().ok());
    return records;
  }

  std::string dir_;
};

// The block header at or below `address`: "LSSB" at +4, its own address
// at +16.
uint64_t BlockContaining(const std::string& file, uint64_t address) {
  for (uint64_t b = address / kBlockBytes * kBlockBytes;; b -= kBlockBytes) {
    uint64_t self = 0;
    std::memcpy(&self, file.data() + b + 16, sizeof(self));
    if (file.compare(b + 4, 4, "LSSB") == 0 && self == b) return b;
    if (b == 0) return 0;
  }
}

TEST_F(LsstoolTest, VerifyCleanLog) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  ToolRun run = Tool({"verify", "--json", log});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("result             ok (0 problems)"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.LastLine().find("\"records\": 100,"), std::string::npos)
      << run.LastLine();
  EXPECT_NE(run.LastLine().find("\"result\": \"ok\""), std::string::npos);
  EXPECT_EQ(run.LastLine().front(), '{');
}

TEST_F(LsstoolTest, VerifyNamesTheOffsetOfAFlippedBit) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  std::string bytes = ReadFile(log);
  const uint64_t target = records[40].address + kRecordHeaderBytes + 3;
  bytes[target] ^= 0x10;
  WriteFile(log, bytes);
  const uint64_t block = BlockContaining(bytes, records[40].address);

  ToolRun run = Tool({"verify", "--json", log});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find(absl::StrCat("offset ", block, ":")),
            std::string::npos)
      << "block " << block << "\n" << run.out;
  EXPECT_NE(run.out.find("problem: skipped: "), std::string::npos) << run.out;
  // Every other record's own checksum still verifies.
  EXPECT_NE(run.LastLine().find("\"records\": 99,"), std::string::npos)
      << run.LastLine();
  EXPECT_NE(run.LastLine().find("\"result\": \"damaged\""), std::string::npos);
}

TEST_F(LsstoolTest, VerifyForeignFile) {
  const std::string file = Path("random");
  std::string bytes(100000, '\0');
  uint32_t x = 12345;
  for (char& c : bytes) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  WriteFile(file, bytes);
  ToolRun run = Tool({"verify", "--json", file});
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.out.find("not a log file"), std::string::npos) << run.out;
  EXPECT_NE(run.LastLine().find("\"result\": \"unreadable\""),
            std::string::npos);
}

TEST_F(LsstoolTest, VerifyMissingFile) {
  ToolRun run = Tool({"verify", "--json", Path("missing")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("no such file"), std::string::npos) << run.err;
  EXPECT_NE(run.LastLine().find("\"exit_code\": 2"), std::string::npos)
      << run.out;
}

// An empty file is what the store makes of a new log: nothing to check.
TEST_F(LsstoolTest, VerifyEmptyFile) {
  const std::string file = Path("empty");
  WriteFile(file, "");
  ToolRun run = Tool({"verify", file});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("empty file"), std::string::npos) << run.out;
}

std::string DumpLine(const LsstoolTest::Appended& a) {
  return absl::StrCat("{\"address\": ", a.address, ", \"length\": ",
                      a.payload.size(), ", \"type\": ", a.tag.type,
                      ", \"key\": ", a.tag.key, ", \"text\": \"",
                      a.payload.substr(0, 32), "\"}");
}

TEST_F(LsstoolTest, DumpListsEveryRecord) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  ToolRun run = Tool({"dump", "--json", log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::vector<std::string> lines =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), records.size() + 1) << run.out;
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(lines[i], DumpLine(records[i])) << i;
  }
  EXPECT_NE(lines.back().find("\"records\": 100,"), std::string::npos)
      << lines.back();
}

TEST_F(LsstoolTest, DumpFromToLimit) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  ToolRun run =
      Tool({"dump", "--json", absl::StrCat("--from=", records[10].address),
            "--limit=5", log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::vector<std::string> lines =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 6u) << run.out;
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(lines[i], DumpLine(records[10 + i]));

  run = Tool({"dump", absl::StrCat("--to=", records[3].address), log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  lines = absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << run.out;
  EXPECT_EQ(lines[1].substr(0, lines[1].find(' ')),
            absl::StrCat(records[1].address));
}

TEST_F(LsstoolTest, DumpOfADamagedLogFailsOrSalvages) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  std::string bytes = ReadFile(log);
  bytes[records[40].address + kRecordHeaderBytes + 3] ^= 0x10;
  WriteFile(log, bytes);
  EXPECT_EQ(Tool({"dump", log}).exit_code, 1);
  ToolRun run = Tool({"dump", "--json", "--recovery=skip_corrupted", log});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.LastLine().find("\"records\": 99,"), std::string::npos)
      << run.LastLine();
  EXPECT_EQ(run.out.find(DumpLine(records[40])), std::string::npos);
}

TEST_F(LsstoolTest, StatsCountsMatch) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  uint64_t payload = 0;
  for (const Appended& a : records) payload += a.payload.size();
  ToolRun run = Tool({"stats", "--json", log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const std::string json = run.LastLine();
  EXPECT_NE(json.find("\"records\": 100,"), std::string::npos) << json;
  EXPECT_NE(json.find(absl::StrCat("\"payload_bytes\": ", payload, ",")),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"state\": \"valid\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"block_bytes\": 4096,"), std::string::npos) << json;
  // Every record lands in exactly one histogram bucket.
  const size_t h = json.find("\"size_histogram\": {");
  ASSERT_NE(h, std::string::npos) << json;
  uint64_t total = 0;
  for (absl::string_view bucket : absl::StrSplit(
           json.substr(h + 19, json.find('}', h) - h - 19), ", ")) {
    total += std::stoull(std::string(bucket.substr(bucket.find(": ") + 2)));
  }
  EXPECT_EQ(total, 100u) << json;
}

// A log cut short in the middle of a block: the records before that block
// still verify, the cut is damage (the log was closed cleanly, so its end
// was proven durable), and salvage takes what verifies.
TEST_F(LsstoolTest, VerifyOfATruncatedLog) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  const std::string bytes = ReadFile(log);
  const uint64_t block = BlockContaining(bytes, records[60].address);
  const uint64_t cut = records[60].address + 10;
  ASSERT_EQ(truncate(log.c_str(), cut), 0);
  // Records wholly below the cut: those of the blocks before, and those of
  // the cut block found by their own checksums.
  const int before = 60;

  ToolRun run = Tool({"verify", "--json", log});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.LastLine().find("\"result\": \"damaged\""),
            std::string::npos)
      << run.LastLine();
  EXPECT_NE(run.LastLine().find(absl::StrCat("\"records\": ", before, ",")),
            std::string::npos)
      << "expected the " << before << " records below offset " << cut
      << " (block " << block << ") to verify\n"
      << run.out;

  ToolRun salvage = Tool({"salvage", absl::StrCat("--out=", Path("new")), log});
  EXPECT_EQ(salvage.exit_code, 1) << salvage.out << salvage.err;
  ToolRun check = Tool({"verify", "--json", Path("new")});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_NE(check.LastLine().find(absl::StrCat("\"records\": ", before, ",")),
            std::string::npos)
      << check.LastLine();
}

// The last block torn as a power cut leaves it: its second half never
// reached the disk (zeros). The records of the blocks before it verify.
TEST_F(LsstoolTest, VerifyOfATornTail) {
  const std::string log = Path("log");
  const std::vector<Appended> records = MakeLog(log, 100);
  std::string bytes = ReadFile(log);
  const uint64_t block = BlockContaining(bytes, records.back().address);
  const uint64_t torn_from = block + kBlockBytes / 2;
  ASSERT_LT(torn_from, bytes.size());
  std::fill(bytes.begin() + torn_from, bytes.end(), '\0');
  WriteFile(log, bytes);
  int before = 0;
  for (const Appended& a : records) before += a.address < block;

  ToolRun run = Tool({"verify", "--json", log});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find(absl::StrCat("offset ", block)), std::string::npos)
      << "block " << block << "\n" << run.out;
  const size_t at = run.LastLine().find("\"records\": ");
  ASSERT_NE(at, std::string::npos) << run.LastLine();
  EXPECT_GE(std::stoi(run.LastLine().substr(at + 11)), before)
      << run.LastLine();
}

TEST_F(LsstoolTest, StatsAndDumpOfAForeignFile) {
  const std::string file = Path("foreign");
  WriteFile(file, std::string(20000, 'x'));
  EXPECT_EQ(Tool({"stats", file}).exit_code, 2);
  ToolRun run = Tool({"dump", "--json", file});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("not a log file"), std::string::npos) << run.err;
  EXPECT_NE(run.LastLine().find("\"exit_code\": 2"), std::string::npos);
}

// The dump line of a record without its address, which salvage remaps.
std::string Unaddressed(const std::string& line) {
  return line.substr(line.find(", \"length\""));
}

TEST_F(LsstoolTest, SalvageKeepsEveryRecordThatVerifies) {
  const std::string log = Path("log"), out = Path("salvaged");
  const std::vector<Appended> records = MakeLog(log, 100);
  std::string bytes = ReadFile(log);
  bytes[records[40].address + kRecordHeaderBytes + 3] ^= 0x10;
  WriteFile(log, bytes);

  ToolRun run = Tool({"salvage", "--json", "--out=" + out, log});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.LastLine().find("\"records\": 99,"), std::string::npos)
      << run.LastLine();
  EXPECT_NE(run.out.find("lost "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("remapped"), std::string::npos) << run.out;

  EXPECT_EQ(Tool({"verify", out}).exit_code, 0);
  run = Tool({"dump", "--json", out});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::vector<std::string> lines =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 100u) << run.out;
  for (size_t i = 0, j = 0; i < records.size(); ++i) {
    if (i == 40) continue;
    EXPECT_EQ(Unaddressed(lines[j++]), Unaddressed(DumpLine(records[i])))
        << i;
  }
}

TEST_F(LsstoolTest, SalvageOfACleanLogLosesNothing) {
  const std::string log = Path("log"), out = Path("salvaged");
  MakeLog(log, 50);
  ToolRun run = Tool({"salvage", "--out=" + out, log});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("nothing lost"), std::string::npos) << run.out;
  ToolRun original = Tool({"dump", log});
  ToolRun copy = Tool({"dump", out});
  std::vector<std::string> a = absl::StrSplit(original.out, '\n');
  std::vector<std::string> b = absl::StrSplit(copy.out, '\n');
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    EXPECT_EQ(a[i].substr(a[i].find(' ')), b[i].substr(b[i].find(' ')));
  }
}

TEST_F(LsstoolTest, SalvageRefusesAnExistingOutput) {
  const std::string log = Path("log"), out = Path("existing");
  MakeLog(log, 10);
  WriteFile(out, "keep me");
  ToolRun run = Tool({"salvage", "--out=" + out, log});
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("already exists"), std::string::npos) << run.err;
  EXPECT_EQ(ReadFile(out), "keep me");
  EXPECT_EQ(Tool({"salvage", log}).exit_code, 64);
  // A source that cannot be read leaves no output behind.
  EXPECT_EQ(Tool({"salvage", "--out=" + Path("new"), Path("missing")})
                .exit_code,
            2);
  EXPECT_NE(access(Path("new").c_str(), F_OK), 0);
}

// --- pages -------------------------------------------------------------------

struct FlushedPage {
  uint64_t pid;
  uint64_t address;  // of its last image
  std::string base;
  std::vector<std::string> deltas;
};

std::string HexOf(absl::string_view bytes) {
  std::string hex;
  for (unsigned char c : bytes)
    absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return hex;
}

// A PageStore log: pages 0..4 flushed (page 2 twice, with deltas the second
// time; page 4's base is binary), page 5 allocated and updated but never
// flushed, then page 3 freed. Returns the pages recovery restores.
std::vector<FlushedPage> MakePageLog(const std::string& path) {
  PageStoreOptions options;
  options.store.block_bytes = kBlockBytes;
  options.store.buffer_bytes = kBufferBytes;
  options.store.allow_buffered_fallback = true;
  options.store.preallocate_bytes = kBufferBytes;
  options.table.max_pages = 1024;
  auto pages = PageStore::Open(path, options);
  EXPECT_TRUE(pages.ok()) << pages.status();
  std::vector<FlushedPage> kept;
  if (!pages.ok()) return kept;
  PageStore& store = **pages;
  EpochGuard pin = store.Pin();
  for (int i = 0; i <= 5; ++i) {
    absl::StatusOr<uint64_t> pid = store.Allocate();
    EXPECT_TRUE(pid.ok()) << pid.status();
    if (!pid.ok()) return {};
    FlushedPage page{
        .pid = *pid,
        .address = 0,
        .base = absl::StrCat("page ", i, " base ", std::string(100 * i, 'p')),
        .deltas = {}};
    if (i == 4) page.base = std::string("\x00\x01\xff\x10" "binary", 10);
    absl::StatusOr<PageState> state =
        store.UpdateR(page.pid, PageState::Free(), page.base);
    EXPECT_TRUE(state.ok()) << state.status();
    if (!state.ok()) return {};
    if (i == 5) break;  // never flushed
    absl::StatusOr<uint64_t> address = store.Flush(page.pid);
    EXPECT_TRUE(address.ok()) << address.status();
    page.address = *address;
    if (i == 2) {
      // The flush put a flush node on top: the state to update from.
      absl::StatusOr<Page> flushed = store.Read(page.pid);
      EXPECT_TRUE(flushed.ok()) << flushed.status();
      if (!flushed.ok()) return {};
      state = flushed->state;
      for (const char* d : {"delta one", "delta two"}) {
        state = store.UpdateD(page.pid, *state, d);
        EXPECT_TRUE(state.ok()) << state.status();
        if (!state.ok()) return {};
        page.deltas.push_back(d);
      }
      address = store.Flush(page.pid);
      EXPECT_TRUE(address.ok()) << address.status();
      page.address = *address;
    }
    kept.push_back(std::move(page));
  }
  // Freed last, so that no later Allocate reuses its PID.
  EXPECT_TRUE(store.Free(kept[3].pid).ok());
  kept.erase(kept.begin() + 3);
  EXPECT_TRUE(store.log().Sync().ok());
  return kept;
}

TEST_F(LsstoolTest, PagesListsEveryRestoredPage) {
  const std::string log = Path("pages");
  const std::vector<FlushedPage> pages = MakePageLog(log);
  ASSERT_EQ(pages.size(), 4u);

  ToolRun run = Tool({"pages", "--json", log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::vector<std::string> lines =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), pages.size() + 1) << run.out;
  for (size_t i = 0; i < pages.size(); ++i) {
    EXPECT_NE(
        lines[i].find(absl::StrCat("{\"pid\": ", pages[i].pid,
                                   ", \"address\": ", pages[i].address, ", ")),
        std::string::npos)
        << lines[i];
  }
  EXPECT_NE(lines.back().find("\"pages\": 4,"), std::string::npos)
      << lines.back();
  // Five images (page 3's before its free), page 2's delta piece, one free.
  EXPECT_NE(lines.back().find("\"page_image_records\": 5, "
                              "\"page_delta_records\": 1, "
                              "\"free_records\": 1,"),
            std::string::npos)
      << lines.back();

  run = Tool({"pages", log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find(absl::StrCat("  pid ", pages[2].pid, "  address ",
                                      pages[2].address, "  image ")),
            std::string::npos)
      << run.out;
  EXPECT_EQ(run.out.find("  pid 3 "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("pages              4 ("), std::string::npos)
      << run.out;
}

// What a cleaner would see: the pieces of live pages' chains, by region.
TEST_F(LsstoolTest, StatsOfAPageLogShowPiecesAndLiveFractions) {
  const std::string log = Path("pages");
  const std::vector<FlushedPage> pages = MakePageLog(log);
  ASSERT_EQ(pages.size(), 4u);
  ToolRun run = Tool({"stats", "--json", "--regions=2", log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  // Pages 0, 1 and 4 are one image each; page 2 an image and a delta piece;
  // page 3's image and its free record are not needed.
  EXPECT_NE(run.out.find("\"pages\": 4, "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("\"pieces_per_page\": {\"1\": 3, \"2\": 1}"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("\"regions\": [{\"from\": "), std::string::npos)
      << run.out;
  run = Tool({"stats", log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("live fraction per region"), std::string::npos)
      << run.out;
  // A log without pages has no page section.
  const std::string plain = Path("plain");
  {
    StoreOptions options;
    options.block_bytes = kBlockBytes;
    options.buffer_bytes = kBufferBytes;
    options.allow_buffered_fallback = true;
    auto store = LogStructuredStore::Open(plain, options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Append("not a page").ok());
  }
  run = Tool({"stats", plain});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(run.out.find("pieces per page"), std::string::npos) << run.out;
}

TEST_F(LsstoolTest, PagesPrintsOnePage) {
  const std::string log = Path("pages");
  const std::vector<FlushedPage> pages = MakePageLog(log);
  ASSERT_EQ(pages.size(), 4u);
  const FlushedPage& two = pages[2];
  ASSERT_EQ(two.deltas.size(), 2u);

  ToolRun run = Tool({"pages", "--json", absl::StrCat("--pid=", two.pid), log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("base     text=\"page 2 base pppp"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("delta 1  text=\"delta two\""), std::string::npos)
      << run.out;
  EXPECT_NE(run.LastLine().find(absl::StrCat(
                "\"pid\": ", two.pid, ", \"address\": ", two.address, ",")),
            std::string::npos)
      << run.LastLine();
  // Every byte, not a preview.
  EXPECT_NE(run.LastLine().find(absl::StrCat(
                "\"base_hex\": \"", HexOf(two.base), "\", \"deltas_hex\": [\"",
                HexOf(two.deltas[0]), "\", \"", HexOf(two.deltas[1]), "\"]")),
            std::string::npos)
      << run.LastLine();

  const FlushedPage& binary = pages[3];
  run = Tool({"pages", absl::StrCat("--pid=", binary.pid), log});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(
      run.out.find(absl::StrCat("base     hex=\"", HexOf(binary.base), "\"")),
      std::string::npos)
      << run.out;
}

TEST_F(LsstoolTest, PagesOfAFreeOrUnflushedPid) {
  const std::string log = Path("pages");
  MakePageLog(log);
  for (const char* pid : {"--pid=3", "--pid=5", "--pid=999"}) {
    ToolRun run = Tool({"pages", "--json", pid, log});
    EXPECT_EQ(run.exit_code, 2) << pid << run.out << run.err;
    EXPECT_NE(run.err.find("is not in the log"), std::string::npos)
        << pid << run.err;
    EXPECT_NE(run.LastLine().find("\"exit_code\": 2"), std::string::npos);
  }
}

TEST_F(LsstoolTest, PagesOfALogWithoutPages) {
  const std::string data_log = Path("data");
  {
    StoreOptions options;
    options.block_bytes = kBlockBytes;
    options.buffer_bytes = kBufferBytes;
    options.allow_buffered_fallback = true;
    options.preallocate_bytes = kBufferBytes;
    auto store = LogStructuredStore::Open(data_log, options);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE((*store)->Append(absl::StrCat("data ", i)).ok());
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  ToolRun run = Tool({"pages", "--json", data_log});
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("holds no pages: none of its 10 records"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.LastLine().find("\"result\": \"unreadable\""),
            std::string::npos)
      << run.LastLine();

  const std::string empty = Path("empty");
  WriteFile(empty, "");
  run = Tool({"pages", empty});
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("holds no pages"), std::string::npos) << run.err;

  const std::string foreign = Path("foreign");
  WriteFile(foreign, std::string(20000, 'x'));
  run = Tool({"pages", foreign});
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("not a log file"), std::string::npos) << run.err;
}

TEST_F(LsstoolTest, PagesOfADamagedImage) {
  const std::string log = Path("pages");
  const std::vector<FlushedPage> pages = MakePageLog(log);
  ASSERT_EQ(pages.size(), 4u);
  std::string bytes = ReadFile(log);
  bytes[pages[1].address + kRecordHeaderBytes + 5] ^= 0x01;
  WriteFile(log, bytes);
  ToolRun run = Tool({"pages", "--json", log});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.LastLine().find("\"result\": \"damaged\""), std::string::npos)
      << run.LastLine();
}

// --- verify beside a live writer --------------------------------------------

StoreOptions WriterOptions() {
  StoreOptions options;
  options.block_bytes = kBlockBytes;
  options.buffer_bytes = kBufferBytes;
  options.allow_buffered_fallback = true;
  options.preallocate_bytes = kBufferBytes;
  return options;
}

uint64_t JsonNumber(const std::string& json, const std::string& key) {
  const std::string field = absl::StrCat("\"", key, "\": ");
  const size_t at = json.find(field);
  if (at == std::string::npos) return 0;
  return std::stoull(json.substr(at + field.size()));
}

// A writer in this process holds the log's lock and keeps appending and
// syncing while lsstool verifies it: lsstool neither waits for the lock nor
// fails, and reports at least every record durable before it started.
TEST_F(LsstoolTest, VerifyBesideALiveWriter) {
  const std::string log = Path("log");
  auto store = LogStructuredStore::Open(log, WriterOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  constexpr int kDurable = 300;
  for (int i = 0; i < kDurable; ++i) {
    ASSERT_TRUE((*store)->Append(absl::StrCat("durable ", i,
                                              std::string(i % 700, 'd')))
                    .ok());
  }
  ASSERT_TRUE((*store)->Sync().ok());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> appended{0};
  absl::Status writer_status;  // read after the join
  std::atomic<bool> writer_failed{false};
  std::thread writer([&] {
    for (uint64_t i = 0; !stop.load(); ++i) {
      absl::StatusOr<uint64_t> a = (*store)->Append(
          absl::StrCat("live ", i, std::string(i % 1500, 'l')));
      if (!a.ok()) {
        writer_status = a.status();
        writer_failed.store(true);
        return;
      }
      // A sync every few records: blocks are written and proven durable
      // while the tool scans.
      if (i % 8 == 7) {
        if (absl::Status s = (*store)->Sync(); !s.ok()) {
          writer_status = s;
          writer_failed.store(true);
          return;
        }
      }
      appended.fetch_add(1);
    }
  });
  // The writer is under way before the tool starts (a wait on its first
  // append, not on time).
  while (appended.load() == 0 && !writer_failed.load()) {
    std::this_thread::yield();
  }
  // The other commands take the shared lock: refused at once.
  ToolRun dump = Tool({"dump", log});
  EXPECT_EQ(dump.exit_code, 2) << dump.out << dump.err;
  EXPECT_NE(dump.err.find("already open"), std::string::npos) << dump.err;
  ToolRun run = Tool({"verify", "--json", log});
  stop.store(true);
  writer.join();
  EXPECT_TRUE(writer_status.ok()) << writer_status;
  EXPECT_TRUE((*store)->Close().ok());

  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  const std::string json = run.LastLine();
  EXPECT_NE(json.find("\"writer_live\": true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"result\": \"ok\""), std::string::npos) << json;
  EXPECT_GE(JsonNumber(json, "records"), uint64_t{kDurable}) << json;
  EXPECT_NE(run.out.find("a writer has the log open: verified up to offset"),
            std::string::npos)
      << run.out;
  // Once the writer has closed the log it verifies whole.
  run = Tool({"verify", "--json", log});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(JsonNumber(run.LastLine(), "records"), kDurable + appended.load())
      << run.LastLine();
  EXPECT_NE(run.LastLine().find("\"writer_live\": false"), std::string::npos);
}

// Damage below what the writer made durable is still damage (exit 1), even
// though a live writer's torn tail is not.
TEST_F(LsstoolTest, VerifyBesideAWriterFindsDamage) {
  const std::string log = Path("log");
  auto store = LogStructuredStore::Open(log, WriterOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> addresses;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<uint64_t> a =
        (*store)->Append(absl::StrCat("record ", i, std::string(i * 37, 'r')));
    ASSERT_TRUE(a.ok()) << a.status();
    addresses.push_back(*a);
    if (i % 17 == 16) {
      ASSERT_TRUE((*store)->Sync().ok());
    }
  }
  ASSERT_TRUE((*store)->Sync().ok());
  // Behind the writer's back (it never reads its own blocks again).
  const int fd = open(log.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << strerror(errno);
  char byte = 0;
  const off_t target = addresses[20] + kRecordHeaderBytes + 2;
  ASSERT_EQ(pread(fd, &byte, 1, target), 1);
  byte ^= 0x04;
  ASSERT_EQ(pwrite(fd, &byte, 1, target), 1);
  close(fd);

  ToolRun run = Tool({"verify", "--json", log});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.LastLine().find("\"writer_live\": true"), std::string::npos)
      << run.LastLine();
  EXPECT_NE(run.out.find("two opens in a row stopped here"), std::string::npos)
      << run.out;
  EXPECT_TRUE((*store)->Close().ok());
}

TEST_F(LsstoolTest, UsageErrors) {
  EXPECT_EQ(Tool({}).exit_code, 64);
  EXPECT_EQ(Tool({"frobnicate", Path("x")}).exit_code, 64);
  EXPECT_EQ(Tool({"verify"}).exit_code, 64);
  EXPECT_EQ(Tool({"verify", "--no_such_flag", Path("x")}).exit_code, 64);
  ToolRun help = Tool({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("shared lock"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace lss
