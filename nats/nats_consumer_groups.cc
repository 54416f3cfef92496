#include "nats/nats_consumer_groups.h"

#include <algorithm>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/filter.h"
#include "core/ingest.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "nats/nats_event_log.h"

namespace hookfan::broker {
namespace {

constexpr absl::string_view kDurablePrefix = "hookfan-grp-";
// JetStream refuses longer consumer descriptions.
constexpr size_t kMaxDescription = 4096;
// Unacked events of one group at once, over all its members (JetStream's
// default, 1000, would cap a group below a few members' max_in_flight).
constexpr int64_t kGroupMaxAckPending = 65536;
// A member retries a fetch that failed for a passing reason after this.
constexpr absl::Duration kRetryWait = absl::Milliseconds(250);
// How often an idle member makes sure its group still exists, in case the
// deletion advisory did not reach this replica.
constexpr absl::Duration kCheckInterval = absl::Seconds(5);
// Margin for a pull request's expiry on the server.
constexpr absl::Duration kRequestSlack = absl::Milliseconds(50);
// How long a no-wait fetch may take when nothing is there: nats.c 3.4 does
// not return on the server's "no messages" answer but at the request's
// expiry, so that is kept short.
constexpr absl::Duration kNoWaitExpiry = absl::Milliseconds(10);
// A dead letter that could not be recorded is tried again after this.
constexpr absl::Duration kDeadLetterRetry = absl::Seconds(1);

constexpr jsErrCode kNoJsError = static_cast<jsErrCode>(0);

using OwnedConsumerInfo = Owned<jsConsumerInfo, jsConsumerInfo_Destroy>;
using OwnedConsumerInfoList = Owned<jsConsumerInfoList, jsConsumerInfoList_Destroy>;
using OwnedStreamInfo = Owned<jsStreamInfo, jsStreamInfo_Destroy>;
using OwnedMsg = Owned<natsMsg, natsMsg_Destroy>;

struct MsgDeleter {
  void operator()(natsMsg* msg) const { natsMsg_Destroy(msg); }
};
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;


absl::Duration AckDeadline(const v1::ConsumerOpen& open) {
  return open.has_ack_deadline() ? ToDuration(open.ack_deadline()) : kDefaultAckDeadline;
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  int64_t nanos = Nanos(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// The group config (GroupConfig) plus the ack deadline, which is the
// JetStream consumer's and so fixed at creation too.
v1::ConsumerOpen NatsGroupConfig(const v1::ConsumerOpen& open) {
  v1::ConsumerOpen config = GroupConfig(open);
  SetDuration(AckDeadline(open), config.mutable_ack_deadline());
  return config;
}

// The group config kept in a consumer's Description. nullopt if it holds
// none.
std::optional<v1::ConsumerOpen> DecodeConfig(const char* description) {
  std::string bytes;
  v1::ConsumerOpen config;
  if (description == nullptr || !absl::Base64Unescape(description, &bytes) ||
      !config.ParseFromString(bytes) || config.group().empty()) {
    return std::nullopt;
  }
  return config;
}

absl::Status NoGroup(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no consumer group \"", name, "\""));
}

absl::Status Deleted(const std::string& name) {
  return absl::AbortedError(absl::StrCat("consumer group \"", name, "\" was deleted"));
}

absl::Status Disconnected() { return absl::UnavailableError("lost the NATS connection"); }

// The config of each of a group's consumers (events, redrives, snapshot):
// explicit acks within the group's ack_deadline, no limit on deliveries
// (hookfan dead-letters: see Admit), one in flight for key_ordered groups.
// The strings must outlive the config.
jsConsumerConfig GroupConsumerConfig(const std::string& durable, const std::string& description,
                                     const v1::ConsumerOpen& config, int replicas) {
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.Description = description.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = Nanos(ToDuration(config.ack_deadline()));
  cc.MaxDeliver = -1;
  cc.MaxAckPending = config.key_ordered() ? 1 : kGroupMaxAckPending;
  cc.Replicas = replicas;
  return cc;
}

// The numbered last token of "<...>.<n>".
std::optional<uint64_t> LastNumber(absl::string_view subject) {
  size_t dot = subject.rfind('.');
  uint64_t n = 0;
  if (dot == absl::string_view::npos || !absl::SimpleAtoi(subject.substr(dot + 1), &n)) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

// NatsGroupMember is one member's pull subscriptions on its group's two
// consumers (events, redriven events) and the thread that fetches from them
// into `ready_`; Poll moves leases from there to `held_`.
class NatsGroupMember : public ConsumerGroupMember {
 public:
  NatsGroupMember(NatsConsumerGroups* groups, v1::ConsumerOpen config, Filter filter,
                  uint32_t max_in_flight, std::function<void()> wake)
      : groups_(groups),
        connection_(groups->connection_),
        config_(std::move(config)),
        durable_(NatsConsumerGroups::DurableName(config_.group())),
        filter_(std::move(filter)),
        max_in_flight_(max_in_flight),
        ack_wait_(ToDuration(config_.ack_deadline())),
        wake_(std::move(wake)) {}
  ~NatsGroupMember() override;
  NatsGroupMember(const NatsGroupMember&) = delete;
  NatsGroupMember& operator=(const NatsGroupMember&) = delete;

  // Binds to the group's consumers and starts fetching. Errors: kAborted
  // (the group was deleted meanwhile), kUnavailable.
  absl::Status Start();

  absl::StatusOr<std::vector<Delivery>> Poll(
      size_t max, size_t max_bytes = std::numeric_limits<size_t>::max()) override;
  absl::Status Ack(absl::Span<const uint64_t> sequences) override;
  absl::Status Nack(absl::Span<const uint64_t> sequences, absl::Duration delay) override;
  absl::Status Extend(absl::Span<const uint64_t> sequences, absl::Duration extension) override;
  uint64_t ignored() const override {
    MutexLock lock(&mu_);
    return ignored_;
  }

  const std::string& group() const { return config_.group(); }
  // Poll fails with `why` from now on (the first reason stays).
  void End(const absl::Status& why);

 private:
  // A fetched message and what it carries.
  // Where a fetched message comes from: the group's consumer on the events
  // stream, its redrives, or its snapshot (a consumer on the latest view).
  enum class Source { kEvents, kRedrive, kSnapshot };
  struct Lease {
    MsgPtr msg;
    bool redriven = false;     // msg is a redrive message on the dead-letter stream
    uint64_t msg_sequence = 0;  // msg's stream sequence
    EventPtr event;
    uint32_t attempt = 0;
    absl::Time deadline;
  };

  bool CanFetch() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !error_.ok() || held_.size() + ready_.size() < max_in_flight_;
  }
  void FetchLoop();
  // Fetches up to `n` messages into `out`.
  natsStatus Fetch(natsSubscription* sub, int n, bool no_wait, std::vector<MsgPtr>* out);
  // What a fetched message becomes: a lease to hand out, or nothing (acked,
  // dead-lettered or dropped here).
  std::optional<Lease> Admit(MsgPtr msg, Source source);
  // Deletes the snapshot's consumer once everything of the snapshot was
  // delivered and acked (fetch thread); snapshot_done_ once it is gone.
  void FinishSnapshot();
  // Hands `lease` back for redelivery after `delay`, or dead-letters it
  // when that was its last attempt.
  absl::Status Fail(Lease lease, absl::Duration delay);
  absl::Status DeadLetter(Lease lease, uint32_t attempts);
  // Leases no longer valid (their deadline passed: JetStream redelivers
  // them) are forgotten.
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Lease> TakeHeld(absl::Span<const uint64_t> sequences);
  // Why a fetch or an ack failed: OK for a passing failure, else the error
  // that ends the member.
  absl::Status Diagnose();
  void Wake();

  NatsConsumerGroups* const groups_;
  NatsConnection* const connection_;
  const v1::ConsumerOpen config_;  // NatsGroupConfig()
  const std::string durable_;
  const Filter filter_;
  const uint32_t max_in_flight_;
  const absl::Duration ack_wait_;
  natsSubscription* sub_ = nullptr;          // on the group's consumer
  natsSubscription* redrive_sub_ = nullptr;  // on its redrive consumer
  // On its snapshot consumer, while the group delivers a snapshot (fetch
  // thread only after Start).
  natsSubscription* snapshot_sub_ = nullptr;
  NatsConsumerGroups::SnapshotRange snapshot_;
  bool snapshot_done_ = false;  // fetch thread only
  std::thread fetcher_;

  mutable Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool parked_ ABSL_GUARDED_BY(mu_) = false;  // the last Poll found nothing
  std::map<uint64_t, Lease> ready_ ABSL_GUARDED_BY(mu_);  // by event sequence
  std::map<uint64_t, Lease> held_ ABSL_GUARDED_BY(mu_);
  std::vector<Lease> leftovers_ ABSL_GUARDED_BY(mu_);  // fetched while stopping
  // When the pull requests sent so far expire on the server.
  absl::Time requests_expire_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t ignored_ ABSL_GUARDED_BY(mu_) = 0;

  Mutex wake_mu_;  // serializes wakes
  const std::function<void()> wake_;
};

absl::Status NatsGroupMember::Start() {
  RETURN_IF_ERROR(groups_->Register(this));
  auto bind = [this](natsSubscription** sub, const std::string& stream) -> absl::Status {
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = stream.c_str();
    options.Consumer = durable_.c_str();
    jsErrCode jerr = kNoJsError;
    natsStatus s = js_PullSubscribe(sub, connection_->js(), nullptr, durable_.c_str(), nullptr,
                                    &options, &jerr);
    absl::Status status = NatsStatus(s, jerr, absl::StrCat("joining group ", group()));
    if (absl::IsNotFound(status)) return Deleted(group());
    return status;
  };
  RETURN_IF_ERROR(bind(&sub_, connection_->options().stream));
  RETURN_IF_ERROR(bind(&redrive_sub_, groups_->DeadStream()));
  // A group that started from a snapshot delivers it until done.
  absl::StatusOr<std::optional<NatsConsumerGroups::SnapshotRange>> found =
      groups_->FindSnapshot(durable_);
  if (!found.ok()) return absl::UnavailableError(found.status().message());
  // A snapshot consumer is this group's only if the group's events start
  // right after it (one left by a creation cut short, for a group then
  // created without a snapshot start, is not).
  bool ours = false;
  if (found->has_value()) {
    Owned<jsConsumerInfo, jsConsumerInfo_Destroy> info;
    jsErrCode jerr = kNoJsError;
    natsStatus s = js_GetConsumerInfo(info.out(), connection_->js(),
                                      connection_->options().stream.c_str(), durable_.c_str(),
                                      nullptr, &jerr);
    absl::Status status = NatsStatus(s, jerr, absl::StrCat("joining group ", group()));
    nats_GetLastError(nullptr);
    if (absl::IsNotFound(status)) return Deleted(group());
    if (!status.ok()) return absl::UnavailableError(status.message());
    ours = info->Config->DeliverPolicy == js_DeliverByStartSequence &&
           info->Config->OptStartSeq == (*found)->through + 1;
  }
  if (const std::optional<NatsConsumerGroups::SnapshotRange>& range = *found; ours) {
    absl::Status bound = bind(&snapshot_sub_, groups_->View()->Stream());
    if (bound.ok()) {
      snapshot_ = *range;
    } else if (!absl::IsAborted(bound)) {
      return bound;
    }  // else done and deleted meanwhile
  }
  fetcher_ = std::thread([this] { FetchLoop(); });
  return absl::OkStatus();
}

NatsGroupMember::~NatsGroupMember() {
  groups_->Unregister(this);
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  // Ends a fetch in progress at once (the consumers stay: these
  // subscriptions did not create them).
  if (sub_ != nullptr) natsSubscription_Unsubscribe(sub_);
  if (redrive_sub_ != nullptr) natsSubscription_Unsubscribe(redrive_sub_);
  if (snapshot_sub_ != nullptr) natsSubscription_Unsubscribe(snapshot_sub_);
  if (fetcher_.joinable()) fetcher_.join();
  // What it held goes back to the group rather than waiting for its
  // deadline (counted as a failed attempt, as a lapsed lease would be) —
  // once the pull requests this member left on the server have expired:
  // nats-server 2.9.10 was seen mishandling nacks that met such a request
  // whose subscriber was gone (one event lost until AckWait, another
  // delivered twice with its delivery count going back from 2 to 1).
  std::vector<Lease> back;
  absl::Duration wait;
  {
    MutexLock lock(&mu_);
    for (auto* leases : {&held_, &ready_}) {
      for (auto& [seq, lease] : *leases) back.push_back(std::move(lease));
      leases->clear();
    }
    for (Lease& lease : leftovers_) back.push_back(std::move(lease));
    leftovers_.clear();
    wait = std::max(absl::ZeroDuration(), requests_expire_ + kRequestSlack - absl::Now());
  }
  for (Lease& lease : back) Fail(std::move(lease), wait).IgnoreError();
  connection_->EndSubscriptions({sub_, redrive_sub_, snapshot_sub_});
}

void NatsGroupMember::End(const absl::Status& why) {
  {
    MutexLock lock(&mu_);
    if (!error_.ok()) return;
    error_ = why;
  }
  Wake();
}

void NatsGroupMember::Wake() {
  MutexLock lock(&wake_mu_);
  if (wake_) wake_();
}

natsStatus NatsGroupMember::Fetch(natsSubscription* sub, int n, bool no_wait,
                                  std::vector<MsgPtr>* out) {
  natsMsgList list;
  natsStatus s;
  if (no_wait) {
    jsFetchRequest request;
    jsFetchRequest_Init(&request);
    request.Batch = n;
    request.NoWait = true;
    request.Expires = Nanos(kNoWaitExpiry);
    s = natsSubscription_FetchRequest(&list, sub, &request);
  } else {
    jsErrCode jerr = kNoJsError;
    s = natsSubscription_Fetch(&list, sub, n, Millis(groups_->options_.fetch_wait), &jerr);
  }
  if (s != NATS_OK) return s;
  for (int i = 0; i < list.Count; ++i) {
    out->emplace_back(list.Msgs[i]);
    list.Msgs[i] = nullptr;
  }
  natsMsgList_Destroy(&list);
  return NATS_OK;
}

void NatsGroupMember::FetchLoop() {
  absl::Time last_check = absl::Now();
  absl::Time next_redrive_check = absl::InfinitePast();
  absl::Time next_snapshot_check = absl::InfinitePast();
  while (true) {
    size_t room = 0;
    {
      MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &NatsGroupMember::CanFetch));
      if (stopping_ || !error_.ok()) return;
      room = max_in_flight_ - held_.size() - ready_.size();
      requests_expire_ = absl::Now() + groups_->options_.fetch_wait;
    }
    // A snapshot's entries first, while it lasts (a key_ordered group, one
    // event in flight, takes nothing else until its snapshot is done: it
    // waits on the snapshot instead). Then redriven events (looked for at
    // most once per fetch_wait: a redrive is an operator's action), then
    // new ones: one request waits for a single event, then a no-wait
    // request takes whatever else is there. Only single-event requests
    // wait: nats.c 3.4 leaves the rest of a batch request open on the
    // server when it returns, and the server would deliver into it beyond
    // this member's room, the leases running out unseen. A failed fetch of
    // snapshot entries or redriven events is of no consequence (the next
    // round tries again; a deleted group shows in the other fetch).
    std::vector<MsgPtr> snapshot, redriven, fresh;
    const bool in_snapshot = snapshot_sub_ != nullptr && !snapshot_done_;
    const bool hold_events = in_snapshot && config_.key_ordered();
    natsStatus snapshot_fetch = NATS_TIMEOUT;
    if (in_snapshot) {
      snapshot_fetch = Fetch(snapshot_sub_, hold_events ? 1 : static_cast<int>(room),
                             /*no_wait=*/!hold_events, &snapshot);
      if (snapshot_fetch != NATS_OK) nats_GetLastError(nullptr);
      // Nothing came (or the consumer is gone): is the snapshot done?
      if (snapshot.empty() && absl::Now() >= next_snapshot_check) {
        next_snapshot_check = absl::Now() + groups_->options_.fetch_wait;
        FinishSnapshot();
      }
    }
    if (!hold_events && snapshot.size() < room && absl::Now() >= next_redrive_check) {
      next_redrive_check = absl::Now() + groups_->options_.fetch_wait;
      if (Fetch(redrive_sub_, static_cast<int>(room - snapshot.size()), /*no_wait=*/true,
                &redriven) != NATS_OK) {
        nats_GetLastError(nullptr);
      }
    }
    natsStatus s =
        hold_events && !snapshot_done_ && snapshot_fetch != NATS_OK ? snapshot_fetch : NATS_OK;
    const size_t early = snapshot.size() + redriven.size();
    if (!hold_events && early < room) {
      s = Fetch(sub_, 1, /*no_wait=*/early > 0, &fresh);
      if (s == NATS_OK && early + fresh.size() < room &&
          Fetch(sub_, static_cast<int>(room - early - fresh.size()), /*no_wait=*/true,
                &fresh) != NATS_OK) {
        nats_GetLastError(nullptr);  // nothing more now
      }
      if (s == NATS_TIMEOUT && early > 0) {
        nats_GetLastError(nullptr);
        s = NATS_OK;
      }
    }

    std::vector<Lease> leases;
    for (auto [msgs, source] : {std::pair{&snapshot, Source::kSnapshot},
                                std::pair{&redriven, Source::kRedrive},
                                std::pair{&fresh, Source::kEvents}}) {
      for (MsgPtr& msg : *msgs) {
        if (std::optional<Lease> lease = Admit(std::move(msg), source)) {
          leases.push_back(*std::move(lease));
        }
      }
    }
    bool wake = false;
    {
      MutexLock lock(&mu_);
      if (stopping_) {
        for (Lease& lease : leases) leftovers_.push_back(std::move(lease));  // for the destructor
        return;
      }
      for (Lease& lease : leases) {
        uint64_t seq = lease.event->event.sequence();
        held_.erase(seq);  // a stale lease of ours, redelivered
        ready_[seq] = std::move(lease);
      }
      wake = !leases.empty() && parked_;
      if (wake) parked_ = false;
    }
    if (wake) Wake();

    if (s == NATS_OK) continue;
    nats_GetLastError(nullptr);
    if (s == NATS_TIMEOUT) {  // nothing to fetch
      if (!connection_->connected()) {
        End(Disconnected());
        return;
      }
      if (absl::Now() - last_check < kCheckInterval) continue;
      last_check = absl::Now();
    } else {
      MutexLock lock(&mu_);
      if (stopping_) return;  // the destructor unsubscribed
    }
    // A failed fetch (or a long idle one): is the group still there?
    if (absl::Status why = Diagnose(); !why.ok()) {
      End(why);
      return;
    }
    if (s != NATS_TIMEOUT) {
      log::Warn("consumer group fetch failed; retrying",
                {{"group", group()}, {"error", natsStatus_GetText(s)}});
      MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), kRetryWait);
    }
  }
}

absl::Status NatsGroupMember::Diagnose() {
  if (!connection_->connected()) return Disconnected();
  absl::Status status = groups_->CheckGroup(group());
  if (absl::IsNotFound(status)) return Deleted(group());
  if (!status.ok()) return absl::UnavailableError(status.message());
  return absl::OkStatus();
}

std::optional<NatsGroupMember::Lease> NatsGroupMember::Admit(MsgPtr msg, Source source) {
  Lease lease;
  lease.redriven = source == Source::kRedrive;
  {
    Owned<jsMsgMetaData, jsMsgMetaData_Destroy> meta;
    if (natsMsg_GetMetaData(meta.out(), msg.get()) != NATS_OK) {
      nats_GetLastError(nullptr);
      return std::nullopt;  // not a JetStream delivery
    }
    lease.attempt = static_cast<uint32_t>(meta->NumDelivered);
    lease.msg_sequence = meta->Sequence.Stream;
  }
  if (source == Source::kSnapshot) {
    // An entry of the latest view: the whole event. Entries written after
    // the snapshot was taken (the group's consumer on the events stream
    // delivers those) are passed over, and say the snapshot is done.
    absl::StatusOr<EventPtr> event =
        NatsConnection::DecodeEvent(msg.get(), NatsLatestView::kThroughHeader);
    if (!event.ok()) {
      natsMsg_Term(msg.get(), nullptr);
      return std::nullopt;
    }
    if (lease.msg_sequence > snapshot_.view_sequence ||
        (*event)->event.sequence() > snapshot_.through) {
      natsMsg_AckSync(msg.get(), nullptr, nullptr);
      nats_GetLastError(nullptr);
      if (lease.msg_sequence > snapshot_.view_sequence) FinishSnapshot();
      return std::nullopt;
    }
    if (!filter_.Matches((*event)->event)) {
      natsMsg_Ack(msg.get(), nullptr);  // not for this group
      return std::nullopt;
    }
    lease.event = *std::move(event);
  } else if (source == Source::kEvents) {
    absl::StatusOr<EventPtr> event = NatsConnection::DecodeEvent(msg.get());
    if (!event.ok()) {
      log::Error("consumer group skips an event that does not decode",
                 {{"group", group()}, {"error", event.status().ToString()}});
      natsMsg_Term(msg.get(), nullptr);
      return std::nullopt;
    }
    if (!filter_.Matches((*event)->event)) {
      natsMsg_Ack(msg.get(), nullptr);  // not for this group
      return std::nullopt;
    }
    lease.event = *std::move(event);
  } else {
    // A redrive message carries the event's sequence; the event is read
    // from the log.
    uint64_t seq = 0;
    absl::string_view data(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get()));
    if (!absl::SimpleAtoi(data, &seq)) {
      natsMsg_Term(msg.get(), nullptr);
      return std::nullopt;
    }
    absl::StatusOr<std::vector<EventPtr>> read = groups_->log_->Read(seq, 1);
    if (!read.ok()) {
      natsMsg_NakWithDelay(msg.get(), Millis(kRetryWait), nullptr);
      return std::nullopt;
    }
    if (read->empty() || read->front()->event.sequence() != seq) {
      natsMsg_Term(msg.get(), nullptr);  // removed by retention since
      return std::nullopt;
    }
    lease.event = read->front();
  }
  lease.msg = std::move(msg);
  if (lease.event->wire.size() > kMaxDeliverableEventBytes) {
    // No default client can receive it (ConsumerGroupMember::Poll): it
    // fails alone, now.
    log::Warn("event too large to deliver",
              {{"group", group()},
               {"sequence", lease.event->event.sequence()},
               {"bytes", lease.event->wire.size()}});
    uint32_t attempts = lease.attempt - 1;
    DeadLetter(std::move(lease), attempts).IgnoreError();
    return std::nullopt;
  }
  if (lease.attempt > config_.max_deliveries()) {
    // A lease of its last attempt lapsed: JetStream offers it once more.
    uint32_t attempts = lease.attempt - 1;
    DeadLetter(std::move(lease), attempts).IgnoreError();
    return std::nullopt;
  }
  lease.deadline = groups_->options_.clock->Now() + ack_wait_;
  return lease;
}

void NatsGroupMember::FinishSnapshot() {
  if (snapshot_done_) return;
  const std::string stream = groups_->View()->Stream();
  Owned<jsConsumerInfo, jsConsumerInfo_Destroy> info;
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_GetConsumerInfo(info.out(), connection_->js(), stream.c_str(),
                                    durable_.c_str(), nullptr, &jerr);
  absl::Status found = NatsStatus(s, jerr, "looking up a group's snapshot");
  nats_GetLastError(nullptr);
  if (absl::IsNotFound(found)) {
    snapshot_done_ = true;  // another member finished it
    return;
  }
  if (!found.ok()) return;  // looked at again later
  // Everything up to the snapshot's end delivered, and nothing of it
  // handed out or waiting to be offered again.
  const bool delivered =
      info->NumPending == 0 || info->Delivered.Stream >= snapshot_.view_sequence;
  if (!delivered || info->NumAckPending > 0 || info->NumRedelivered > 0) return;
  jerr = kNoJsError;
  s = js_DeleteConsumer(connection_->js(), stream.c_str(), durable_.c_str(), nullptr, &jerr);
  absl::Status deleted = NatsStatus(s, jerr, "deleting a group's snapshot");
  nats_GetLastError(nullptr);
  if (!deleted.ok() && !absl::IsNotFound(deleted)) return;
  snapshot_done_ = true;
  if (deleted.ok()) {
    log::Info("consumer group delivered its snapshot",
              {{"group", group()}, {"through", snapshot_.through}});
  }
}

absl::Status NatsGroupMember::DeadLetter(Lease lease, uint32_t attempts) {
  uint64_t seq = lease.event->event.sequence();
  absl::Status status = groups_->PublishDeadLetter(durable_, lease.event, attempts);
  if (!status.ok()) {
    log::Error("dead letter not recorded; the event will be offered again",
               {{"group", group()}, {"sequence", seq}, {"error", status.ToString()}});
    natsMsg_NakWithDelay(lease.msg.get(), Millis(kDeadLetterRetry), nullptr);
    return status;
  }
  natsMsg_Term(lease.msg.get(), nullptr);
  groups_->dead_lettered_.fetch_add(1, std::memory_order_relaxed);
  log::Warn("event dead-lettered", {{"group", group()}, {"sequence", seq}, {"attempts", attempts}});
  return absl::OkStatus();
}

absl::Status NatsGroupMember::Fail(Lease lease, absl::Duration delay) {
  if (uint32_t attempts = lease.attempt; attempts >= config_.max_deliveries()) {
    return DeadLetter(std::move(lease), attempts);
  }
  natsStatus s = delay > absl::ZeroDuration()
                     ? natsMsg_NakWithDelay(lease.msg.get(), Millis(delay), nullptr)
                     : natsMsg_Nak(lease.msg.get(), nullptr);
  return NatsStatus(s, kNoJsError, "handing an event back");
}

void NatsGroupMember::ExpireLocked(absl::Time now) {
  for (auto* leases : {&held_, &ready_}) {
    std::erase_if(*leases, [now](const auto& entry) { return entry.second.deadline <= now; });
  }
}

absl::StatusOr<std::vector<Delivery>> NatsGroupMember::Poll(size_t max, size_t max_bytes) {
  MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  ExpireLocked(groups_->options_.clock->Now());
  std::vector<Delivery> out;
  size_t bytes = 0;
  while (out.size() < max && !ready_.empty()) {
    // The rest stays ready (fetched, its JetStream lease running) for the
    // next response.
    bytes += ready_.begin()->second.event->wire.size();
    if (!out.empty() && bytes > max_bytes) break;
    auto node = ready_.extract(ready_.begin());
    const Lease& lease = node.mapped();
    out.push_back(Delivery{lease.event, lease.attempt, lease.deadline});
    groups_->deliveries_.fetch_add(1, std::memory_order_relaxed);
    if (lease.attempt > 1) groups_->redeliveries_.fetch_add(1, std::memory_order_relaxed);
    held_.insert(std::move(node));
  }
  parked_ = out.empty();
  return out;
}

std::vector<NatsGroupMember::Lease> NatsGroupMember::TakeHeld(
    absl::Span<const uint64_t> sequences) {
  MutexLock lock(&mu_);
  ExpireLocked(groups_->options_.clock->Now());
  std::vector<Lease> taken;
  for (uint64_t seq : sequences) {
    auto it = held_.find(seq);
    if (it == held_.end()) {
      ++ignored_;
      continue;
    }
    taken.push_back(std::move(it->second));
    held_.erase(it);
  }
  return taken;
}

absl::Status NatsGroupMember::Ack(absl::Span<const uint64_t> sequences) {
  absl::Status result;
  for (Lease& lease : TakeHeld(sequences)) {
    if (!result.ok()) {
      natsMsg_Ack(lease.msg.get(), nullptr);  // unconfirmed, in case it gets through
      continue;
    }
    jsErrCode jerr = kNoJsError;
    natsStatus s = natsMsg_AckSync(lease.msg.get(), nullptr, &jerr);
    if (s == NATS_OK) {
      if (lease.redriven) {
        // Done with the redrive message too (best effort: it is acked).
        if (js_DeleteMsg(connection_->js(), groups_->DeadStream().c_str(), lease.msg_sequence,
                         nullptr, nullptr) != NATS_OK) {
          nats_GetLastError(nullptr);
        }
      }
      continue;
    }
    nats_GetLastError(nullptr);
    absl::Status why = Diagnose();
    if (absl::IsAborted(why)) {
      End(why);  // as with GroupManager, acks to a deleted group are moot
      return absl::OkStatus();
    }
    result = why.ok() ? NatsStatus(s, jerr, "acking an event") : why;
    if (result.code() != absl::StatusCode::kUnavailable) {
      result = absl::UnavailableError(result.message());
    }
  }
  return result;
}

absl::Status NatsGroupMember::Nack(absl::Span<const uint64_t> sequences, absl::Duration delay) {
  absl::Status result;
  for (Lease& lease : TakeHeld(sequences)) {
    absl::Status s = Fail(std::move(lease), delay);
    if (result.ok() && !s.ok()) result = absl::UnavailableError(s.message());
  }
  return result;
}

absl::Status NatsGroupMember::Extend(absl::Span<const uint64_t> sequences, absl::Duration) {
  MutexLock lock(&mu_);
  absl::Time now = groups_->options_.clock->Now();
  ExpireLocked(now);
  for (uint64_t seq : sequences) {
    auto it = held_.find(seq);
    if (it == held_.end()) {
      ++ignored_;
      continue;
    }
    // JetStream restarts the lease at now + AckWait (an async publish).
    natsStatus s = natsMsg_InProgress(it->second.msg.get(), nullptr);
    if (s != NATS_OK) return NatsStatus(s, kNoJsError, "extending a lease");
    it->second.deadline = now + ack_wait_;
  }
  return absl::OkStatus();
}

NatsConsumerGroups::NatsConsumerGroups(NatsConnection* connection, EventLog* log,
                                       Options options)
    : connection_(connection), log_(log), options_(options) {}

absl::StatusOr<std::unique_ptr<NatsConsumerGroups>> NatsConsumerGroups::Create(
    NatsConnection* connection, EventLog* log, Options options) {
  std::unique_ptr<NatsConsumerGroups> groups(new NatsConsumerGroups(connection, log, options));
  absl::Status setup = groups->EnsureSetUp();
  if (!setup.ok() && !absl::IsUnavailable(setup)) return setup;
  NatsConsumerGroups* self = groups.get();
  groups->connection_listener_ = connection->AddListener([self](bool connected) {
    if (!connected) self->EndMembers("", Disconnected());
  });
  // Members learn of their group's deletion on any replica from JetStream's
  // advisory; without it (no permission), from a failed fetch or ack, or
  // from the check an idle member makes every kCheckInterval.
  const std::string advisories = absl::StrCat("$JS.EVENT.ADVISORY.CONSUMER.DELETED.",
                                              connection->options().stream, ".*");
  natsStatus s = natsConnection_Subscribe(&groups->deletions_, connection->nc(),
                                          advisories.c_str(), &OnConsumerDeleted, self);
  if (s == NATS_OK) {
    s = natsSubscription_SetOnCompleteCB(groups->deletions_, &OnDeletionsClosed, self);
  }
  if (s != NATS_OK) {
    log::Warn("not watching for deleted consumer groups",
              {{"subject", advisories}, {"error", natsStatus_GetText(s)}});
    nats_GetLastError(nullptr);
    connection->EndSubscription(groups->deletions_);
    groups->deletions_ = nullptr;
  }
  return groups;
}

void NatsConsumerGroups::OnConsumerDeleted(natsConnection*, natsSubscription*, natsMsg* msg,
                                           void* closure) {
  absl::string_view subject = natsMsg_GetSubject(msg);
  std::optional<std::string> group = GroupName(subject.substr(subject.rfind('.') + 1));
  natsMsg_Destroy(msg);
  if (group.has_value()) static_cast<NatsConsumerGroups*>(closure)->EndMembers(*group, Deleted(*group));
}

void NatsConsumerGroups::OnDeletionsClosed(void* closure) {
  static_cast<NatsConsumerGroups*>(closure)->deletions_closed_.Notify();
}

absl::Status NatsConsumerGroups::EnsureSetUp() {
  RETURN_IF_ERROR(log_->Opened());
  MutexLock lock(&setup_mu_);
  if (set_up_) return absl::OkStatus();
  RETURN_IF_ERROR(Setup());
  set_up_ = true;
  return absl::OkStatus();
}

absl::Status NatsConsumerGroups::Setup() {
  const std::string stream = DeadStream();
  jsErrCode jerr = kNoJsError;
  OwnedStreamInfo info;
  natsStatus s = js_GetStreamInfo(info.out(), connection_->js(), stream.c_str(), nullptr, &jerr);
  absl::Status found = NatsStatus(s, jerr, absl::StrCat("looking up stream ", stream));
  const int64_t max_bytes = connection_->options().dead_letter_max_bytes();
  if (found.ok()) return connection_->LimitStreamBytes(stream, max_bytes);
  if (!absl::IsNotFound(found)) return found;
  const std::string dead = absl::StrCat(connection_->options().stream, ".dead.>");
  const std::string redrive = absl::StrCat(connection_->options().stream, ".redrive.>");
  const char* subjects[] = {dead.c_str(), redrive.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = stream.c_str();
  config.Description = "hookfan consumer groups: dead letters and redrives";
  config.Subjects = subjects;
  config.SubjectsLen = 2;
  config.Storage = js_FileStorage;
  config.Retention = js_LimitsPolicy;
  config.Discard = js_DiscardOld;  // a full store drops the oldest letters, never a new one
  config.MaxBytes = max_bytes;
  config.Replicas = connection_->options().replicas;
  jerr = kNoJsError;
  s = js_AddStream(info.out(), connection_->js(), &config, nullptr, &jerr);
  RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("creating stream ", stream)));
  log::Info("created JetStream stream", {{"stream", stream}, {"replicas", config.Replicas}});
  return absl::OkStatus();
}

NatsConsumerGroups::~NatsConsumerGroups() {
  Shutdown();
  if (deletions_ != nullptr) {
    // Waits out a callback in progress (it would not come if the
    // connection were closed: the wait is bounded).
    if (natsSubscription_Unsubscribe(deletions_) != NATS_OK) nats_GetLastError(nullptr);
    deletions_closed_.WaitForNotificationWithTimeout(absl::Seconds(1));
    connection_->EndSubscription(deletions_);
  }
  connection_->RemoveListener(connection_listener_);
  MutexLock lock(&mu_);
  if (!members_.empty()) log::Error("NatsConsumerGroups destroyed before its members");
}

std::string NatsConsumerGroups::DurableName(absl::string_view group) {
  std::string name = absl::StrCat(kDurablePrefix, group);
  std::replace(name.begin() + kDurablePrefix.size(), name.end(), '.', '~');
  return name;
}

std::optional<std::string> NatsConsumerGroups::GroupName(absl::string_view durable) {
  if (!absl::ConsumePrefix(&durable, kDurablePrefix)) return std::nullopt;
  std::string group(durable);
  std::replace(group.begin(), group.end(), '~', '.');
  if (!ValidateGroupName(group).ok()) return std::nullopt;
  return group;
}

std::string NatsConsumerGroups::DeadStream() const {
  return absl::StrCat(connection_->options().stream, "_DEAD");
}

std::string NatsConsumerGroups::DeadSubject(absl::string_view durable, uint64_t sequence) const {
  return absl::StrCat(connection_->options().stream, ".dead.", durable, ".", sequence);
}

std::string NatsConsumerGroups::DeadSubjects(absl::string_view durable) const {
  return absl::StrCat(connection_->options().stream, ".dead.", durable, ".*");
}

std::string NatsConsumerGroups::RedriveSubject(absl::string_view durable) const {
  return absl::StrCat(connection_->options().stream, ".redrive.", durable);
}

absl::Status NatsConsumerGroups::Register(NatsGroupMember* member) {
  MutexLock lock(&mu_);
  if (shutdown_) return ShuttingDownError();
  members_[member->group()].insert(member);
  return absl::OkStatus();
}

void NatsConsumerGroups::Unregister(NatsGroupMember* member) {
  MutexLock lock(&mu_);
  auto it = members_.find(member->group());
  if (it == members_.end()) return;
  it->second.erase(member);
  if (it->second.empty()) members_.erase(it);
}

void NatsConsumerGroups::EndMembers(const std::string& group, const absl::Status& why) {
  MutexLock lock(&mu_);
  EndMembersLocked(group, why);
}

void NatsConsumerGroups::EndMembersLocked(const std::string& group, const absl::Status& why) {
  // Members unregister (under mu_) before they die, so those listed live.
  for (auto& [name, members] : members_) {
    if (!group.empty() && name != group) continue;
    for (NatsGroupMember* m : members) m->End(why);
  }
}

void NatsConsumerGroups::Shutdown() {
  MutexLock lock(&mu_);
  if (shutdown_) return;
  shutdown_ = true;
  EndMembersLocked("", ShuttingDownError());
}

absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> NatsConsumerGroups::Join(
    const v1::ConsumerOpen& open, std::function<void()> wake) {
  RETURN_IF_ERROR(ValidateGroupName(open.group()));
  if (open.max_in_flight() > kMaxMaxInFlight) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight must be at most ", kMaxMaxInFlight));
  }
  if (AckDeadline(open) < absl::Seconds(1)) {
    return absl::InvalidArgumentError("ack_deadline must be at least 1s");
  }
  ASSIGN_OR_RETURN(Filter filter, Filter::Create(open.filter()));
  {
    MutexLock lock(&mu_);
    if (shutdown_) return ShuttingDownError();
  }
  RETURN_IF_ERROR(EnsureSetUp());
  v1::ConsumerOpen config = NatsGroupConfig(open);
  RETURN_IF_ERROR(EnsureGroup(open, config));
  auto member = std::make_unique<NatsGroupMember>(
      this, std::move(config), std::move(filter),
      open.max_in_flight() == 0 ? kDefaultMaxInFlight : open.max_in_flight(), std::move(wake));
  RETURN_IF_ERROR(member->Start());
  return member;
}

absl::Status NatsConsumerGroups::EnsureGroup(const v1::ConsumerOpen& open,
                                             const v1::ConsumerOpen& config) {
  const std::string& name = config.group();
  const std::string durable = DurableName(name);
  const std::string description = absl::Base64Escape(config.SerializeAsString());
  if (description.size() > kMaxDescription) {
    return absl::InvalidArgumentError(absl::StrCat(
        "consumer group \"", name, "\" has too long a filter for the NATS store (",
        description.size(), " bytes encoded, at most ", kMaxDescription, ")"));
  }
  const std::string& stream = connection_->options().stream;
  const std::string dead_stream = DeadStream();
  const std::string filter_subject = connection_->SubjectFilter(
      config.filter().types_size() == 1 ? config.filter().types(0) : "");
  const std::string redrive_subject = RedriveSubject(durable);

  jsConsumerConfig cc = GroupConsumerConfig(durable, description, config,
                                            connection_->options().replicas);

  OwnedConsumerInfo info;
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_GetConsumerInfo(info.out(), connection_->js(), stream.c_str(),
                                    durable.c_str(), nullptr, &jerr);
  absl::Status found = NatsStatus(s, jerr, absl::StrCat("looking up consumer group ", name));
  if (absl::IsNotFound(found)) {
    // Letters left over from a group of this name whose deletion was cut
    // short. Its redrive consumer is kept: with its subject purged it has
    // nothing to deliver, and another replica creating this group at the
    // same moment may have just made it for its own members, which would
    // end as "deleted" if it were removed here.
    for (const std::string& subject : {DeadSubjects(durable), redrive_subject}) {
      jsOptions purge;
      jsOptions_Init(&purge);
      purge.Stream.Purge.Subject = subject.c_str();
      jerr = kNoJsError;
      s = js_PurgeStream(connection_->js(), dead_stream.c_str(), &purge, &jerr);
      RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("clearing dead letters of ", name)));
    }
    cc.FilterSubject = filter_subject.c_str();
    switch (open.start().position_case()) {
      case v1::StartPosition::kEarliest:
        cc.DeliverPolicy = js_DeliverAll;
        break;
      case v1::StartPosition::kAfterSequence:
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = open.start().after_sequence() + 1;
        break;
      case v1::StartPosition::kAtTime:
        cc.OptStartTime = absl::ToUnixNanos(ToTime(open.start().at_time()));
        cc.DeliverPolicy = cc.OptStartTime > 0 ? js_DeliverByStartTime : js_DeliverAll;
        break;
      case v1::StartPosition::kSnapshot: {
        ASSIGN_OR_RETURN(SnapshotRange range, EnsureSnapshot(durable, config));
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = range.through + 1;
        break;
      }
      default:
        cc.DeliverPolicy = js_DeliverNew;
    }
    jerr = kNoJsError;
    s = js_AddConsumer(info.out(), connection_->js(), stream.c_str(), &cc, nullptr, &jerr);
    absl::Status created = NatsStatus(s, jerr, absl::StrCat("creating consumer group ", name));
    if (created.ok()) {
      log::Info("consumer group created", {{"group", name}, {"consumer", durable}});
    } else {
      // Another replica may have created it first (with another start):
      // take what is there.
      jerr = kNoJsError;
      s = js_GetConsumerInfo(info.out(), connection_->js(), stream.c_str(), durable.c_str(),
                             nullptr, &jerr);
      if (s != NATS_OK) return created;
    }
  } else {
    RETURN_IF_ERROR(found);
  }
  std::optional<v1::ConsumerOpen> existing = DecodeConfig(info->Config->Description);
  if (!existing.has_value()) {
    return absl::DataLossError(absl::StrCat("consumer group \"", name, "\" config does not decode"));
  }
  if (existing->SerializeAsString() != config.SerializeAsString()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "consumer group \"", name,
        "\" exists with a different filter, max_deliveries, key_ordered or ack_deadline; "
        "delete it to change them"));
  }

  // Its redrive consumer, on the dead-letter stream.
  jerr = kNoJsError;
  s = js_GetConsumerInfo(info.out(), connection_->js(), dead_stream.c_str(), durable.c_str(),
                         nullptr, &jerr);
  found = NatsStatus(s, jerr, absl::StrCat("looking up the redrives of ", name));
  if (!absl::IsNotFound(found)) return found;
  cc.FilterSubject = redrive_subject.c_str();
  cc.DeliverPolicy = js_DeliverAll;
  cc.OptStartSeq = 0;
  cc.OptStartTime = 0;
  jerr = kNoJsError;
  s = js_AddConsumer(info.out(), connection_->js(), dead_stream.c_str(), &cc, nullptr, &jerr);
  absl::Status created = NatsStatus(s, jerr, absl::StrCat("creating the redrives of ", name));
  if (!created.ok()) {
    jerr = kNoJsError;  // created by another replica meanwhile?
    s = js_GetConsumerInfo(info.out(), connection_->js(), dead_stream.c_str(), durable.c_str(),
                           nullptr, &jerr);
    if (s != NATS_OK) return created;
  }
  return absl::OkStatus();
}

NatsLatestView* NatsConsumerGroups::View() const {
  auto* log = dynamic_cast<NatsEventLog*>(log_);
  return log != nullptr ? log->latest_view() : nullptr;
}

std::string NatsConsumerGroups::SnapshotRange::Encode() const {
  return absl::StrCat("hookfan group snapshot through ", through, " view ", view_sequence);
}

std::optional<NatsConsumerGroups::SnapshotRange> NatsConsumerGroups::SnapshotRange::Decode(
    absl::string_view text) {
  std::vector<absl::string_view> words = absl::StrSplit(text, ' ');
  SnapshotRange range;
  if (words.size() != 7 || words[3] != "through" || words[5] != "view" ||
      !absl::SimpleAtoi(words[4], &range.through) ||
      !absl::SimpleAtoi(words[6], &range.view_sequence)) {
    return std::nullopt;
  }
  return range;
}

absl::StatusOr<std::optional<NatsConsumerGroups::SnapshotRange>>
NatsConsumerGroups::FindSnapshot(const std::string& durable, std::string* filter_subject) {
  NatsLatestView* view = View();
  if (view == nullptr) return std::nullopt;
  Owned<jsConsumerInfo, jsConsumerInfo_Destroy> info;
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_GetConsumerInfo(info.out(), connection_->js(), view->Stream().c_str(),
                                    durable.c_str(), nullptr, &jerr);
  absl::Status found = NatsStatus(s, jerr, "looking up a group's snapshot");
  nats_GetLastError(nullptr);
  if (absl::IsNotFound(found)) return std::nullopt;
  RETURN_IF_ERROR(found);
  if (filter_subject != nullptr) {
    *filter_subject = info->Config->FilterSubject == nullptr ? "" : info->Config->FilterSubject;
  }
  return SnapshotRange::Decode(info->Config->Description == nullptr ? ""
                                                                   : info->Config->Description);
}

void NatsConsumerGroups::DropSnapshot(const std::string& durable) {
  NatsLatestView* view = View();
  if (view == nullptr) return;
  jsErrCode jerr = kNoJsError;
  if (js_DeleteConsumer(connection_->js(), view->Stream().c_str(), durable.c_str(), nullptr,
                        &jerr) != NATS_OK) {
    nats_GetLastError(nullptr);  // none: no snapshot, or delivered
  }
}

absl::StatusOr<NatsConsumerGroups::SnapshotRange> NatsConsumerGroups::EnsureSnapshot(
    const std::string& durable, const v1::ConsumerOpen& config) {
  NatsLatestView* view = View();
  if (view == nullptr || !log_->LatestView().ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "consumer group \"", config.group(), "\" cannot start from a snapshot: ",
        log_->LatestView().message()));
  }
  const std::string filter =
      view->EntriesFilter(config.filter().types_size() == 1 ? config.filter().types(0) : "");
  // Left by a creation of this group cut short (or made by another replica
  // at the same moment): the group starts where that snapshot ends. One of
  // another filter (left by a group of this name deleted midway) goes.
  std::string left_filter;
  ASSIGN_OR_RETURN(std::optional<SnapshotRange> left, FindSnapshot(durable, &left_filter));
  if (left.has_value()) {
    if (left_filter == filter) return *left;
    DropSnapshot(durable);
  }
  ASSIGN_OR_RETURN(NatsLatestView::Position at, view->Load());
  SnapshotRange range{.through = at.through, .view_sequence = at.view_sequence};
  if (range.view_sequence == 0) return range;  // an empty view: nothing to deliver first
  const std::string description = range.Encode();
  jsConsumerConfig cc = GroupConsumerConfig(durable, description, config,
                                            connection_->options().replicas);
  cc.FilterSubject = filter.c_str();
  cc.DeliverPolicy = js_DeliverAll;
  OwnedConsumerInfo info;
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_AddConsumer(info.out(), connection_->js(), view->Stream().c_str(), &cc,
                                nullptr, &jerr);
  absl::Status created =
      NatsStatus(s, jerr, absl::StrCat("creating the snapshot of consumer group ", config.group()));
  if (!created.ok()) {  // made by another replica meanwhile?
    absl::StatusOr<std::optional<SnapshotRange>> found = FindSnapshot(durable);
    if (found.ok() && found->has_value()) return **found;
    return created;
  }
  log::Info("consumer group starts from a snapshot",
            {{"group", config.group()}, {"through", range.through}});
  return range;
}

absl::Status NatsConsumerGroups::CheckGroup(const std::string& name) {
  if (!ValidateGroupName(name).ok()) return NoGroup(name);
  RETURN_IF_ERROR(EnsureSetUp());
  const std::string durable = DurableName(name);
  OwnedConsumerInfo info;
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_GetConsumerInfo(info.out(), connection_->js(),
                                    connection_->options().stream.c_str(), durable.c_str(),
                                    nullptr, &jerr);
  absl::Status status = NatsStatus(s, jerr, absl::StrCat("looking up consumer group ", name));
  if (absl::IsNotFound(status)) return NoGroup(name);
  if (!status.ok() && status.code() != absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(status.message());
  }
  return status;
}

absl::Status NatsConsumerGroups::PublishDeadLetter(absl::string_view durable,
                                                   const EventPtr& event, uint32_t attempts) {
  v1::DeadLetter letter;
  letter.mutable_event()->set_sequence(event->event.sequence());
  letter.mutable_event()->set_id(event->event.id());
  letter.set_attempts(attempts);
  SetTimestamp(options_.clock->Now(), letter.mutable_time());
  const std::string data = letter.SerializeAsString();
  const std::string subject = DeadSubject(durable, event->event.sequence());
  const std::string stream = DeadStream();
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.ExpectStream = stream.c_str();
  options.MaxWait = connection_->timeout_ms();
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_Publish(nullptr, connection_->js(), subject.c_str(), data.data(),
                            static_cast<int>(data.size()), &options, &jerr);
  return NatsStatus(s, jerr, "recording a dead letter");
}

absl::StatusOr<std::vector<uint64_t>> NatsConsumerGroups::DeadSequences(
    absl::string_view durable) {
  const std::string subjects = DeadSubjects(durable);
  jsOptions options;
  jsOptions_Init(&options);
  options.Stream.Info.SubjectsFilter = subjects.c_str();
  OwnedStreamInfo info;
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_GetStreamInfo(info.out(), connection_->js(), DeadStream().c_str(), &options,
                                  &jerr);
  RETURN_IF_ERROR(NatsStatus(s, jerr, "listing dead letters"));
  std::vector<uint64_t> out;
  if (const jsStreamStateSubjects* list = info->State.Subjects; list != nullptr) {
    for (int i = 0; i < list->Count; ++i) {
      if (std::optional<uint64_t> seq = LastNumber(list->List[i].Subject)) out.push_back(*seq);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<v1::GroupInfo> NatsConsumerGroups::ListGroups() {
  const std::string& stream = connection_->options().stream;
  const std::string dead_stream = DeadStream();
  OwnedConsumerInfoList groups, redrives;
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_Consumers(groups.out(), connection_->js(), stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND) {  // no consumers at all
    nats_GetLastError(nullptr);
    return {};
  }
  if (absl::Status status = NatsStatus(s, jerr, "listing consumer groups"); !status.ok()) {
    log::Warn("could not list consumer groups", {{"error", status.ToString()}});
    return {};
  }
  // Redrive consumers and dead letters, by durable name.
  std::map<std::string, const jsConsumerInfo*> redrive_by_durable;
  if (js_Consumers(redrives.out(), connection_->js(), dead_stream.c_str(), nullptr, nullptr) ==
      NATS_OK) {
    for (int i = 0; i < redrives->Count; ++i) {
      redrive_by_durable[redrives->List[i]->Name] = redrives->List[i];
    }
  } else {
    nats_GetLastError(nullptr);
  }
  std::map<std::string, uint64_t> dead_by_durable;
  {
    const std::string dead_prefix = absl::StrCat(stream, ".dead.");
    const std::string all_dead = absl::StrCat(dead_prefix, ">");
    jsOptions options;
    jsOptions_Init(&options);
    options.Stream.Info.SubjectsFilter = all_dead.c_str();
    OwnedStreamInfo info;
    if (js_GetStreamInfo(info.out(), connection_->js(), dead_stream.c_str(), &options, nullptr) ==
            NATS_OK &&
        info->State.Subjects != nullptr) {
      for (int i = 0; i < info->State.Subjects->Count; ++i) {
        absl::string_view subject = info->State.Subjects->List[i].Subject;
        if (!absl::ConsumePrefix(&subject, dead_prefix)) continue;
        dead_by_durable[std::string(subject.substr(0, subject.rfind('.')))]++;
      }
    } else {
      nats_GetLastError(nullptr);
    }
  }
  std::map<std::string, uint32_t> local_members;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, members] : members_) local_members[name] = members.size();
  }

  std::map<std::string, v1::GroupInfo> by_name;
  for (int i = 0; i < groups->Count; ++i) {
    const jsConsumerInfo* c = groups->List[i];
    std::optional<std::string> name = GroupName(c->Name);
    if (!name.has_value()) continue;
    std::optional<v1::ConsumerOpen> config = DecodeConfig(c->Config->Description);
    if (!config.has_value()) {
      log::Warn("consumer group config does not decode", {{"consumer", c->Name}});
      continue;
    }
    v1::GroupInfo& info = by_name[*name];
    info.set_name(*name);
    *info.mutable_filter() = config->filter();
    info.set_max_deliveries(config->max_deliveries());
    info.set_key_ordered(config->key_ordered());
    info.set_ack_floor(c->AckFloor.Stream);
    info.set_lag(c->NumPending);
    uint64_t pending = c->NumPending + c->NumAckPending;
    uint64_t in_flight = c->NumAckPending;
    if (auto r = redrive_by_durable.find(c->Name); r != redrive_by_durable.end()) {
      pending += r->second->NumPending + r->second->NumAckPending;
      in_flight += r->second->NumAckPending;
    }
    info.set_pending(pending);
    info.set_in_flight(in_flight);
    info.set_dead_letters(dead_by_durable[c->Name]);
    info.set_members(local_members[*name]);
  }
  std::vector<v1::GroupInfo> out;
  for (auto& [name, info] : by_name) out.push_back(std::move(info));
  return out;
}

absl::Status NatsConsumerGroups::DeleteGroup(const std::string& name) {
  if (!ValidateGroupName(name).ok()) return NoGroup(name);
  const std::string durable = DurableName(name);
  // Its snapshot first: left behind, it would hand a group created again
  // under this name a snapshot that group's members partly acked.
  if (NatsLatestView* view = View(); view != nullptr) {
    jsErrCode jerr = kNoJsError;
    natsStatus s = js_DeleteConsumer(connection_->js(), view->Stream().c_str(), durable.c_str(),
                                     nullptr, &jerr);
    absl::Status dropped = NatsStatus(s, jerr, absl::StrCat("deleting the snapshot of ", name));
    nats_GetLastError(nullptr);
    if (!dropped.ok() && !absl::IsNotFound(dropped)) return dropped;
  }
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_DeleteConsumer(connection_->js(), connection_->options().stream.c_str(),
                                   durable.c_str(), nullptr, &jerr);
  absl::Status status = NatsStatus(s, jerr, absl::StrCat("deleting consumer group ", name));
  if (absl::IsNotFound(status)) return NoGroup(name);
  RETURN_IF_ERROR(status);
  // The group is gone; what it leaves behind is also cleared when a group
  // of this name is created again.
  const std::string dead_stream = DeadStream();
  jerr = kNoJsError;
  s = js_DeleteConsumer(connection_->js(), dead_stream.c_str(), durable.c_str(), nullptr, &jerr);
  status = NatsStatus(s, jerr, "deleting the group's redrives");
  for (const std::string& subject : {DeadSubjects(durable), RedriveSubject(durable)}) {
    jsOptions purge;
    jsOptions_Init(&purge);
    purge.Stream.Purge.Subject = subject.c_str();
    jerr = kNoJsError;
    s = js_PurgeStream(connection_->js(), dead_stream.c_str(), &purge, &jerr);
    if (status.ok() || absl::IsNotFound(status)) {
      status = NatsStatus(s, jerr, "clearing the group's dead letters");
    }
  }
  if (!status.ok() && !absl::IsNotFound(status)) {
    log::Warn("consumer group deleted, its dead letters not", {{"group", name},
                                                                {"error", status.ToString()}});
  }
  EndMembers(name, Deleted(name));
  log::Info("consumer group deleted", {{"group", name}});
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::DeadLetter>> NatsConsumerGroups::ListDeadLetters(
    const std::string& name, uint64_t after, size_t limit) {
  RETURN_IF_ERROR(CheckGroup(name));
  const std::string durable = DurableName(name);
  ASSIGN_OR_RETURN(std::vector<uint64_t> sequences, DeadSequences(durable));
  const std::string dead_stream = DeadStream();
  std::vector<v1::DeadLetter> out;
  for (auto it = std::upper_bound(sequences.begin(), sequences.end(), after);
       it != sequences.end() && out.size() < limit; ++it) {
    const std::string subject = DeadSubject(durable, *it);
    OwnedMsg msg;
    jsErrCode jerr = kNoJsError;
    natsStatus s = js_GetLastMsg(msg.out(), connection_->js(), dead_stream.c_str(),
                                 subject.c_str(), nullptr, &jerr);
    absl::Status status = NatsStatus(s, jerr, "reading a dead letter");
    if (absl::IsNotFound(status)) continue;  // redriven meanwhile
    RETURN_IF_ERROR(status);
    v1::DeadLetter letter;
    if (!letter.ParseFromArray(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get()))) {
      return absl::DataLossError(absl::StrCat("dead letter on ", subject, " does not decode"));
    }
    ASSIGN_OR_RETURN(std::vector<EventPtr> read, log_->Read(*it, 1));
    if (!read.empty() && read.front()->event.sequence() == *it) {
      *letter.mutable_event() = read.front()->event;
    }  // else removed by retention since: the sequence (and id) only
    out.push_back(std::move(letter));
  }
  return out;
}

absl::StatusOr<uint64_t> NatsConsumerGroups::Redrive(const std::string& name,
                                                     absl::Span<const uint64_t> sequences) {
  RETURN_IF_ERROR(CheckGroup(name));
  const std::string durable = DurableName(name);
  ASSIGN_OR_RETURN(std::vector<uint64_t> dead, DeadSequences(durable));
  std::vector<uint64_t> chosen;
  if (sequences.empty()) {
    chosen = dead;
  } else {
    for (uint64_t seq : sequences) {
      if (std::binary_search(dead.begin(), dead.end(), seq)) chosen.push_back(seq);
    }
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  }
  const std::string dead_stream = DeadStream();
  const std::string redrive_subject = RedriveSubject(durable);
  uint64_t redriven = 0;
  for (uint64_t seq : chosen) {
    const std::string subject = DeadSubject(durable, seq);
    OwnedMsg letter;
    jsErrCode jerr = kNoJsError;
    natsStatus s = js_GetLastMsg(letter.out(), connection_->js(), dead_stream.c_str(),
                                 subject.c_str(), nullptr, &jerr);
    absl::Status status = NatsStatus(s, jerr, "reading a dead letter");
    if (absl::IsNotFound(status)) continue;  // redriven meanwhile
    RETURN_IF_ERROR(status);
    const uint64_t letter_sequence = natsMsg_GetSequence(letter.get());
    ASSIGN_OR_RETURN(std::vector<EventPtr> read, log_->Read(seq, 1));
    if (!read.empty() && read.front()->event.sequence() == seq) {
      // Published before the dead letter goes: a failure in between leaves
      // it both redriven and dead (at least once). The message id makes a
      // retried publish of this dead letter count once.
      const std::string data = absl::StrCat(seq);
      const std::string msg_id = absl::StrCat(durable, ".", seq, ".", letter_sequence);
      jsPubOptions options;
      jsPubOptions_Init(&options);
      options.MsgId = msg_id.c_str();
      options.ExpectStream = dead_stream.c_str();
      options.MaxWait = connection_->timeout_ms();
      jerr = kNoJsError;
      s = js_Publish(nullptr, connection_->js(), redrive_subject.c_str(), data.data(),
                     static_cast<int>(data.size()), &options, &jerr);
      RETURN_IF_ERROR(NatsStatus(s, jerr, "redriving a dead letter"));
      ++redriven;
    }  // else removed by retention since: nothing to deliver, the letter goes
    jsOptions purge;
    jsOptions_Init(&purge);
    purge.Stream.Purge.Subject = subject.c_str();
    purge.Stream.Purge.Sequence = letter_sequence + 1;  // not a newer dead letter
    jerr = kNoJsError;
    s = js_PurgeStream(connection_->js(), dead_stream.c_str(), &purge, &jerr);
    RETURN_IF_ERROR(NatsStatus(s, jerr, "removing a redriven dead letter"));
  }
  if (redriven > 0) log::Info("dead letters redriven", {{"group", name}, {"count", redriven}});
  return redriven;
}

}  // namespace hookfan::broker
