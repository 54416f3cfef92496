#include "nats/nats_latest_view.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace hookfan::broker {
namespace {

using OwnedMsg = Owned<natsMsg, natsMsg_Destroy>;
using OwnedStreamInfo = Owned<jsStreamInfo, jsStreamInfo_Destroy>;
using OwnedPubAck = Owned<jsPubAck, jsPubAck_Destroy>;

// Events the writer takes at a time.
constexpr size_t kWriteBatch = 512;
// How long an idle writer waits for the tail before it looks again.
constexpr absl::Duration kIdleWait = absl::Seconds(1);
constexpr absl::Duration kMaxPause = absl::Seconds(2);

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsLowerHex(absl::string_view s) {
  return s.size() % 2 == 0 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

NatsLatestView::NatsLatestView(NatsConnection* connection, EventLog* log)
    : connection_(connection),
      log_(log),
      stream_(absl::StrCat(connection->options().stream, "_LATEST")),
      prefix_(absl::StrCat("$HOOKFAN.", stream_)) {}

NatsLatestView::~NatsLatestView() {
  stop_.Notify();
  {
    MutexLock lock(&mu_);  // wakes a writer waiting for the tail
  }
  if (writer_.joinable()) writer_.join();
  if (writer_js_ != nullptr) {
    // No acknowledgement may still be due when the context goes.
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = connection_->timeout_ms();
    if (js_PublishAsyncComplete(writer_js_, &wait) != NATS_OK) nats_GetLastError(nullptr);
    jsCtx_Destroy(writer_js_);
  }
}

std::string NatsLatestView::Stream() const { return stream_; }

std::string NatsLatestView::EntrySubject(std::string_view key, std::string_view type) const {
  return absl::StrCat(prefix_, ".k.", absl::BytesToHexString(AbslView(key)), ".", AbslView(type));
}

std::string NatsLatestView::EntriesFilter(std::string_view type_pattern) const {
  return type_pattern.empty() ? absl::StrCat(prefix_, ".k.>")
                              : absl::StrCat(prefix_, ".k.*.", AbslView(type_pattern));
}

absl::Status NatsLatestView::Setup() {
  const NatsOptions& o = connection_->options();
  const std::string subjects = absl::StrCat(prefix_, ".>");
  const char* subject_list[] = {subjects.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = stream_.c_str();
  config.Description = "hookfan latest view: the newest event of each key and type";
  config.Subjects = subject_list;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Retention = js_LimitsPolicy;
  config.MaxMsgsPerSubject = 1;
  // Full, the view refuses new entries (and stays exact, behind the log)
  // rather than dropping its oldest.
  config.Discard = js_DiscardNew;
  config.MaxBytes = o.latest_view_max_bytes();
  config.Replicas = o.replicas;
  config.AllowDirect = true;

  jsErrCode jerr = static_cast<jsErrCode>(0);
  OwnedStreamInfo info;
  natsStatus s = js_GetStreamInfo(info.out(), connection_->js(), stream_.c_str(), nullptr, &jerr);
  absl::Status found = NatsStatus(s, jerr, absl::StrCat("looking up stream ", stream_));
  if (absl::IsNotFound(found)) {
    nats_GetLastError(nullptr);
    jerr = static_cast<jsErrCode>(0);
    s = js_AddStream(info.out(), connection_->js(), &config, nullptr, &jerr);
    absl::Status created = NatsStatus(s, jerr, absl::StrCat("creating stream ", stream_));
    if (created.ok()) {
      log::Info("created the latest view's stream", {{"stream", stream_}});
      return absl::OkStatus();
    }
    // Another replica may have created it meanwhile.
    jerr = static_cast<jsErrCode>(0);
    s = js_GetStreamInfo(info.out(), connection_->js(), stream_.c_str(), nullptr, &jerr);
    if (s != NATS_OK) return created;
  } else {
    RETURN_IF_ERROR(found);
  }
  const jsStreamConfig* have = info->Config;
  if (have->MaxBytes != config.MaxBytes || have->Replicas != config.Replicas ||
      have->MaxMsgsPerSubject != 1 || !have->AllowDirect) {
    OwnedStreamInfo updated;
    jerr = static_cast<jsErrCode>(0);
    s = js_UpdateStream(updated.out(), connection_->js(), &config, nullptr, &jerr);
    RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("updating stream ", stream_)));
  }
  return absl::OkStatus();
}

void NatsLatestView::Start() {
  writer_ = std::thread([this] { WriteLoop(); });
}

void NatsLatestView::Offer(const std::vector<EventPtr>& events) {
  if (events.empty()) return;
  MutexLock lock(&mu_);
  for (const EventPtr& e : events) queued_.push_back(e);
  while (queued_.size() > kMaxQueued) queued_.pop_front();
  tail_passed_ = std::max(tail_passed_, events.back()->event.sequence());
}

uint64_t NatsLatestView::TailPassed() {
  MutexLock lock(&mu_);
  return tail_passed_;
}

absl::StatusOr<NatsLatestView::Position> NatsLatestView::Load() {
  // The last message may be replaced (a newer entry of its subject) between
  // reading the stream's state and reading it: then look again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    OwnedStreamInfo info;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s =
        js_GetStreamInfo(info.out(), connection_->js(), stream_.c_str(), nullptr, &jerr);
    RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("reading stream info of ", stream_)));
    Position at{.view_sequence = info->State.LastSeq};
    if (info->State.Msgs == 0) return at;
    jsDirectGetMsgOptions options;
    jsDirectGetMsgOptions_Init(&options);
    options.Sequence = at.view_sequence;
    OwnedMsg msg;
    s = js_DirectGetMsg(msg.out(), connection_->js(), stream_.c_str(), nullptr, &options);
    if (s == NATS_NOT_FOUND) {
      nats_GetLastError(nullptr);
      continue;
    }
    RETURN_IF_ERROR(NatsStatus(s, static_cast<jsErrCode>(0), "reading the latest view's end"));
    const char* value = nullptr;
    if (natsMsgHeader_Get(msg.get(), kThroughHeader, &value) != NATS_OK ||
        !absl::SimpleAtoi(value, &at.through)) {
      nats_GetLastError(nullptr);
      return absl::DataLossError(absl::StrCat("the last message of stream ", stream_,
                                              " has no ", kThroughHeader, " header"));
    }
    known_through_.store(at.through, std::memory_order_relaxed);
    return at;
  }
  return absl::UnavailableError(
      absl::StrCat("the latest view's stream ", stream_, " kept changing while read"));
}

absl::StatusOr<uint64_t> NatsLatestView::Through() {
  ASSIGN_OR_RETURN(Position at, Load());
  return at.through;
}

absl::StatusOr<jsCtx*> NatsLatestView::WriterContext() {
  if (writer_js_ != nullptr) return writer_js_;
  jsOptions options;
  jsOptions_Init(&options);
  options.PublishAsync.AckHandler = &NatsLatestView::OnAck;
  options.PublishAsync.AckHandlerClosure = this;
  options.PublishAsync.MaxPending = 2 * kWriteBatch;
  natsStatus s = natsConnection_JetStream(&writer_js_, connection_->nc(), &options);
  RETURN_IF_ERROR(NatsStatus(s, static_cast<jsErrCode>(0), "opening the view writer's context"));
  return writer_js_;
}

void NatsLatestView::OnAck(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                           void* closure) {
  auto* self = static_cast<NatsLatestView*>(closure);
  {
    MutexLock lock(&self->acks_mu_);
    auto found = self->run_.find(msg);
    if (found != self->run_.end()) {  // else a late one of an earlier run
      Ack& a = self->acks_[found->second];
      a.done = true;
      if (ack != nullptr) {
        a.view_sequence = ack->Sequence;
      } else if (error != nullptr) {
        a.status = error->Err;
        a.error = error->ErrCode;
      }
    }
  }
  natsMsg_Destroy(msg);
}

absl::Status NatsLatestView::Extend(const std::vector<Extension>& extensions, Position* at,
                                    bool* lost_race) {
  *lost_race = false;
  if (extensions.empty()) return absl::OkStatus();
  if (!connection_->connected()) {
    return NatsStatus(NATS_CONNECTION_DISCONNECTED, static_cast<jsErrCode>(0),
                      "writing the latest view");
  }
  ASSIGN_OR_RETURN(jsCtx* js, WriterContext());
  {
    MutexLock lock(&acks_mu_);
    run_.clear();
    acks_.assign(extensions.size(), Ack{});
  }
  const absl::Status failed_publish = [&]() -> absl::Status {
    for (size_t i = 0; i < extensions.size(); ++i) {
      const Extension& x = extensions[i];
      natsMsg* msg = nullptr;
      natsStatus s = natsMsg_Create(&msg, x.subject.c_str(), nullptr, x.data.data(),
                                    static_cast<int>(x.data.size()));
      const std::string through = absl::StrCat(x.through);
      if (s == NATS_OK) s = natsMsgHeader_Set(msg, kThroughHeader, through.c_str());
      jsPubOptions options;
      jsPubOptions_Init(&options);
      options.ExpectStream = stream_.c_str();
      // Unanswered, nats.c gives up on it (telling OnAck) rather than
      // keeping it pending for good, which would stall every later run.
      options.MaxWait = connection_->timeout_ms();
      // Each expects what its predecessor leaves; nats.c sends
      // ExpectLastSeq only when > 0, so "the view is empty" is the header.
      const uint64_t expected = at->view_sequence + i;
      if (expected == 0) {
        if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Expected-Last-Sequence", "0");
      } else {
        options.ExpectLastSeq = expected;
      }
      if (s == NATS_OK) {
        MutexLock lock(&acks_mu_);
        run_[msg] = i;
      }
      if (s == NATS_OK) s = js_PublishMsgAsync(js, &msg, &options);
      if (msg != nullptr) {  // not taken by nats.c
        {
          MutexLock lock(&acks_mu_);
          run_.erase(msg);
        }
        natsMsg_Destroy(msg);
      }
      if (s != NATS_OK) {
        absl::Status status =
            NatsStatus(s, static_cast<jsErrCode>(0), "writing the latest view");
        nats_GetLastError(nullptr);
        return status;
      }
    }
    return absl::OkStatus();
  }();
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = connection_->timeout_ms();
  natsStatus s = js_PublishAsyncComplete(js, &wait);
  MutexLock lock(&acks_mu_);
  run_.clear();  // what is still due is ignored when it comes
  if (s != NATS_OK) {
    nats_GetLastError(nullptr);
    return NatsStatus(s, static_cast<jsErrCode>(0), "waiting for the latest view's writes");
  }
  // The run's messages landed in order up to the first refusal (each
  // expected its predecessor's place); a writer that lost a race reads the
  // view again, which says what did land.
  for (size_t i = 0; i < extensions.size(); ++i) {
    const Ack& a = acks_[i];
    if (!a.done) break;  // never sent
    if (a.view_sequence == 0) {
      if (a.error == JSStreamWrongLastSequenceErr) {
        *lost_race = true;
        return absl::OkStatus();
      }
      return NatsStatus(a.status == NATS_OK ? NATS_ERR : a.status, a.error,
                        "writing the latest view");
    }
    at->view_sequence = a.view_sequence;
    at->through = extensions[i].through;
    known_through_.store(at->through, std::memory_order_relaxed);
  }
  return failed_publish;
}

absl::StatusOr<std::vector<EventPtr>> NatsLatestView::Next(uint64_t through) {
  std::vector<EventPtr> queued;
  {
    MutexLock lock(&mu_);
    while (!queued_.empty() && queued_.front()->event.sequence() <= through) queued_.pop_front();
    if (!queued_.empty() && queued_.front()->event.sequence() == through + 1) {
      const size_t n = std::min(queued_.size(), kWriteBatch);
      queued.assign(queued_.begin(), queued_.begin() + n);
    }
  }
  if (!queued.empty()) {
    // The queue may still hold events retention has deleted, which a
    // writer reading the log skips: every writer must write the same, so
    // the queue serves only while the log holds its first event.
    ASSIGN_OR_RETURN(uint64_t first, log_->FirstSequence());
    if (first <= through + 1) return queued;
  }
  return log_->Read(through + 1, kWriteBatch, std::numeric_limits<size_t>::max());
}

absl::Status NatsLatestView::Write(const std::vector<EventPtr>& events, Position* at,
                                   bool* lost_race) {
  // One message per event: an entry, or for an event without a key a
  // marker. What extends the view after a given message is then the same
  // whichever writer writes it, so two writers that both extend the view
  // (one taking over while the other still writes) interleave harmlessly.
  std::vector<Extension> extensions;
  uint64_t through = at->through;
  for (const EventPtr& e : events) {
    const v1::Event& event = e->event;
    if (event.sequence() <= through) continue;
    if (through != 0 && event.sequence() > through + 1) {
      // Gone from the log before the view took them (the view stalled, full
      // or without a writer, for longer than retention keeps events).
      log::Error("the latest view misses events deleted before it took them",
                 {{"stream", stream_},
                  {"first_missed", through + 1},
                  {"last_missed", event.sequence() - 1}});
    }
    through = event.sequence();
    if (event.key().empty()) {
      extensions.push_back({absl::StrCat(prefix_, ".through"), std::string(), through});
    } else {
      extensions.push_back({EntrySubject(event.key(), event.type()), e->wire, through});
    }
  }
  return Extend(extensions, at, lost_race);
}

void NatsLatestView::WriteLoop() {
  // Every replica starts leading: a second writer learns at its first
  // write that another one leads, and follows.
  bool leading = true;
  leading_.store(true, std::memory_order_relaxed);
  std::optional<Position> at;
  absl::Duration pause = absl::Milliseconds(250);
  std::string last_error;
  auto failed = [&](const absl::Status& status) {
    if (status.message() != last_error) {  // once per change, not per attempt
      last_error = std::string(status.message());
      log::Warn("cannot write the latest view now; retrying", {{"error", last_error}});
    }
    at.reset();
    stop_.WaitForNotificationWithTimeout(pause);
    pause = std::min(pause * 2, kMaxPause);
  };
  while (!stop_.HasBeenNotified()) {
    if (!at.has_value()) {
      absl::StatusOr<Position> loaded = Load();
      if (!loaded.ok()) {
        failed(loaded.status());
        continue;
      }
      at = *loaded;
    }
    if (!leading) {
      // Follow: take over when the view stays behind where this replica's
      // tail was kTakeOver ago.
      const uint64_t tail = TailPassed();
      if (stop_.WaitForNotificationWithTimeout(kTakeOver)) break;
      absl::StatusOr<Position> now = Load();
      if (!now.ok()) {
        failed(now.status());
        continue;
      }
      at = *now;
      if (at->through < tail) {
        leading = true;
        leading_.store(true, std::memory_order_relaxed);
        log::Info("writing the latest view: it stayed behind this replica's tail",
                  {{"stream", stream_}, {"through", at->through}, {"tail", tail}});
      }
      continue;
    }
    const uint64_t tail = TailPassed();
    absl::StatusOr<std::vector<EventPtr>> events = Next(at->through);
    if (!events.ok()) {
      failed(events.status());
      continue;
    }
    if (events->empty()) {
      // Caught up: wait for the tail to pass more.
      MutexLock lock(&mu_);
      auto moved = [this, tail]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return tail_passed_ > tail || stop_.HasBeenNotified();
      };
      mu_.AwaitWithTimeout(absl::Condition(&moved), kIdleWait);
      continue;
    }
    bool lost_race = false;
    absl::Status written = Write(*events, &*at, &lost_race);
    if (lost_race) {
      leading = false;  // another replica leads
      leading_.store(false, std::memory_order_relaxed);
      at.reset();
      continue;
    }
    if (!written.ok()) {
      failed(written);
      continue;
    }
    pause = absl::Milliseconds(250);
    last_error.clear();
  }
}

absl::StatusOr<EventPtr> NatsLatestView::EntryAt(uint64_t at, const std::string& filter,
                                                 uint64_t* found) {
  jsDirectGetMsgOptions options;
  jsDirectGetMsgOptions_Init(&options);
  options.Sequence = std::max<uint64_t>(at, 1);
  options.NextBySubject = filter.c_str();
  OwnedMsg msg;
  natsStatus s = js_DirectGetMsg(msg.out(), connection_->js(), stream_.c_str(), nullptr, &options);
  if (s == NATS_NOT_FOUND) {
    nats_GetLastError(nullptr);
    return nullptr;
  }
  RETURN_IF_ERROR(NatsStatus(s, static_cast<jsErrCode>(0), "reading the latest view"));
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg.get(), "Nats-Sequence", &value) != NATS_OK ||
      !absl::SimpleAtoi(value, found)) {
    nats_GetLastError(nullptr);
    return absl::DataLossError("a latest view entry came without its stream sequence");
  }
  return NatsConnection::DecodeEvent(msg.get(), kThroughHeader);
}

absl::StatusOr<std::vector<EventPtr>> NatsLatestView::ReadLatest(uint64_t from, uint64_t through,
                                                                 size_t max_events) {
  std::vector<EventPtr> events;
  if (max_events == 0 || from > through) return events;
  const std::string entries = EntriesFilter("");
  // The view's entries are in log order: where those from `from` on start
  // is known from the page before, or found by bisection.
  std::optional<uint64_t> start;
  {
    MutexLock lock(&starts_mu_);
    auto known = starts_.find(from);
    if (known != starts_.end()) start = known->second;
  }
  if (!start.has_value()) {
    OwnedStreamInfo info;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s =
        js_GetStreamInfo(info.out(), connection_->js(), stream_.c_str(), nullptr, &jerr);
    RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("reading stream info of ", stream_)));
    uint64_t lo = 1;
    uint64_t hi = info->State.LastSeq + 1;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      uint64_t found = 0;
      ASSIGN_OR_RETURN(EventPtr e, EntryAt(mid, entries, &found));
      if (e == nullptr || e->event.sequence() >= from) {
        hi = mid;
      } else {
        lo = found + 1;
      }
    }
    start = lo;
  }
  absl::Status decoded;
  uint64_t next = *start;  // the view sequence after the last entry taken
  // No cap on the scan: entries before `from` (a start found early) are
  // passed over without counting, so a full page is a page of max_events.
  constexpr size_t kUncapped = std::numeric_limits<size_t>::max();
  RETURN_IF_ERROR(connection_->Scan(stream_, entries, *start, kUncapped, [&](natsMsg* msg) {
    absl::StatusOr<EventPtr> e = NatsConnection::DecodeEvent(msg, kThroughHeader);
    if (!e.ok()) {
      decoded = e.status();
      return false;
    }
    if ((*e)->event.sequence() > through) return false;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      next = meta->Sequence.Stream + 1;
      jsMsgMetaData_Destroy(meta);
    }
    // A start found on a server that lagged may be early: what precedes
    // `from` is not asked for.
    if ((*e)->event.sequence() >= from) events.push_back(*std::move(e));
    return events.size() < max_events;
  }));
  RETURN_IF_ERROR(decoded);
  if (!events.empty()) {
    MutexLock lock(&starts_mu_);
    if (starts_.size() >= kMaxStarts) starts_.erase(starts_.begin());
    starts_[events.back()->event.sequence() + 1] = next;
  }
  return events;
}

absl::StatusOr<std::vector<EventPtr>> NatsLatestView::GetLatest(std::string_view key) {
  std::vector<EventPtr> events;
  const std::string filter =
      absl::StrCat(prefix_, ".k.", absl::BytesToHexString(AbslView(key)), ".>");
  for (uint64_t at = 1;;) {
    uint64_t found = 0;
    ASSIGN_OR_RETURN(EventPtr e, EntryAt(at, filter, &found));
    if (e == nullptr) break;
    events.push_back(std::move(e));
    at = found + 1;
  }
  return events;
}

absl::StatusOr<std::vector<KeyLatest>> NatsLatestView::ListLatest(std::string_view after_key,
                                                                  size_t max_keys) {
  if (max_keys == 0) return std::vector<KeyLatest>();
  // The subjects name every (key, type); their hex keys sort as the keys.
  const std::string entries = EntriesFilter("");
  const std::string lead = absl::StrCat(prefix_, ".k.");
  jsOptions options;
  jsOptions_Init(&options);
  options.Stream.Info.SubjectsFilter = entries.c_str();
  OwnedStreamInfo info;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetStreamInfo(info.out(), connection_->js(), stream_.c_str(), &options, &jerr);
  RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("listing the subjects of ", stream_)));
  const std::string after = absl::BytesToHexString(AbslView(after_key));
  std::set<std::string> keys;  // hex, the first max_keys after `after`
  const jsStreamStateSubjects* subjects = info->State.Subjects;
  for (int i = 0; subjects != nullptr && i < subjects->Count; ++i) {
    absl::string_view subject = subjects->List[i].Subject;
    if (!absl::ConsumePrefix(&subject, lead)) continue;
    absl::string_view hex = subject.substr(0, subject.find('.'));
    if (!IsLowerHex(hex) || hex.empty()) continue;
    if (!after_key.empty() && hex <= after) continue;
    if (keys.size() == max_keys && hex >= *keys.rbegin()) continue;
    keys.emplace(hex);
    if (keys.size() > max_keys) keys.erase(std::prev(keys.end()));
  }
  std::vector<KeyLatest> page;
  for (const std::string& hex : keys) {
    KeyLatest entry{.key = absl::HexStringToBytes(hex)};
    ASSIGN_OR_RETURN(entry.events, GetLatest(entry.key));
    if (!entry.events.empty()) page.push_back(std::move(entry));
  }
  return page;
}

}  // namespace hookfan::broker
