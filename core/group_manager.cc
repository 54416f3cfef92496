#include "core/group_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/ingest.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace hookfan::broker {
namespace {

constexpr size_t kFillBatch = 256;

absl::Status NoGroup(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no consumer group \"", name, "\""));
}

}  // namespace

v1::ConsumerOpen GroupConfig(const v1::ConsumerOpen& open) {
  v1::ConsumerOpen config;
  config.set_group(open.group());
  *config.mutable_filter() = open.filter();
  config.set_max_deliveries(open.max_deliveries() == 0 ? kDefaultMaxDeliveries
                                                       : open.max_deliveries());
  config.set_key_ordered(open.key_ordered());
  return config;
}

absl::Status ValidateGroupName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 128 &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                     c == '-';
            });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid group name \"", name.substr(0, 128), "\": use 1 to 128 characters of [A-Za-z0-9._-]"));
}

struct GroupManager::Pending {
  enum class State { kReady, kLeased, kWaiting };
  EventPtr event;
  uint32_t attempts = 0;  // deliveries so far
  State state = State::kReady;
  uint64_t member = 0;    // kLeased: holder
  absl::Time due = {};    // kLeased: deadline; kWaiting: not before
  uint64_t offered_to = 0;  // kReady: only this member may lease it (0: any)
};

struct GroupManager::Member {
  uint64_t id = 0;
  std::string group;
  uint32_t max_in_flight = kDefaultMaxInFlight;
  absl::Duration ack_deadline = kDefaultAckDeadline;
  // Guarded by GroupManager::mu_.
  uint32_t in_flight = 0;
  bool parked = false;  // waits for a wake
  bool idle = false;    // its last Poll returned nothing: it waits for work
  std::set<uint64_t> offers;  // ready events only it may lease (OfferLocked)
  uint64_t ignored = 0;

  void Wake() {
    MutexLock lock(&wake_mu);
    if (wake) wake();
  }
  Mutex wake_mu;
  std::function<void()> wake ABSL_GUARDED_BY(wake_mu);
};

struct GroupManager::Group {
  std::string name;
  v1::ConsumerOpen config;  // GroupConfig()
  std::unique_ptr<Subscription> reader;  // destroyed only outside mu_
  bool deleted = false;
  // Guarded by GroupManager::mu_.
  uint64_t floor = 0;
  uint64_t snapshot_through = 0;  // fixed at creation; see GroupRecord
  std::set<uint64_t> acked_above;  // restored: skip when re-read
  std::set<uint64_t> dead_above;   // dead and above the floor: skip when re-read
  uint64_t dead_letters = 0;
  std::map<uint64_t, Pending> pending;
  std::set<uint64_t> ready;
  std::map<std::string, std::set<uint64_t>> by_key;  // key_ordered only
  std::map<uint64_t, std::shared_ptr<Member>> members;
  uint64_t last_offered = 0;  // member id: offers go round-robin from here
};

GroupManager::GroupManager(EventLog* log, Fanout* fanout, GroupStore* store, Options options)
    : log_(log), fanout_(fanout), store_(store), options_(options) {}

absl::StatusOr<std::unique_ptr<GroupManager>> GroupManager::Create(EventLog* log, Fanout* fanout,
                                                                   GroupStore* store,
                                                                   Options options) {
  std::unique_ptr<GroupManager> m(new GroupManager(log, fanout, store, options));
  RETURN_IF_ERROR(m->Load());
  if (options.start_ticker) m->ticker_ = std::thread([mp = m.get()] { mp->TickerLoop(); });
  return m;
}

GroupManager::~GroupManager() {
  stop_ticker_.Notify();
  if (ticker_.joinable()) ticker_.join();
  Shutdown();
  std::vector<std::unique_ptr<Subscription>> readers;
  {
    MutexLock lock(&mu_);
    for (auto& [name, g] : groups_) readers.push_back(std::move(g->reader));
  }
  readers.clear();  // outside mu_: a log wake in progress needs mu_
}

absl::Status GroupManager::Load() {
  // Runs before the manager is shared: groups are built unlocked (a log
  // reader must never be created or destroyed under mu_), then published.
  ASSIGN_OR_RETURN(std::vector<GroupStore::GroupRecord> records, store_->LoadGroups());
  std::vector<std::shared_ptr<Group>> loaded;
  for (GroupStore::GroupRecord& r : records) {
    auto g = std::make_shared<Group>();
    g->name = r.name;
    if (!g->config.ParseFromString(r.config)) {
      return absl::DataLossError(absl::StrCat("consumer group \"", r.name, "\" config does not decode"));
    }
    g->floor = r.floor;
    g->snapshot_through = r.snapshot_through;
    g->acked_above.insert(r.acked_above_floor.begin(), r.acked_above_floor.end());
    g->dead_above.insert(r.dead_above_floor.begin(), r.dead_above_floor.end());
    g->dead_letters = r.dead_letters;
    v1::StartPosition start;
    start.set_after_sequence(r.floor);
    ASSIGN_OR_RETURN(g->reader, OpenReader(g.get(), start));
    for (const auto& [seq, attempts] : r.attempts) {
      ASSIGN_OR_RETURN(std::vector<EventPtr> read, log_->Read(seq, 1));
      if (!read.empty() && read.front()->event.sequence() == seq) {
        MutexLock lock(&mu_);
        AddPendingLocked(g.get(), read.front(), attempts);
      }
    }
    loaded.push_back(std::move(g));
  }
  MutexLock lock(&mu_);
  for (auto& g : loaded) groups_[g->name] = std::move(g);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Subscription>> GroupManager::OpenReader(
    Group* g, const v1::StartPosition& start) {
  return fanout_->Subscribe(g->config.filter(), start, [this, g] { OnLogWake(g); },
                            g->snapshot_through);
}

absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> GroupManager::Join(const v1::ConsumerOpen& open,
                                                                std::function<void()> wake) {
  RETURN_IF_ERROR(ValidateGroupName(open.group()));
  if (open.max_in_flight() > kMaxMaxInFlight) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight must be at most ", kMaxMaxInFlight));
  }
  absl::Duration deadline =
      open.has_ack_deadline() ? ToDuration(open.ack_deadline()) : kDefaultAckDeadline;
  if (deadline < absl::Seconds(1)) {
    return absl::InvalidArgumentError("ack_deadline must be at least 1s");
  }
  auto member = std::make_shared<Member>();
  member->group = open.group();
  member->max_in_flight = open.max_in_flight() == 0 ? kDefaultMaxInFlight : open.max_in_flight();
  member->ack_deadline = deadline;
  {
    MutexLock lock(&member->wake_mu);
    member->wake = std::move(wake);
  }
  v1::ConsumerOpen config = GroupConfig(open);

  // A new group's reader is made before taking mu_ (lock order: a log
  // wake holds the reader's lock, then takes mu_).
  std::shared_ptr<Group> created;
  {
    MutexLock lock(&mu_);
    if (!groups_.contains(open.group())) {
      created = std::make_shared<Group>();
      created->name = open.group();
      created->config = config;
    }
  }
  if (created != nullptr) {
    ASSIGN_OR_RETURN(created->reader, OpenReader(created.get(), open.start()));
    created->floor = created->reader->cursor();
    created->snapshot_through = created->reader->snapshot_through();
  }
  absl::Status status = AddMember(member, config, created);
  if (created != nullptr && created->reader != nullptr) created->reader.reset();  // not adopted
  RETURN_IF_ERROR(status);
  return std::unique_ptr<GroupMember>(new GroupMember(this, std::move(member)));
}

absl::Status GroupManager::AddMember(const std::shared_ptr<Member>& member,
                                      const v1::ConsumerOpen& config,
                                      std::shared_ptr<Group>& created) {
  MutexLock lock(&mu_);
  if (shutdown_) return ShuttingDownError();
  auto it = groups_.find(config.group());
  if (it == groups_.end()) {
    if (created == nullptr) return absl::AbortedError("consumer group was deleted while joining");
    RETURN_IF_ERROR(store_->CreateGroup(created->name, config.SerializeAsString(),
                                        created->floor, created->snapshot_through));
    log::Info("consumer group created", {{"group", created->name}, {"floor", created->floor}});
    it = groups_.emplace(created->name, std::move(created)).first;
    created = nullptr;
  } else if (it->second->config.SerializeAsString() != config.SerializeAsString()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "consumer group \"", config.group(),
        "\" exists with a different filter, max_deliveries or key_ordered; delete it to change them"));
  }
  member->id = next_member_id_++;
  it->second->members[member->id] = member;
  return absl::OkStatus();
}

void GroupManager::AddPendingLocked(Group* g, EventPtr event, uint32_t attempts) {
  uint64_t seq = event->event.sequence();
  if (g->config.key_ordered()) g->by_key[event->event.key()].insert(seq);
  g->pending[seq] = Pending{.event = std::move(event), .attempts = attempts};
  g->ready.insert(seq);
}

void GroupManager::RemovePendingLocked(Group* g, uint64_t seq) {
  auto it = g->pending.find(seq);
  if (it == g->pending.end()) return;
  if (g->config.key_ordered()) {
    auto k = g->by_key.find(it->second.event->event.key());
    k->second.erase(seq);
    if (k->second.empty()) g->by_key.erase(k);
  }
  g->ready.erase(seq);
  ReleaseOfferLocked(g, it->second);
  g->pending.erase(it);
}

void GroupManager::ReleaseOfferLocked(Group* g, Pending& p) {
  if (p.offered_to == 0) return;
  if (auto m = g->members.find(p.offered_to); m != g->members.end()) {
    m->second->offers.erase(p.event->event.sequence());
  }
  p.offered_to = 0;
}

void GroupManager::OfferLocked(Group* g, Member* poller, size_t poller_room,
                               std::vector<uint64_t>* undeliverable,
                               std::vector<std::shared_ptr<Member>>* wakes) {
  // Who asks for work: the poller, and members whose last Poll found none.
  // Each may be offered what its max_in_flight leaves after its leases and
  // the offers it holds.
  struct Taker {
    Member* member;
    size_t room;
  };
  std::vector<Taker> takers;  // in member id order
  size_t total_room = 0;
  for (const auto& [id, m] : g->members) {
    if (m.get() != poller && !m->idle) continue;
    size_t held = m->in_flight + m->offers.size();
    size_t room = m->max_in_flight > held ? m->max_in_flight - held : 0;
    if (m.get() == poller) room = poller_room > m->offers.size() ? poller_room - m->offers.size() : 0;
    if (room == 0) continue;
    takers.push_back({m.get(), room});
    total_room += room;
  }
  if (takers.empty()) return;
  // The taker after the one offered to last goes first.
  size_t next = 0;
  while (next < takers.size() && takers[next].member->id <= g->last_offered) ++next;
  if (next == takers.size()) next = 0;
  std::set<Member*> offered;
  for (uint64_t seq : g->ready) {
    if (total_room == 0) break;
    Pending& p = g->pending[seq];
    if (p.offered_to != 0 || !EligibleLocked(g, seq)) continue;
    if (p.event->wire.size() > kMaxDeliverableEventBytes) {
      undeliverable->push_back(seq);
      continue;
    }
    while (takers[next].room == 0) next = (next + 1) % takers.size();
    Taker& t = takers[next];
    p.offered_to = t.member->id;
    t.member->offers.insert(seq);
    t.room--;
    total_room--;
    g->last_offered = t.member->id;
    offered.insert(t.member);
    next = (next + 1) % takers.size();
  }
  // An idle member waiting for a wake learns of its offers now.
  for (Member* m : offered) {
    if (m != poller && m->parked) {
      m->parked = false;
      wakes->push_back(g->members.at(m->id));
    }
  }
}

bool GroupManager::EligibleLocked(const Group* g, uint64_t seq) const {
  if (!g->config.key_ordered()) return true;
  const std::string& key = g->pending.at(seq).event->event.key();
  return *g->by_key.at(key).begin() == seq;
}

absl::Status GroupManager::FillLocked(Group* g, size_t want) {
  // Takes events from the log until enough are ready or the log is drained.
  while (g->ready.size() < want && g->pending.size() < options_.max_pending) {
    size_t room = std::min(kFillBatch, options_.max_pending - g->pending.size());
    ASSIGN_OR_RETURN(std::vector<EventPtr> batch, g->reader->Poll(room, 4 << 20));
    if (batch.empty()) break;  // the reader is parked: OnLogWake will follow
    for (EventPtr& e : batch) {
      uint64_t seq = e->event.sequence();
      if (g->acked_above.erase(seq) > 0 || g->dead_above.contains(seq) ||
          g->pending.contains(seq)) {
        continue;
      }
      AddPendingLocked(g, std::move(e), 0);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Delivery>> GroupManager::Poll(Member* m, size_t max,
                                                         size_t max_bytes) {
  std::vector<std::shared_ptr<Member>> wakes;
  absl::StatusOr<std::vector<Delivery>> out = PollLocked(m, max, max_bytes, &wakes);
  WakeAll(wakes);
  return out;
}

absl::StatusOr<std::vector<Delivery>> GroupManager::PollLocked(
    Member* m, size_t max, size_t max_bytes, std::vector<std::shared_ptr<Member>>* wakes) {
  MutexLock lock(&mu_);
  if (shutdown_) return ShuttingDownError();
  auto it = groups_.find(m->group);
  if (it == groups_.end() || it->second->deleted) {
    return absl::AbortedError(absl::StrCat("consumer group \"", m->group, "\" was deleted"));
  }
  Group* g = it->second.get();
  size_t credits = std::min<size_t>(max, m->max_in_flight - std::min(m->in_flight, m->max_in_flight));
  std::vector<Delivery> out;
  // Once more only when undeliverable events were all there was: those
  // behind them may be ready.
  while (credits > 0) {
    RETURN_IF_ERROR(FillLocked(g, credits));
    std::vector<uint64_t> undeliverable;
    OfferLocked(g, m, credits, &undeliverable, wakes);
    std::vector<uint64_t> chosen;
    size_t bytes = 0;
    for (uint64_t seq : m->offers) {
      if (chosen.size() >= credits) break;
      if (!EligibleLocked(g, seq)) continue;  // a redrive may come first
      const size_t size = g->pending[seq].event->wire.size();
      if (!chosen.empty() && bytes + size > max_bytes) break;
      bytes += size;
      chosen.push_back(seq);
    }
    GroupStore::Changes changes;
    // No default client can receive these even alone (ConsumerGroupMember::
    // Poll): each fails alone, now, instead of breaking streams.
    for (uint64_t seq : undeliverable) {
      log::Warn("event too large to deliver",
                {{"group", g->name},
                 {"sequence", seq},
                 {"bytes", g->pending[seq].event->wire.size()}});
      DeadLetterLocked(g, seq, g->pending[seq].attempts, options_.clock->Now(), &changes);
    }
    for (uint64_t seq : chosen) changes.set_attempts.emplace_back(seq, g->pending[seq].attempts + 1);
    RaiseFloorLocked(g, &changes);
    if (!changes.empty()) RETURN_IF_ERROR(store_->Apply(g->name, changes));
    absl::Time deadline = options_.clock->Now() + m->ack_deadline;
    for (uint64_t seq : chosen) {
      Pending& p = g->pending[seq];
      p.attempts++;
      p.state = Pending::State::kLeased;
      p.member = m->id;
      p.due = deadline;
      g->ready.erase(seq);
      ReleaseOfferLocked(g, p);
      m->in_flight++;
      out.push_back(Delivery{p.event, p.attempts, deadline});
      deliveries_.fetch_add(1, std::memory_order_relaxed);
      if (p.attempts > 1) redeliveries_.fetch_add(1, std::memory_order_relaxed);
    }
    // What the poller was offered but does not carry (past max_bytes) is
    // not held for it: another member may lease it now.
    for (uint64_t seq : std::vector<uint64_t>(m->offers.begin(), m->offers.end())) {
      ReleaseOfferLocked(g, g->pending[seq]);
    }
    if (!chosen.empty() || undeliverable.empty()) break;
  }
  m->parked = out.empty();
  m->idle = out.empty();
  return out;
}

void GroupManager::DeadLetterLocked(Group* g, uint64_t seq, uint32_t attempts, absl::Time now,
                                    GroupStore::Changes* changes) {
  changes->dead.push_back({seq, attempts, now});
  dead_lettered_.fetch_add(1, std::memory_order_relaxed);
  changes->clear_attempts.push_back(seq);
  g->dead_above.insert(seq);
  g->dead_letters++;
  log::Warn("event dead-lettered", {{"group", g->name}, {"sequence", seq}, {"attempts", attempts}});
  RemovePendingLocked(g, seq);
}

void GroupManager::FailLocked(Group* g, uint64_t seq, absl::Duration delay, absl::Time now,
                              GroupStore::Changes* changes) {
  Pending& p = g->pending[seq];
  if (p.attempts >= g->config.max_deliveries()) {
    DeadLetterLocked(g, seq, p.attempts, now, changes);
  } else if (delay <= absl::ZeroDuration()) {
    p.state = Pending::State::kReady;
    g->ready.insert(seq);
  } else {
    p.state = Pending::State::kWaiting;
    p.due = now + delay;
  }
}

void GroupManager::RaiseFloorLocked(Group* g, GroupStore::Changes* changes) {
  uint64_t candidate = g->pending.empty() ? g->reader->cursor() : g->pending.begin()->first - 1;
  if (candidate <= g->floor) return;
  g->floor = candidate;
  changes->floor = candidate;
  g->acked_above.erase(g->acked_above.begin(), g->acked_above.upper_bound(candidate));
  g->dead_above.erase(g->dead_above.begin(), g->dead_above.upper_bound(candidate));
}

void GroupManager::CollectWakesLocked(Group* g, std::vector<std::shared_ptr<Member>>* out) {
  for (auto& [id, m] : g->members) {
    if (m->parked && m->in_flight < m->max_in_flight) {
      m->parked = false;
      out->push_back(m);
    }
  }
}

void GroupManager::WakeAll(const std::vector<std::shared_ptr<Member>>& members) {
  for (const auto& m : members) m->Wake();
}

absl::Status GroupManager::Settle(Member* m, absl::Span<const uint64_t> sequences, bool ack,
                                  absl::Duration delay) {
  std::vector<std::shared_ptr<Member>> wakes;
  {
    MutexLock lock(&mu_);
    auto it = groups_.find(m->group);
    if (it == groups_.end() || it->second->deleted) return absl::OkStatus();
    Group* g = it->second.get();
    absl::Time now = options_.clock->Now();
    GroupStore::Changes changes;
    for (uint64_t seq : sequences) {
      auto p = g->pending.find(seq);
      if (p == g->pending.end() || p->second.state != Pending::State::kLeased ||
          p->second.member != m->id) {
        m->ignored++;
        continue;
      }
      m->in_flight--;
      if (ack) {
        changes.acked.push_back(seq);
        changes.clear_attempts.push_back(seq);
        if (seq > g->floor) g->acked_above.insert(seq);
        RemovePendingLocked(g, seq);
      } else {
        FailLocked(g, seq, delay, now, &changes);
      }
    }
    RaiseFloorLocked(g, &changes);
    if (!changes.empty()) RETURN_IF_ERROR(store_->Apply(g->name, changes));
    CollectWakesLocked(g, &wakes);
  }
  WakeAll(wakes);
  return absl::OkStatus();
}

absl::Status GroupManager::Extend(Member* m, absl::Span<const uint64_t> sequences,
                                  absl::Duration extension) {
  MutexLock lock(&mu_);
  auto it = groups_.find(m->group);
  if (it == groups_.end()) return absl::OkStatus();
  absl::Time due = options_.clock->Now() + extension;
  for (uint64_t seq : sequences) {
    auto p = it->second->pending.find(seq);
    if (p != it->second->pending.end() && p->second.state == Pending::State::kLeased &&
        p->second.member == m->id) {
      p->second.due = due;
    } else {
      m->ignored++;
    }
  }
  return absl::OkStatus();
}

void GroupManager::Tick() {
  std::vector<std::shared_ptr<Member>> wakes;
  {
    MutexLock lock(&mu_);
    absl::Time now = options_.clock->Now();
    for (auto& [name, g] : groups_) {
      GroupStore::Changes changes;
      std::vector<uint64_t> expired, due;
      for (auto& [seq, p] : g->pending) {
        if (p.state == Pending::State::kLeased && p.due <= now) expired.push_back(seq);
        if (p.state == Pending::State::kWaiting && p.due <= now) due.push_back(seq);
      }
      for (uint64_t seq : due) {
        g->pending[seq].state = Pending::State::kReady;
        g->ready.insert(seq);
      }
      for (uint64_t seq : expired) {
        Pending& p = g->pending[seq];
        if (auto m = g->members.find(p.member); m != g->members.end()) m->second->in_flight--;
        absl::Duration backoff = std::min(
            options_.backoff_base * (int64_t{1} << std::min<uint32_t>(p.attempts - 1, 20)),
            options_.backoff_max);
        FailLocked(g.get(), seq, backoff, now, &changes);
      }
      RaiseFloorLocked(g.get(), &changes);
      if (!changes.empty()) {
        if (absl::Status s = store_->Apply(g->name, changes); !s.ok()) {
          log::Error("consumer group state not saved", {{"group", name}, {"error", s.ToString()}});
        }
      }
      if (!due.empty() || !expired.empty()) CollectWakesLocked(g.get(), &wakes);
    }
  }
  WakeAll(wakes);
}

void GroupManager::OnLogWake(Group* g) {
  std::vector<std::shared_ptr<Member>> wakes;
  {
    MutexLock lock(&mu_);
    if (g->deleted) return;
    CollectWakesLocked(g, &wakes);
  }
  WakeAll(wakes);
}

void GroupManager::TickerLoop() {
  while (!stop_ticker_.WaitForNotificationWithTimeout(options_.tick_interval)) Tick();
}

void GroupManager::Leave(Member* m) {
  std::vector<std::shared_ptr<Member>> wakes;
  {
    MutexLock lock(&mu_);
    if (auto it = groups_.find(m->group); it != groups_.end()) {
      Group* g = it->second.get();
      // Its offers go back to whoever asks next.
      const bool had_offers = !m->offers.empty();
      for (uint64_t seq : std::set<uint64_t>(m->offers)) {
        auto p = g->pending.find(seq);
        if (p != g->pending.end() && p->second.offered_to == m->id) {
          ReleaseOfferLocked(g, p->second);
        }
      }
      m->offers.clear();
      g->members.erase(m->id);
      // What it held goes back to the group now rather than at its deadline
      // (counted as a failed attempt, as a lapsed lease would be).
      std::vector<uint64_t> held;
      for (const auto& [seq, p] : g->pending) {
        if (p.state == Pending::State::kLeased && p.member == m->id) held.push_back(seq);
      }
      GroupStore::Changes changes;
      absl::Time now = options_.clock->Now();
      for (uint64_t seq : held) FailLocked(g, seq, absl::ZeroDuration(), now, &changes);
      RaiseFloorLocked(g, &changes);
      if (!changes.empty()) {
        if (absl::Status s = store_->Apply(g->name, changes); !s.ok()) {
          log::Error("consumer group state not saved", {{"group", g->name}, {"error", s.ToString()}});
        }
      }
      if (!held.empty() || had_offers) CollectWakesLocked(g, &wakes);
    }
  }
  WakeAll(wakes);
  MutexLock lock(&m->wake_mu);  // waits out a wake in progress
  m->wake = nullptr;
}

std::vector<v1::GroupInfo> GroupManager::ListGroups() {
  MutexLock lock(&mu_);
  std::vector<v1::GroupInfo> out;
  uint64_t last = log_->LastSequence();
  for (const auto& [name, g] : groups_) {
    v1::GroupInfo& info = out.emplace_back();
    info.set_name(name);
    *info.mutable_filter() = g->config.filter();
    info.set_max_deliveries(g->config.max_deliveries());
    info.set_key_ordered(g->config.key_ordered());
    info.set_ack_floor(g->floor);
    uint64_t cursor = g->reader->cursor();
    info.set_lag(last > cursor ? last - cursor : 0);
    info.set_pending(g->pending.size());
    info.set_in_flight(std::count_if(g->pending.begin(), g->pending.end(), [](const auto& p) {
      return p.second.state == Pending::State::kLeased;
    }));
    info.set_dead_letters(g->dead_letters);
    info.set_members(g->members.size());
  }
  return out;
}

absl::Status GroupManager::DeleteGroup(const std::string& name) {
  std::shared_ptr<Group> g;
  std::vector<std::shared_ptr<Member>> wakes;
  {
    MutexLock lock(&mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) return NoGroup(name);
    RETURN_IF_ERROR(store_->DeleteGroup(name));
    g = it->second;
    g->deleted = true;
    groups_.erase(it);
    for (auto& [id, m] : g->members) wakes.push_back(m);
  }
  g->reader.reset();  // outside mu_
  WakeAll(wakes);     // their Poll now fails with ABORTED
  log::Info("consumer group deleted", {{"group", name}});
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::DeadLetter>> GroupManager::ListDeadLetters(const std::string& name,
                                                                          uint64_t after,
                                                                          size_t limit) {
  ASSIGN_OR_RETURN(std::vector<GroupStore::DeadLetterRecord> records,
                   store_->ListDeadLetters(name, after, limit));
  std::vector<v1::DeadLetter> out;
  for (const GroupStore::DeadLetterRecord& r : records) {
    v1::DeadLetter& d = out.emplace_back();
    ASSIGN_OR_RETURN(std::vector<EventPtr> read, log_->Read(r.sequence, 1));
    if (!read.empty() && read.front()->event.sequence() == r.sequence) {
      *d.mutable_event() = read.front()->event;
    } else {
      d.mutable_event()->set_sequence(r.sequence);  // removed by retention since
    }
    d.set_attempts(r.attempts);
    SetTimestamp(r.time, d.mutable_time());
  }
  return out;
}

absl::StatusOr<uint64_t> GroupManager::Redrive(const std::string& name,
                                               absl::Span<const uint64_t> sequences) {
  std::vector<GroupStore::DeadLetterRecord> records;
  if (sequences.empty()) {
    for (uint64_t after = 0;;) {
      ASSIGN_OR_RETURN(auto page, store_->ListDeadLetters(name, after, 1000));
      if (page.empty()) break;
      after = page.back().sequence;
      records.insert(records.end(), page.begin(), page.end());
    }
  } else {
    std::vector<uint64_t> wanted(sequences.begin(), sequences.end());
    std::sort(wanted.begin(), wanted.end());
    for (uint64_t seq : wanted) {
      ASSIGN_OR_RETURN(auto one, store_->ListDeadLetters(name, seq - 1, 1));
      if (!one.empty() && one.front().sequence == seq) records.push_back(one.front());
    }
  }
  std::vector<std::shared_ptr<Member>> wakes;
  uint64_t redriven = 0;
  {
    MutexLock lock(&mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) return NoGroup(name);
    Group* g = it->second.get();
    GroupStore::Changes changes;
    std::vector<EventPtr> events;
    for (const GroupStore::DeadLetterRecord& r : records) {
      if (g->pending.contains(r.sequence)) continue;
      ASSIGN_OR_RETURN(std::vector<EventPtr> read, log_->Read(r.sequence, 1));
      changes.redriven.push_back(r.sequence);
      if (read.empty() || read.front()->event.sequence() != r.sequence) continue;  // retention
      changes.set_attempts.emplace_back(r.sequence, 0);
      events.push_back(read.front());
    }
    if (changes.empty()) return 0;
    RETURN_IF_ERROR(store_->Apply(name, changes));
    for (uint64_t seq : changes.redriven) g->dead_above.erase(seq);
    g->dead_letters -= std::min<uint64_t>(g->dead_letters, changes.redriven.size());
    for (EventPtr& e : events) AddPendingLocked(g, std::move(e), 0);
    redriven = events.size();
    CollectWakesLocked(g, &wakes);
  }
  WakeAll(wakes);
  return redriven;
}

void GroupManager::Shutdown() {
  std::vector<std::shared_ptr<Member>> wakes;
  {
    MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [name, g] : groups_) {
      for (auto& [id, m] : g->members) wakes.push_back(m);
    }
  }
  WakeAll(wakes);
}

GroupMember::~GroupMember() { manager_->Leave(member_.get()); }

absl::StatusOr<std::vector<Delivery>> GroupMember::Poll(size_t max, size_t max_bytes) {
  return manager_->Poll(member_.get(), max, max_bytes);
}

absl::Status GroupMember::Ack(absl::Span<const uint64_t> sequences) {
  return manager_->Settle(member_.get(), sequences, /*ack=*/true, absl::ZeroDuration());
}

absl::Status GroupMember::Nack(absl::Span<const uint64_t> sequences, absl::Duration delay) {
  return manager_->Settle(member_.get(), sequences, /*ack=*/false, delay);
}

absl::Status GroupMember::Extend(absl::Span<const uint64_t> sequences, absl::Duration extension) {
  return manager_->Extend(member_.get(), sequences, extension);
}

uint64_t GroupMember::ignored() const {
  MutexLock lock(&manager_->mu_);
  return member_->ignored;
}

}  // namespace hookfan::broker
