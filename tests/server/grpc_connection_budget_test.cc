#include "gtest/gtest.h"
#include "server/app.h"

namespace hookfan::server {
namespace {

// The flag holds when the open-file limit leaves room for it.
TEST(GrpcConnectionBudgetTest, FlagHoldsUnderAHighLimit) {
  EXPECT_EQ(GrpcConnectionBudget(10000, 1048576, 1024), 10000);
}

// Under a lower limit the HTTP edge's connections and the spare descriptors
// come first: 2048 - 1024 - 256.
TEST(GrpcConnectionBudgetTest, LimitLeavesRoomForHttpAndSpareDescriptors) {
  EXPECT_EQ(GrpcConnectionBudget(10000, 2048, 1024), 768);
  EXPECT_EQ(GrpcConnectionBudget(500, 2048, 1024), 500);
}

// A limit too low for both edges is shared: gRPC keeps a quarter of it.
TEST(GrpcConnectionBudgetTest, AQuarterOfATooLowLimitIsKept) {
  EXPECT_EQ(GrpcConnectionBudget(10000, 1024, 1024), 256);
  EXPECT_EQ(GrpcConnectionBudget(10000, 512, 1024), 128);
  EXPECT_EQ(GrpcConnectionBudget(10000, 2, 1024), 1);
}

}  // namespace
}  // namespace hookfan::server
