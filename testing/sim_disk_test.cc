// SimDisk's durability rules, one at a time, and FakeIoRing running on it.

#include "testing/sim_disk.h"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "flush/file.h"
#include "flush/io_ring.h"
#include "gtest/gtest.h"
#include "testing/fake_io_ring.h"

namespace lss::testing {
namespace {

constexpr FileOptions kCreate = {.create = true, .direct_io = false};
constexpr FileOptions kWriter = {.direct_io = false};
constexpr FileOptions kReader = {.read_only = true, .direct_io = false};

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::unique_ptr<File> MustOpen(SimDisk& disk, const std::string& path,
                               const FileOptions& options) {
  absl::StatusOr<std::unique_ptr<File>> f = disk.Open(path, options);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *std::move(f) : nullptr;
}

// A fresh file at "/d/f" holding `durable` (synced, directory synced).
std::unique_ptr<File> FileWith(SimDisk& disk, const std::string& durable) {
  std::unique_ptr<File> f = MustOpen(disk, "/d/f", kCreate);
  EXPECT_TRUE(f->WriteAt(0, Bytes(durable)).ok());
  EXPECT_TRUE(f->DataSync().ok());
  EXPECT_TRUE(f->SyncDirectory().ok());
  return f;
}

TEST(SimDisk, ReadsSeeWritesInOrder) {
  SimDisk disk;
  std::unique_ptr<File> f = MustOpen(disk, "/d/f", kCreate);
  EXPECT_TRUE(f->created());
  ASSERT_TRUE(f->WriteAt(0, Bytes("aaaaaaaa")).ok());
  ASSERT_TRUE(f->WriteAt(4, Bytes("bbbbbbbb")).ok());
  ASSERT_TRUE(f->WriteAt(20, Bytes("c")).ok());  // leaves a gap of zeros
  EXPECT_EQ(*f->Size(), 21u);
  std::string out(32, 'x');
  absl::StatusOr<size_t> n =
      f->ReadAt(0, {reinterpret_cast<std::byte*>(out.data()), out.size()});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 21u);  // short only at the end of the file
  EXPECT_EQ(out.substr(0, 21), std::string("aaaabbbbbbbb\0\0\0\0\0\0\0\0c", 21));
  EXPECT_EQ(disk.VolatileOps("/d/f"), 3u);
  EXPECT_EQ(disk.DurableContents("/d/f", 0, 100), "");
}

TEST(SimDisk, SyncedWritesNeverVanish) {
  const std::string synced(4096, 's');
  int unsynced_lost = 0, unsynced_kept = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, synced);
    ASSERT_TRUE(f->WriteAt(4096, Bytes(std::string(4096, 'u'))).ok());
    disk.Crash(seed);
    ASSERT_TRUE(disk.Exists("/d/f"));
    EXPECT_EQ(disk.Contents("/d/f", 0, 4096), synced) << "seed " << seed;
    const std::string tail = disk.Contents("/d/f", 4096, 4096);
    if (tail == std::string(4096, 'u')) {
      ++unsynced_kept;
    } else {
      ++unsynced_lost;
    }
    EXPECT_EQ(disk.VolatileOps("/d/f"), 0u);
  }
  EXPECT_GT(unsynced_lost, 0);  // unsynced writes may vanish ...
  EXPECT_GT(unsynced_kept, 0);  // ... or land
}

TEST(SimDisk, ALyingDiskLosesSyncedWrites) {
  int lost = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SimDisk disk(SimDiskOptions{.data_sync_is_a_no_op = true});
    std::unique_ptr<File> f = MustOpen(disk, "/d/f", kCreate);
    ASSERT_TRUE(f->SyncDirectory().ok());
    ASSERT_TRUE(f->WriteAt(0, Bytes("synced")).ok());
    ASSERT_TRUE(f->DataSync().ok());
    disk.Crash(seed);
    lost += disk.Contents("/d/f", 0, 6) != "synced";
  }
  EXPECT_GT(lost, 0);
}

TEST(SimDisk, DataSyncCoversOnlyEarlierWrites) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, "");
    ASSERT_TRUE(f->WriteAt(0, Bytes(std::string(512, 'a'))).ok());
    ASSERT_TRUE(f->DataSync().ok());
    ASSERT_TRUE(f->WriteAt(0, Bytes(std::string(512, 'b'))).ok());
    disk.Crash(seed);
    const std::string got = disk.Contents("/d/f", 0, 512);
    EXPECT_TRUE(got == std::string(512, 'a') || got == std::string(512, 'b'))
        << "seed " << seed;
  }
}

TEST(SimDisk, TornWritesKeepASectorPrefix) {
  const std::string old(8 * 512, 'o');
  const std::string fresh(8 * 512, 'n');
  std::set<size_t> prefixes;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, old);
    ASSERT_TRUE(f->WriteAt(0, Bytes(fresh)).ok());
    disk.Crash(seed);
    const std::string got = disk.Contents("/d/f", 0, old.size());
    ASSERT_EQ(got.size(), old.size());
    const size_t k = got.find('o') == std::string::npos ? got.size()
                                                         : got.find('o');
    EXPECT_EQ(k % 512, 0u) << "torn inside a sector, seed " << seed;
    EXPECT_EQ(got.substr(0, k), fresh.substr(0, k)) << "seed " << seed;
    EXPECT_EQ(got.substr(k), old.substr(k)) << "not a prefix, seed " << seed;
    prefixes.insert(k);
  }
  EXPECT_TRUE(prefixes.count(0) && prefixes.count(old.size()));
  EXPECT_GT(prefixes.size(), 4u);  // torn at several sector boundaries
}

TEST(SimDisk, TornUnalignedWriteTearsAtSectorBoundaries) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, std::string(2048, 'o'));
    ASSERT_TRUE(f->WriteAt(300, Bytes(std::string(1000, 'n'))).ok());
    disk.Crash(seed);
    const std::string got = disk.Contents("/d/f", 0, 2048);
    // Sectors 0 (bytes 300..511), 1 and 2 (..1299): each all old or all new,
    // and new ones form a prefix.
    const std::string s0 = got.substr(300, 212), s1 = got.substr(512, 512),
                      s2 = got.substr(1024, 276);
    auto is = [](const std::string& s, char c) {
      return s == std::string(s.size(), c);
    };
    ASSERT_TRUE(is(s0, 'o') || is(s0, 'n')) << seed;
    ASSERT_TRUE(is(s1, 'o') || is(s1, 'n')) << seed;
    ASSERT_TRUE(is(s2, 'o') || is(s2, 'n')) << seed;
    EXPECT_TRUE(!is(s1, 'n') || is(s0, 'n')) << seed;
    EXPECT_TRUE(!is(s2, 'n') || is(s1, 'n')) << seed;
    EXPECT_TRUE(is(got.substr(0, 300), 'o') && is(got.substr(1300), 'o'));
  }
}

TEST(SimDisk, UnsyncedWritesLandInAnySubsetAndOrder) {
  // Two writes to different sectors: each may land without the other. Two
  // writes to one sector: the sector ends old, first or second.
  std::set<std::string> separate, same;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, std::string(3 * 512, '0'));
    ASSERT_TRUE(f->WriteAt(0, Bytes(std::string(512, '1'))).ok());
    ASSERT_TRUE(f->WriteAt(512, Bytes(std::string(512, '2'))).ok());
    ASSERT_TRUE(f->WriteAt(1024, Bytes(std::string(512, 'a'))).ok());
    ASSERT_TRUE(f->WriteAt(1024, Bytes(std::string(512, 'b'))).ok());
    disk.Crash(seed);
    const std::string got = disk.Contents("/d/f", 0, 3 * 512);
    separate.insert({got[0], got[512]});
    same.insert(std::string(1, got[1024]));
  }
  EXPECT_EQ(separate, (std::set<std::string>{"00", "02", "10", "12"}))
      << "every subset of two independent writes, including the later "
         "without the earlier";
  EXPECT_EQ(same, (std::set<std::string>{"0", "a", "b"}));
}

TEST(SimDisk, AllocateGrowsVolatileAndLeavesHoles) {
  int size_kept = 0, size_lost = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, std::string(4096, 'x'));
    ASSERT_TRUE(f->Allocate(0, uint64_t{512} << 20).ok());  // sparse
    EXPECT_EQ(*f->Size(), uint64_t{512} << 20);
    EXPECT_EQ(*f->NextData(0), 0u);
    EXPECT_EQ(*f->NextData(4096), uint64_t{512} << 20);  // all hole
    ASSERT_TRUE(f->WriteAt(uint64_t{1} << 20, Bytes("data")).ok());
    EXPECT_EQ(*f->NextData(4096), uint64_t{1} << 20);
    std::string zeros(4096, 'z');
    ASSERT_EQ(*f->ReadAt(8192, {reinterpret_cast<std::byte*>(zeros.data()),
                                zeros.size()}),
              4096u);
    EXPECT_EQ(zeros, std::string(4096, '\0'));
    disk.Crash(seed);
    const uint64_t size = disk.FileSize("/d/f");
    EXPECT_TRUE(size == 4096 || size == uint64_t{512} << 20 ||
                size == (uint64_t{1} << 20) + 4)
        << size;
    (size == 4096 ? size_lost : size_kept)++;
  }
  EXPECT_GT(size_kept, 0);
  EXPECT_GT(size_lost, 0);
}

TEST(SimDisk, SizeMayLandWithoutTheData) {
  // ALICE: an appending write that is lost can still leave the file longer,
  // the new space reading as zeros.
  bool seen = false;
  for (uint64_t seed = 0; seed < 200 && !seen; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, std::string(512, 'x'));
    ASSERT_TRUE(f->WriteAt(512, Bytes(std::string(1024, 'y'))).ok());
    disk.Crash(seed);
    const std::string got = disk.Contents("/d/f", 0, 4096);
    if (got.size() == 1536 && got.substr(1024) == std::string(512, '\0')) {
      seen = true;
    }
  }
  EXPECT_TRUE(seen);
}

TEST(SimDisk, CreationIsLostWithoutSyncDirectory) {
  int lost = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    SimDisk disk;
    {
      std::unique_ptr<File> f = MustOpen(disk, "/d/new", kCreate);
      ASSERT_TRUE(f->WriteAt(0, Bytes("x")).ok());
      ASSERT_TRUE(f->DataSync().ok());  // the data, not the name
      EXPECT_FALSE(disk.CreationDurable("/d/new"));
    }
    {
      std::unique_ptr<File> g = MustOpen(disk, "/e/synced", kCreate);
      ASSERT_TRUE(g->DataSync().ok());
      ASSERT_TRUE(g->SyncDirectory().ok());
    }
    disk.Crash(seed);
    EXPECT_TRUE(disk.Exists("/e/synced"));
    if (!disk.Exists("/d/new")) {
      ++lost;
      EXPECT_EQ(disk.Open("/d/new", kWriter).status().code(),
                absl::StatusCode::kNotFound);
    } else {
      EXPECT_EQ(disk.Contents("/d/new", 0, 10), "x");
    }
  }
  EXPECT_GT(lost, 0);
  EXPECT_LT(lost, 100);
}

TEST(SimDisk, SyncDirectoryCoversOnlyItsDirectory) {
  int lost = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SimDisk disk;
    std::unique_ptr<File> a = MustOpen(disk, "/a/f", kCreate);
    std::unique_ptr<File> b = MustOpen(disk, "/b/f", kCreate);
    ASSERT_TRUE(a->SyncDirectory().ok());
    disk.Crash(seed);
    EXPECT_TRUE(disk.Exists("/a/f"));
    lost += !disk.Exists("/b/f");
  }
  EXPECT_GT(lost, 0);
}

TEST(SimDisk, UnlinkUndoesACreation) {
  SimDisk disk;
  std::unique_ptr<File> f = MustOpen(disk, "/d/f", kCreate);
  ASSERT_TRUE(f->Unlink().ok());
  EXPECT_FALSE(disk.Exists("/d/f"));
  f.reset();
  disk.Crash(1);
  EXPECT_FALSE(disk.Exists("/d/f"));
  // A durable name removed without a directory sync may come back.
  int back = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SimDisk d;
    std::unique_ptr<File> g = FileWith(d, "kept");
    ASSERT_TRUE(g->Unlink().ok());
    g.reset();
    d.Crash(seed);
    if (d.Exists("/d/f")) {
      ++back;
      EXPECT_EQ(d.Contents("/d/f", 0, 10), "kept");
    }
  }
  EXPECT_GT(back, 0);
}

TEST(SimDisk, LocksConflictLikeFlock) {
  SimDisk disk;
  std::unique_ptr<File> writer = MustOpen(disk, "/d/f", kCreate);
  absl::StatusOr<std::unique_ptr<File>> second = disk.Open("/d/f", kWriter);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("/d/f"), std::string::npos);
  EXPECT_EQ(disk.Open("/d/f", kReader).status().code(),
            absl::StatusCode::kFailedPrecondition);
  writer.reset();
  std::unique_ptr<File> r1 = MustOpen(disk, "/d/f", kReader);
  std::unique_ptr<File> r2 = MustOpen(disk, "/d/f", kReader);
  EXPECT_EQ(disk.Open("/d/f", kWriter).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r1->WriteAt(0, Bytes("x")).code(), absl::StatusCode::kFailedPrecondition)
      << "a read-only file refuses writes (EBADF)";
  r1.reset();
  r2.reset();
  MustOpen(disk, "/d/f", kWriter);
  EXPECT_EQ(disk.Open("/d/missing", kWriter).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(disk.Open("/d/missing", kReader).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SimDisk, CrashInvalidatesHandlesAndReleasesLocks) {
  SimDisk disk;
  std::unique_ptr<File> f = FileWith(disk, "abc");
  disk.Crash(3);
  std::string out(3, ' ');
  absl::StatusOr<size_t> n =
      f->ReadAt(0, {reinterpret_cast<std::byte*>(out.data()), out.size()});
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss) << n.status();
  EXPECT_EQ(f->WriteAt(0, Bytes("x")).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(f->DataSync().code(), absl::StatusCode::kDataLoss);
  std::unique_ptr<File> g = MustOpen(disk, "/d/f", kWriter);  // not locked
  EXPECT_FALSE(g->created());
  EXPECT_NE(g->fd(), f->fd());
  f.reset();  // closing a dead handle releases nothing of g's
  EXPECT_EQ(disk.Open("/d/f", kWriter).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SimDisk, FailAfterFailsEverythingFromThePoint) {
  SimDisk disk;
  std::unique_ptr<File> f = FileWith(disk, std::string(512, 'a'));
  const uint64_t before = disk.mutations();
  disk.FailAfter(2);
  ASSERT_TRUE(f->WriteAt(512, Bytes("1")).ok());
  ASSERT_TRUE(f->Allocate(0, 8192).ok());
  EXPECT_FALSE(disk.failing());
  const absl::Status third = f->WriteAt(0, Bytes("2"));
  EXPECT_EQ(third.code(), absl::StatusCode::kDataLoss) << third;
  EXPECT_NE(third.message().find("offset 0 of /d/f"), std::string::npos)
      << third;
  EXPECT_NE(third.message().find("errno 5"), std::string::npos) << third;
  EXPECT_TRUE(disk.failing());
  EXPECT_EQ(disk.mutations(), before + 2);
  std::string out(1, ' ');
  EXPECT_FALSE(
      f->ReadAt(0, {reinterpret_cast<std::byte*>(out.data()), 1}).ok());
  EXPECT_FALSE(f->DataSync().ok());
  EXPECT_FALSE(f->Size().ok());
  EXPECT_FALSE(f->NextData(0).ok());
  EXPECT_FALSE(disk.Open("/d/g", kCreate).ok());
  EXPECT_EQ(disk.Contents("/d/f", 0, 1), "a");  // the failed write did nothing
  disk.Crash(7);  // the power is back
  EXPECT_FALSE(disk.failing());
  std::unique_ptr<File> g = MustOpen(disk, "/d/f", kWriter);
  EXPECT_TRUE(g->WriteAt(0, Bytes("3")).ok());
  disk.FailAfter(0);
  EXPECT_FALSE(g->DataSync().ok());
  disk.ClearFailAfter();
  EXPECT_TRUE(g->DataSync().ok());
}

TEST(SimDisk, DirectIoChecksAlignment) {
  for (const size_t align : {size_t{512}, size_t{4096}}) {
    SimDisk disk(SimDiskOptions{.direct_io_alignment = align});
    std::unique_ptr<File> f =
        MustOpen(disk, "/d/f", FileOptions{.create = true, .direct_io = true});
    EXPECT_TRUE(f->direct_io());
    EXPECT_EQ(*f->DirectIoAlignment(), align);
    auto* buf = static_cast<std::byte*>(std::aligned_alloc(4096, 3 * 4096));
    std::span<std::byte> aligned(buf, align);
    EXPECT_TRUE(f->WriteAt(align, aligned).ok());
    EXPECT_EQ(f->WriteAt(1, aligned).code(), absl::StatusCode::kInternal);
    EXPECT_EQ(f->WriteAt(0, aligned.first(align - 1)).code(),
              absl::StatusCode::kInternal);
    EXPECT_EQ(*f->ReadAt(0, aligned), align);
    const absl::StatusOr<size_t> bad = f->ReadAt(align / 2, aligned);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal) << bad.status();
    EXPECT_NE(bad.status().message().find("offset"), std::string::npos);
    EXPECT_EQ(f->ReadAt(0, std::span<std::byte>(buf + 1, align)).status().code(),
              absl::StatusCode::kInternal);
    std::free(buf);
  }
  SimDisk no_direct(SimDiskOptions{.supports_direct_io = false});
  EXPECT_EQ(no_direct.Open("/d/f", FileOptions{.create = true}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(no_direct.Exists("/d/f"));  // the failed open undid it
  absl::StatusOr<std::unique_ptr<File>> fallback = no_direct.Open(
      "/d/f", FileOptions{.create = true, .allow_buffered_fallback = true});
  ASSERT_TRUE(fallback.ok());
  EXPECT_FALSE((*fallback)->direct_io());
}

// The same operations and seed give the same crashed image; other seeds
// give others.
TEST(SimDisk, DeterministicForASeed) {
  auto run = [](uint64_t seed) {
    SimDisk disk;
    std::unique_ptr<File> f = FileWith(disk, std::string(8192, 'd'));
    for (int i = 0; i < 40; ++i) {
      const std::string data(300 + 97 * i, static_cast<char>('A' + i % 26));
      EXPECT_TRUE(f->WriteAt((i * 1543) % 20000, Bytes(data)).ok());
      if (i == 19) {
        EXPECT_TRUE(f->DataSync().ok());
      }
    }
    disk.Crash(seed);
    return disk.Contents("/d/f", 0, 1 << 20);
  };
  std::set<std::string> images;
  for (uint64_t seed = 100; seed < 110; ++seed) {
    const std::string image = run(seed);
    EXPECT_EQ(image, run(seed)) << "seed " << seed;
    images.insert(image);
  }
  EXPECT_GT(images.size(), 5u);
}

// ---- FakeIoRing on a SimDisk ----

struct RingOnDisk {
  explicit RingOnDisk(FakeIoRingOptions options = {}) {
    options.disk = &disk;
    ring = std::make_unique<FakeIoRing>(options);
    file = MustOpen(disk, "/d/log", kCreate);
  }
  // Runs one operation to completion; its result.
  int32_t Run(bool write, std::span<std::byte> data, uint64_t offset) {
    const bool queued =
        write ? ring->PrepareWrite(file->fd(), data, offset, 1)
              : ring->PrepareRead(file->fd(), data, offset, 1);
    EXPECT_TRUE(queued);
    return Finish();
  }
  int32_t Sync() {
    EXPECT_TRUE(ring->PrepareDataSync(file->fd(), 1));
    return Finish();
  }
  int32_t Finish() {
    EXPECT_TRUE(ring->Submit().ok());
    std::vector<IoCompletion> out;
    EXPECT_EQ(*ring->Reap(1, 1, out), 1u);
    return out.at(0).result;
  }

  SimDisk disk;
  std::unique_ptr<FakeIoRing> ring;
  std::unique_ptr<File> file;
};

TEST(FakeIoRingOnSimDisk, WritesAreVolatileUntilItsDataSync) {
  RingOnDisk r;
  std::string data(4096, 'w');
  std::span<std::byte> bytes(reinterpret_cast<std::byte*>(data.data()),
                             data.size());
  EXPECT_EQ(r.Run(true, bytes, 4096), 4096);
  EXPECT_EQ(r.disk.Contents("/d/log", 4096, 4096), data);
  EXPECT_EQ(r.disk.DurableContents("/d/log", 4096, 4096), "");
  EXPECT_EQ(r.disk.VolatileOps("/d/log"), 1u);
  // Reads through the ring and through the File see it.
  std::string back(4096, ' ');
  EXPECT_EQ(r.Run(false, {reinterpret_cast<std::byte*>(back.data()), 4096},
                  4096),
            4096);
  EXPECT_EQ(back, data);
  EXPECT_EQ(r.Run(false, {reinterpret_cast<std::byte*>(back.data()), 4096},
                  8192),
            0);  // past the end
  EXPECT_EQ(r.Sync(), 0);
  EXPECT_EQ(r.disk.DurableContents("/d/log", 4096, 4096), data);
  EXPECT_TRUE(r.ring->image(r.file->fd()).empty());
  ASSERT_TRUE(r.file->SyncDirectory().ok());
  r.disk.Crash(11);
  EXPECT_EQ(r.disk.Contents("/d/log", 4096, 4096), data);
}

TEST(FakeIoRingOnSimDisk, TheDisksFaultPointFailsRingOperations) {
  RingOnDisk r;
  std::string data(512, 'w');
  std::span<std::byte> bytes(reinterpret_cast<std::byte*>(data.data()), 512);
  r.disk.FailAfter(1);
  EXPECT_EQ(r.Run(true, bytes, 0), 512);
  EXPECT_EQ(r.Run(true, bytes, 512), -EIO);
  EXPECT_EQ(r.Sync(), -EIO);
  EXPECT_EQ(r.Run(false, bytes, 0), -EIO);
  r.disk.ClearFailAfter();
  r.disk.Crash(5);
  EXPECT_EQ(r.Run(true, bytes, 0), -EIO) << "the handle died in the crash";
  std::unique_ptr<File> closed = MustOpen(r.disk, "/d/other", kCreate);
  const int fd = closed->fd();
  closed.reset();
  EXPECT_TRUE(r.ring->PrepareWrite(fd, bytes, 0, 1));
  EXPECT_EQ(r.Finish(), -EBADF);
}

TEST(FakeIoRingOnSimDisk, InjectedFaultsStillApply) {
  RingOnDisk r(FakeIoRingOptions{.seed = 3,
                                 .direct_io_alignment = 512,
                                 .short_write_one_in = 1,
                                 .fsync_eio_once = true});
  auto* buf = static_cast<std::byte*>(std::aligned_alloc(4096, 4096));
  std::memset(buf, 'q', 4096);
  const int32_t n = r.Run(true, {buf, 4096}, 0);
  EXPECT_GT(n, 0);
  EXPECT_LT(n, 4096);
  EXPECT_EQ(n % 512, 0);
  EXPECT_EQ(r.disk.FileSize("/d/log"), static_cast<uint64_t>(n));
  EXPECT_EQ(r.Run(true, {buf + 1, 512}, 0), -EINVAL);
  EXPECT_EQ(r.Sync(), -EIO);  // injected: the disk never saw it
  EXPECT_EQ(r.disk.VolatileOps("/d/log"), 1u);
  EXPECT_EQ(r.Sync(), 0);
  EXPECT_EQ(r.disk.VolatileOps("/d/log"), 0u);
  EXPECT_EQ(*r.ring->DirectIoAlignment(r.file->fd()), 512u);
  std::free(buf);
}

TEST(FakeIoRingOnSimDisk, ReorderedWritesAllLand) {
  RingOnDisk r(FakeIoRingOptions{.seed = 9, .reorder = true,
                                 .max_delay_reaps = 3});
  std::vector<std::string> blocks;
  for (int i = 0; i < 32; ++i) blocks.push_back(std::string(512, 'a' + i % 26));
  for (int i = 0; i < 32; ++i) {
    ASSERT_TRUE(r.ring->PrepareWrite(
        r.file->fd(),
        {reinterpret_cast<const std::byte*>(blocks[i].data()), 512},
        uint64_t(i) * 512, i));
  }
  ASSERT_TRUE(r.ring->Submit().ok());
  std::vector<IoCompletion> out;
  while (out.size() < 32) ASSERT_TRUE(r.ring->Reap(1, 32, out).ok());
  bool reordered = false;
  uint64_t last = 0;
  for (const auto& e : r.ring->events()) {
    reordered |= e.offset < last;
    last = e.offset;
  }
  EXPECT_TRUE(reordered);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(r.disk.Contents("/d/log", uint64_t(i) * 512, 512), blocks[i]);
  }
}

}  // namespace
}  // namespace lss::testing
