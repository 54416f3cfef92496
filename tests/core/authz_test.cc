#include "core/authz.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::broker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// PatternCovers(granted, requested): every type `requested` matches,
// `granted` matches too.

TEST(PatternCoversTest, LiteralCoversOnlyItself) {
  EXPECT_TRUE(
      PatternCovers("applivery.device.enrolled", "applivery.device.enrolled"));
  EXPECT_FALSE(
      PatternCovers("applivery.device.enrolled", "applivery.device.removed"));
  EXPECT_FALSE(PatternCovers("applivery.device.enrolled", "applivery.device"));
  EXPECT_FALSE(PatternCovers("applivery.device", "applivery.device.enrolled"));
  EXPECT_FALSE(
      PatternCovers("applivery.device.enrolled", "applivery.device.*"));
  EXPECT_FALSE(PatternCovers("applivery.device.enrolled", "applivery.>"));
}

TEST(PatternCoversTest, TailWildcardCoversEverythingBelowIt) {
  EXPECT_TRUE(PatternCovers("applivery.>", "applivery.device.*"));
  EXPECT_TRUE(PatternCovers("applivery.>", "applivery.device.enrolled"));
  EXPECT_TRUE(PatternCovers("applivery.>", "applivery.device"));
  EXPECT_TRUE(PatternCovers("applivery.>", "applivery.>"));
  EXPECT_TRUE(PatternCovers("applivery.>", "applivery.*"));
  EXPECT_TRUE(PatternCovers("applivery.>", "applivery.*.x.>"));
}

TEST(PatternCoversTest, TailWildcardNeedsAtLeastOneToken) {
  // "applivery.>" matches "applivery.x" but never "applivery" itself.
  EXPECT_FALSE(PatternCovers("applivery.>", "applivery"));
  EXPECT_FALSE(PatternCovers("applivery.device.>", "applivery.device"));
}

TEST(PatternCoversTest, TailWildcardDoesNotCoverOtherPrefixes) {
  EXPECT_FALSE(PatternCovers("applivery.>", "inventory.item.moved"));
  EXPECT_FALSE(PatternCovers("applivery.>", ">"));
  EXPECT_FALSE(PatternCovers("applivery.>", "*.device.enrolled"));
  EXPECT_FALSE(PatternCovers("applivery.device.>", "applivery.>"));
  EXPECT_FALSE(PatternCovers("applivery.device.>", "applivery.*.enrolled"));
}

TEST(PatternCoversTest, FullWildcardCoversEverything) {
  EXPECT_TRUE(PatternCovers(">", ">"));
  EXPECT_TRUE(PatternCovers(">", "applivery"));
  EXPECT_TRUE(PatternCovers(">", "applivery.>"));
  EXPECT_TRUE(PatternCovers(">", "*.*.*"));
  EXPECT_TRUE(PatternCovers(">", "*"));
}

TEST(PatternCoversTest, SingleWildcardCoversOneTokenOfAnyValue) {
  EXPECT_TRUE(PatternCovers("applivery.device.*", "applivery.device.enrolled"));
  EXPECT_TRUE(PatternCovers("applivery.device.*", "applivery.device.*"));
  EXPECT_TRUE(
      PatternCovers("applivery.*.enrolled", "applivery.device.enrolled"));
  EXPECT_TRUE(PatternCovers("*.*.*", "applivery.*.enrolled"));
  EXPECT_TRUE(PatternCovers("*", "applivery"));
}

TEST(PatternCoversTest, SingleWildcardDoesNotCoverMoreOrFewerTokens) {
  EXPECT_FALSE(PatternCovers("applivery.device.*", "applivery.device.x.y"));
  EXPECT_FALSE(PatternCovers("applivery.device.*", "applivery.device"));
  EXPECT_FALSE(PatternCovers("applivery.device.*", "applivery.device.>"));
  EXPECT_FALSE(PatternCovers("applivery.device.*", "applivery.>"));
  EXPECT_FALSE(PatternCovers("*", ">"));
  EXPECT_FALSE(PatternCovers("*", "a.b"));
}

TEST(PatternCoversTest, OverlappingPatternsDoNotCoverEachOther) {
  // Both match "applivery.device.enrolled", but each also matches types the
  // other does not.
  EXPECT_FALSE(PatternCovers("*.device.*", "applivery.*.enrolled"));
  EXPECT_FALSE(PatternCovers("applivery.*.enrolled", "*.device.*"));
  EXPECT_FALSE(PatternCovers("applivery.device.*", "*.device.enrolled"));
  EXPECT_FALSE(PatternCovers("applivery.*.enrolled", "applivery.device.*"));
}

TEST(PatternCoversTest, WildcardThenTail) {
  EXPECT_TRUE(PatternCovers("*.>", "applivery.device.enrolled"));
  EXPECT_TRUE(PatternCovers("*.>", "applivery.>"));
  EXPECT_TRUE(PatternCovers("*.>", "*.x"));
  EXPECT_FALSE(PatternCovers("*.>", "applivery"));
  EXPECT_FALSE(PatternCovers("*.>", ">"));
  EXPECT_TRUE(PatternCovers("applivery.*.>", "applivery.device.enrolled.late"));
  EXPECT_FALSE(PatternCovers("applivery.*.>", "applivery.device"));
}

v1::Filter Types(std::vector<std::string> types) {
  v1::Filter filter;
  for (std::string& t : types) filter.add_types(std::move(t));
  return filter;
}

class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest()
      : authz_({
            {.name = "devices",
             .tokens = {"t1", "t1-next"},
             .types = {"applivery.device.*"},
             .publish = {"internal.>"}},
            {.name = "inventory",
             .tokens = {"t2"},
             .identities = {"spiffe://cluster.local/ns/inv/sa/inventory"},
             .types = {"applivery.inventory_item.*",
                       "applivery.device.enrolled"}},
            {.name = "audit", .identities = {"audit.internal"}, .types = {">"}},
        }) {}

  // The grant the token authenticates as; fails the test if none.
  const SubscriberGrant* As(absl::string_view token) {
    absl::StatusOr<const SubscriberGrant*> caller =
        authz_.Authenticate(token, {});
    EXPECT_TRUE(caller.ok()) << caller.status();
    return caller.ok() ? *caller : nullptr;
  }

  Authorizer authz_;
};

// Without grants, anyone is let in and may do anything.
TEST_F(AuthorizerTest, WithoutGrantsEverythingIsAllowed) {
  Authorizer open({});
  EXPECT_TRUE(open.open());
  absl::StatusOr<const SubscriberGrant*> caller = open.Authenticate("", {});
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(*caller, Authorizer::kAnyone);
  EXPECT_TRUE(open.Authenticate("whatever", {}).ok());
  EXPECT_TRUE(open.CheckReceive(*caller, v1::Filter()).ok());
  EXPECT_TRUE(
      open.CheckReceiveEvent(*caller, "applivery.device.enrolled").ok());
  EXPECT_TRUE(open.CheckPublish(*caller, "applivery.device.enrolled").ok());
  EXPECT_TRUE(open.CheckManageGroup(*caller, "g", v1::Filter()).ok());
  EXPECT_FALSE(authz_.open());
}

// Each of a grant's tokens identifies it (rotation).
TEST_F(AuthorizerTest, BearerTokenIdentifiesItsGrant) {
  EXPECT_EQ(As("t1")->name, "devices");
  EXPECT_EQ(As("t1-next")->name, "devices");
  EXPECT_EQ(As("t2")->name, "inventory");
}

// A missing or unknown token is refused without echoing what was sent.
TEST_F(AuthorizerTest, MissingOrUnknownTokenIsUnauthenticated) {
  for (absl::string_view token : {"", "t3", "t", "t1 ", "T1", "t1-nex"}) {
    absl::StatusOr<const SubscriberGrant*> caller =
        authz_.Authenticate(token, {});
    EXPECT_EQ(caller.status(),
              absl::UnauthenticatedError("missing or unknown bearer token"))
        << "token \"" << token << "\"";
  }
}

// Without a token, an authenticated TLS identity listed in a grant counts.
TEST_F(AuthorizerTest, TlsIdentityIdentifiesItsGrant) {
  absl::StatusOr<const SubscriberGrant*> caller = authz_.Authenticate(
      "", {"inventory.pod", "spiffe://cluster.local/ns/inv/sa/inventory"});
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ((*caller)->name, "inventory");

  caller = authz_.Authenticate("", {"audit.internal"});
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ((*caller)->name, "audit");

  EXPECT_EQ(authz_.Authenticate("", {"stranger.internal"}).status(),
            absl::UnauthenticatedError("missing or unknown bearer token"));
}

// A presented token decides alone: a wrong one is not rescued by the
// certificate, and a right one wins over it.
TEST_F(AuthorizerTest, PresentedTokenTakesPrecedenceOverIdentity) {
  EXPECT_EQ(authz_.Authenticate("wrong", {"audit.internal"}).status(),
            absl::UnauthenticatedError("missing or unknown bearer token"));
  absl::StatusOr<const SubscriberGrant*> caller =
      authz_.Authenticate("t1", {"audit.internal"});
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ((*caller)->name, "devices");
}

// Every requested type pattern must be covered by a granted one.
TEST_F(AuthorizerTest, ReceiveNeedsEveryPatternCovered) {
  const SubscriberGrant* devices = As("t1");
  EXPECT_TRUE(authz_.CheckReceive(devices, Types({"applivery.device.*"})).ok());
  EXPECT_TRUE(
      authz_.CheckReceive(devices, Types({"applivery.device.enrolled"})).ok());
  EXPECT_EQ(authz_.CheckReceive(
                devices, Types({"applivery.device.enrolled", "applivery.>"})),
            absl::PermissionDeniedError(
                "client \"devices\" may not receive \"applivery.>\" "
                "(granted: applivery.device.*)"));

  const SubscriberGrant* inventory = As("t2");
  EXPECT_TRUE(
      authz_
          .CheckReceive(inventory, Types({"applivery.inventory_item.created",
                                          "applivery.device.enrolled"}))
          .ok());
  EXPECT_EQ(
      authz_.CheckReceive(inventory, Types({"applivery.device.*"})),
      absl::PermissionDeniedError(
          "client \"inventory\" may not receive \"applivery.device.*\" "
          "(granted: applivery.inventory_item.*, applivery.device.enrolled)"));
}

// Other filter parts narrow a type pattern; they never widen access.
TEST_F(AuthorizerTest, ReceiveIgnoresNonTypeFilterParts) {
  v1::Filter filter = Types({"applivery.device.*"});
  filter.add_actions("emm_*");
  filter.add_organization_ids("org-1");
  EXPECT_TRUE(authz_.CheckReceive(As("t1"), filter).ok());
}

// A filter without type patterns asks for every type: only ">" covers it.
TEST_F(AuthorizerTest, EmptyTypeFilterNeedsFullWildcard) {
  EXPECT_EQ(
      authz_.CheckReceive(As("t1"), v1::Filter()),
      absl::PermissionDeniedError("client \"devices\" may not receive every "
                                  "type (the filter names no type "
                                  "pattern; granted: applivery.device.*)"));
  absl::StatusOr<const SubscriberGrant*> audit =
      authz_.Authenticate("", {"audit.internal"});
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(authz_.CheckReceive(*audit, v1::Filter()).ok());
}

// A malformed requested pattern is the caller's mistake, not a denial.
TEST_F(AuthorizerTest, InvalidRequestedPatternIsInvalidArgument) {
  absl::Status status =
      authz_.CheckReceive(As("t1"), Types({"applivery.>.device"}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("applivery.>.device"));
}

// A grant with no receive patterns receives nothing.
TEST_F(AuthorizerTest, GrantWithoutTypesReceivesNothing) {
  Authorizer authz(
      {{.name = "producer", .tokens = {"p"}, .publish = {"internal.>"}}});
  absl::StatusOr<const SubscriberGrant*> producer = authz.Authenticate("p", {});
  ASSERT_TRUE(producer.ok());
  EXPECT_EQ(authz.CheckReceive(*producer, Types({"internal.x"})),
            absl::PermissionDeniedError("client \"producer\" may not receive "
                                        "\"internal.x\" (granted: none)"));
}

// A stored event's type must be covered; the error does not reveal it.
TEST_F(AuthorizerTest, ReceiveEventChecksTheTypeWithoutNamingIt) {
  const SubscriberGrant* devices = As("t1");
  EXPECT_TRUE(
      authz_.CheckReceiveEvent(devices, "applivery.device.enrolled").ok());
  absl::Status status =
      authz_.CheckReceiveEvent(devices, "applivery.inventory_item.created");
  EXPECT_EQ(status, absl::PermissionDeniedError(
                        "client \"devices\" may not receive this event "
                        "(granted: applivery.device.*)"));
  EXPECT_THAT(status.message(), Not(HasSubstr("inventory_item")));
}

// Publishing is granted separately from receiving.
TEST_F(AuthorizerTest, PublishNeedsAPublishGrant) {
  const SubscriberGrant* devices = As("t1");
  EXPECT_TRUE(authz_.CheckPublish(devices, "internal.x").ok());
  EXPECT_TRUE(authz_.CheckPublish(devices, "internal.device.wiped").ok());
  EXPECT_EQ(
      authz_.CheckPublish(devices, "applivery.device.enrolled"),
      absl::PermissionDeniedError(
          "client \"devices\" may not publish \"applivery.device.enrolled\" "
          "(granted: internal.>)"));
  // Receiving a type does not allow publishing it.
  EXPECT_EQ(
      authz_.CheckPublish(As("t2"), "applivery.device.enrolled"),
      absl::PermissionDeniedError(
          "client \"inventory\" may not publish \"applivery.device.enrolled\" "
          "(granted: none)"));
}

// A group may be managed by clients that may receive all it receives.
TEST_F(AuthorizerTest, ManageGroupNeedsItsFilterCovered) {
  const SubscriberGrant* devices = As("t1");
  EXPECT_TRUE(authz_
                  .CheckManageGroup(devices, "enrolments",
                                    Types({"applivery.device.enrolled"}))
                  .ok());
  EXPECT_EQ(authz_.CheckManageGroup(devices, "everything", v1::Filter()),
            absl::PermissionDeniedError(
                "client \"devices\" may not manage consumer group "
                "\"everything\": it receives "
                "more than granted (granted: applivery.device.*)"));
  EXPECT_EQ(
      authz_.CheckManageGroup(devices, "all-applivery", Types({"applivery.>"}))
          .code(),
      absl::StatusCode::kPermissionDenied);
}

// The one rule both the sources parser and the Authorizer apply: a name,
// token or identity belongs to one grant; the later grant is the culprit.
TEST(GrantClashTest, FindsTheFirstLaterGrantRepeatingAnEarlierOnesClaim) {
  using What = GrantClash::What;
  EXPECT_FALSE(FindGrantClash(std::vector<SubscriberGrant>{
                                  {.name = "a", .tokens = {"x"}, .identities = {"i"}},
                                  {.name = "b", .tokens = {"y"}, .identities = {"j"}}})
                   .has_value());
  std::optional<GrantClash> token = FindGrantClash(std::vector<SubscriberGrant>{
      {.name = "a", .tokens = {"x"}}, {.name = "b", .tokens = {"y", "x"}}});
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->what, What::kToken);
  EXPECT_EQ(token->grant, 1u);
  EXPECT_EQ(token->other, 0u);
  EXPECT_EQ(token->item, 1u);
  std::optional<GrantClash> identity = FindGrantClash(std::vector<SubscriberGrant>{
      {.name = "a", .identities = {"i"}}, {.name = "b"}, {.name = "c", .identities = {"i"}}});
  ASSERT_TRUE(identity.has_value());
  EXPECT_EQ(identity->what, What::kIdentity);
  EXPECT_EQ(identity->grant, 2u);
  EXPECT_EQ(identity->other, 0u);
  std::optional<GrantClash> name =
      FindGrantClash(std::vector<SubscriberGrant>{{.name = "a"}, {.name = "a"}});
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->what, What::kName);
}

// Broken start-up config is a bug upstream (the parser rejects it): crash.
TEST(AuthorizerDeathTest, InvalidGrantsAbort) {
  EXPECT_DEATH(Authorizer({{.name = "a", .tokens = {"x"}, .types = {"a.>.b"}}}),
               "invalid subscriber grants");
  EXPECT_DEATH(Authorizer({{.name = "a", .tokens = {"x"}},
                           {.name = "b", .tokens = {"x"}}}),
               "share a token");
  EXPECT_DEATH(Authorizer({{.name = "a", .identities = {"i"}},
                           {.name = "b", .identities = {"i"}}}),
               "share the identity");
  EXPECT_DEATH(Authorizer({{.name = "a", .tokens = {"x"}},
                           {.name = "a", .tokens = {"y"}}}),
               "duplicate subscriber name");
}

}  // namespace
}  // namespace hookfan::broker
