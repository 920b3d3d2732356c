// The store's options in words, as the crash loops print them when a
// writer or a verifier fails.

#include "testing/test_log.h"

#include "gtest/gtest.h"

namespace lss::testing {
namespace {

TEST(DescribeStoreOptionsTest, NamesEveryOptionTheCrashLoopsVary) {
  StoreOptions o;
  o.policy = WritePolicy::kSerialized;
  o.durability = Durability::kOnWait;
  o.buffer_bytes = 65536;
  o.ring_size = 3;
  o.direct_io = false;
  o.preallocate_bytes = 1048576;
  EXPECT_EQ(DescribeStoreOptions(o),
            "policy=kSerialized durability=kOnWait buffer_bytes=65536 "
            "ring_size=3 direct_io=0 preallocate_bytes=1048576");
  o.policy = WritePolicy::kTailLocalized;
  o.durability = Durability::kSync;
  EXPECT_EQ(WritePolicyName(o.policy), "kTailLocalized");
  EXPECT_NE(DescribeStoreOptions(o).find(
                "policy=kTailLocalized durability=kSync "),
            std::string::npos)
      << DescribeStoreOptions(o);
}

}  // namespace
}  // namespace lss::testing
