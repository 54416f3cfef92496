#include "nats/nats_event_log.h"

#include <openssl/sha.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace hookfan::broker {
namespace {

constexpr int64_t kNanosPerMilli = 1000 * 1000;
// Reads of up to this many events take a direct get each; longer ones an
// ordered consumer (NatsConnection::Scan).
constexpr size_t kMaxDirectRead = 16;
// GetById scans this far either side of the time a UUIDv7 id was minted
// (covers clock skew between a replica and NATS).
constexpr absl::Duration kIdTimeSlack = absl::Minutes(5);
// An AppendOnce claim is taken over this long after its holder's deadline
// (covers clock skew between replicas): by then the holder's publish has
// happened or never will.
constexpr absl::Duration kClaimMargin = absl::Seconds(1);
// Releasing or recording a key after the append's deadline passed still
// gets this long: a retry waits for the claim otherwise.
constexpr absl::Duration kReleaseTimeout = absl::Milliseconds(500);

// Milliseconds left until `deadline` (Millis). Deadlines here bound real
// waits on the network, so they are read off the real clock; what an event's
// time decides (dedup windows) comes from the event, stamped by the
// injected clock of the ingest path (core/ingest.h).
int64_t MillisLeft(absl::Time deadline) { return Millis(deadline - absl::Now()); }

using OwnedMsg = Owned<natsMsg, natsMsg_Destroy>;
using OwnedStreamInfo = Owned<jsStreamInfo, jsStreamInfo_Destroy>;
using OwnedPubAck = Owned<jsPubAck, jsPubAck_Destroy>;
using OwnedMetaData = Owned<jsMsgMetaData, jsMsgMetaData_Destroy>;

absl::Time EventTime(const v1::Event& event) {
  return event.has_time() ? ToTime(event.time()) : absl::UnixEpoch();
}

// The minting time of a UUIDv7 (RFC 9562: 48 bits of Unix milliseconds
// first), or nullopt for any other id.
std::optional<absl::Time> UuidV7Time(absl::string_view id) {
  if (id.size() != 36 || id[8] != '-' || id[13] != '-' || id[14] != '7') return std::nullopt;
  std::string hex = absl::StrCat(id.substr(0, 8), id.substr(9, 4));
  uint64_t ms = 0;
  if (!absl::SimpleHexAtoi(hex, &ms)) return std::nullopt;
  return absl::FromUnixMillis(static_cast<int64_t>(ms));
}

// Bucket keys allow [-/_=.a-zA-Z0-9]: a dedup key becomes its SHA-256.
std::string BucketKey(absl::string_view dedup_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(dedup_key.data()), dedup_key.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

// A key-value bucket's JetStream stream and the subject of one of its keys,
// named as nats.c's key-value layer names them.
std::string BucketStream(absl::string_view bucket) { return absl::StrCat("KV_", bucket); }
std::string BucketSubject(absl::string_view bucket, absl::string_view key) {
  return absl::StrCat("$KV.", bucket, ".", key);
}

// The AppendOnce key bucket, its stream and the subject of one of its keys.
std::string DedupBucket(const NatsOptions& o) { return absl::StrCat(o.stream, "_DEDUP"); }
std::string DedupStream(const NatsOptions& o) { return BucketStream(DedupBucket(o)); }
std::string DedupSubject(const NatsOptions& o, absl::string_view key) {
  return BucketSubject(DedupBucket(o), key);
}

// The device directory's bucket: a UDID's BucketKey to its serial number.
std::string DeviceBucket(const NatsOptions& o) { return absl::StrCat(o.stream, "_DEVICES"); }

// The device directory answers from memory for this many UDIDs at most
// (about 10 MB); past it, the cache starts over.
constexpr size_t kMaxCachedDevices = 1 << 16;
constexpr absl::Duration kDeviceLookupTimeout = absl::Seconds(1);

using OwnedKv = Owned<kvStore, kvStore_Destroy>;

// This abseil's string_view is its own type, not std::string_view.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Opens the key-value bucket `bucket` (one value per key), creating it when
// absent, and sets its byte limit to `max_bytes` (-1: none).
absl::Status OpenBucket(NatsConnection* connection, const std::string& bucket,
                        const char* description, absl::Duration ttl, int64_t max_bytes) {
  OwnedKv kv;
  natsStatus s = js_KeyValue(kv.out(), connection->js(), bucket.c_str());
  if (s == NATS_NOT_FOUND) {
    nats_GetLastError(nullptr);
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = bucket.c_str();
    config.Description = description;
    config.History = 1;
    config.TTL = Nanos(ttl);
    config.StorageType = js_FileStorage;
    config.Replicas = connection->options().replicas;
    config.MaxBytes = max_bytes;
    s = js_CreateKeyValue(kv.out(), connection->js(), &config);
    return NatsStatus(s, static_cast<jsErrCode>(0), absl::StrCat("creating bucket ", bucket));
  }
  RETURN_IF_ERROR(NatsStatus(s, static_cast<jsErrCode>(0), absl::StrCat("opening bucket ", bucket)));
  return connection->LimitStreamBytes(BucketStream(bucket), max_bytes);
}

absl::Status AlreadyStored(absl::string_view id) {
  return absl::InvalidArgumentError(absl::StrCat("event id ", id, " already stored"));
}

}  // namespace

// An AppendOnce key's record in the dedup bucket: a claim by an appender in
// progress, the stored event, or a claim released because its event was
// certainly not stored.
struct DedupRecord {
  enum Kind { kClaim, kEvent, kReleased };
  Kind kind = kClaim;
  std::string id;
  uint64_t sequence = 0;  // stored events
  // Event time for events; for claims, the holder's deadline; for released
  // claims, when released.
  absl::Time time;

  std::string Encode() const {
    const char* name = kind == kClaim ? "claim" : kind == kEvent ? "event" : "released";
    return absl::StrCat(name, " ", id, " ", sequence, " ", absl::ToUnixMicros(time));
  }
  static std::optional<DedupRecord> Decode(absl::string_view text) {
    std::vector<absl::string_view> parts = absl::StrSplit(text, ' ');
    DedupRecord r;
    int64_t micros = 0;
    if (parts.size() != 4 || !absl::SimpleAtoi(parts[2], &r.sequence) ||
        !absl::SimpleAtoi(parts[3], &micros)) {
      return std::nullopt;
    }
    if (parts[0] == "claim") {
      r.kind = kClaim;
    } else if (parts[0] == "event") {
      r.kind = kEvent;
    } else if (parts[0] == "released") {
      r.kind = kReleased;
    } else {
      return std::nullopt;
    }
    r.id = std::string(parts[1]);
    r.time = absl::FromUnixMicros(micros);
    return r;
  }
};

struct NatsEventLog::DedupEntry {
  std::optional<DedupRecord> record;
  uint64_t revision = 0;
};

std::string_view ClassifyRefusal(natsStatus s, jsErrCode jerr) {
  if (jerr == JSInsufficientResourcesErr || jerr == JSStorageResourcesExceededErr ||
      jerr == JSMemoryResourcesExceededErr || jerr == JSStreamStoreFailedErr) {
    return "out_of_storage";
  }
  if (jerr == JSClusterNoPeersErr || jerr == JSClusterNotAvailErr || s == NATS_NO_RESPONDERS) {
    return "no_quorum";
  }
  if (s == NATS_TIMEOUT) return "timeout";
  if (s == NATS_CONNECTION_DISCONNECTED || s == NATS_CONNECTION_CLOSED ||
      s == NATS_NOT_YET_CONNECTED || s == NATS_STALE_CONNECTION || s == NATS_IO_ERROR ||
      s == NATS_NO_SERVER || s == NATS_INSUFFICIENT_BUFFER) {
    return "disconnected";
  }
  return "other";
}

void RefusalLog::Note(std::string_view reason, std::string_view detail) {
  const absl::Time now = absl::Now();
  uint64_t suppressed = 0;
  {
    MutexLock lock(&mu_);
    Reason& r = reasons_[std::string(reason)];
    ++r.count;
    if (r.logged != absl::InfinitePast() && now - r.logged < kLogInterval) {
      ++r.unlogged;
      return;
    }
    r.logged = now;
    suppressed = r.unlogged;
    r.unlogged = 0;
  }
  log::Warn("the event store refused a write",
            {{"reason", std::string(reason)},
             {"error", std::string(detail)},
             {"refusals_not_logged", suppressed}});
}

std::map<std::string, uint64_t> RefusalLog::Counts() const {
  MutexLock lock(&mu_);
  std::map<std::string, uint64_t> counts;
  for (const auto& [reason, r] : reasons_) counts[reason] = r.count;
  return counts;
}

std::map<std::string, uint64_t> NatsEventLog::RefusalCounts() const { return refusals_.Counts(); }

NatsEventLog::NatsEventLog(NatsConnection* connection) : connection_(connection) {
  if (connection->options().latest_view) {
    view_ = std::make_unique<NatsLatestView>(connection, this);
  }
}

absl::Status NatsEventLog::SubscribeOrdered(uint64_t from_sequence, absl::Time from_time,
                                            absl::Duration heartbeat,
                                            natsSubscription** sub) const {
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Ordered = true;
  options.Stream = connection_->options().stream.c_str();
  if (from_time != absl::InfinitePast()) {
    options.Config.DeliverPolicy = js_DeliverByStartTime;
    options.Config.OptStartTime = absl::ToUnixNanos(from_time);
  } else {
    options.Config.DeliverPolicy = js_DeliverByStartSequence;
    options.Config.OptStartSeq = std::max<uint64_t>(from_sequence, 1);
  }
  if (heartbeat > absl::ZeroDuration()) options.Config.Heartbeat = Nanos(heartbeat);
  const std::string subjects = connection_->SubjectFilter("");
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(sub, connection_->js(), subjects.c_str(), nullptr, &options, &jerr);
  return NatsStatus(s, jerr, "reading the stream");
}

absl::StatusOr<std::unique_ptr<NatsEventLog>> NatsEventLog::Open(NatsConnection* connection) {
  auto log = std::unique_ptr<NatsEventLog>(new NatsEventLog(connection));
  absl::Status setup = connection->connected()
                           ? log->Setup()
                           : absl::UnavailableError("not connected to NATS");
  if (setup.ok()) {
    log->MarkOpened();
  } else if (!absl::IsUnavailable(setup)) {
    return setup;  // NATS answered: a mistake in the options or the servers'
  } else {
    MutexLock lock(&log->health_mu_);
    log->waiting_ = absl::UnavailableError(
        absl::StrCat("waiting for NATS at ", connection->servers(), " (", setup.message(), ")"));
    log::Warn("the event store opens once NATS answers; webhooks are refused until then",
              {{"error", std::string(setup.message())}});
  }
  NatsEventLog* self = log.get();
  log->connection_listener_ = connection->AddListener([self](bool connected) {
    if (connected) {
      self->resubscribe_.store(true, std::memory_order_release);
      return;
    }
    MutexLock lock(&self->listener_mu_);
    if (self->listener_ != nullptr) {
      self->listener_->OnStoreUnavailable(absl::UnavailableError("lost the NATS connection"));
    }
  });
  log->tail_ = std::thread([self] { self->TailLoop(); });
  log->probe_ = std::thread([self] { self->ProbeLoop(); });
  return log;
}

bool NatsEventLog::OpenInBackground() {
  absl::Duration pause = absl::Milliseconds(250);
  std::string last_error;
  while (!stop_.HasBeenNotified()) {
    absl::Status setup = connection_->connected()
                             ? Setup()
                             : absl::UnavailableError("not connected to NATS");
    if (setup.ok()) {
      MarkOpened();
      return true;
    }
    {
      MutexLock lock(&health_mu_);
      waiting_ = absl::UnavailableError(absl::StrCat(
          "waiting for NATS at ", connection_->servers(), " (", setup.message(), ")"));
    }
    if (setup.message() != last_error) {  // once per change, not per attempt
      last_error = std::string(setup.message());
      log::Write(absl::IsUnavailable(setup) ? log::Level::kWarn : log::Level::kError,
                 "cannot open the event store on NATS yet; retrying",
                 {{"error", last_error}});
    }
    stop_.WaitForNotificationWithTimeout(pause);
    pause = std::min(pause * 2, NatsConnection::kMaxReconnectDelay);
  }
  return false;
}

void NatsEventLog::MarkOpened() {
  uint64_t last;
  {
    MutexLock lock(&tail_mu_);
    last = tail_passed_;
  }
  if (view_ != nullptr) view_->Start();
  {
    MutexLock lock(&listener_mu_);
    opened_.Notify();
    if (listener_ != nullptr) listener_->OnStoreOpened(last);
  }
  log::Info("event store open on NATS",
            {{"stream", connection_->options().stream}, {"last_sequence", last}});
}

absl::Status NatsEventLog::Opened() const {
  if (opened_.HasBeenNotified()) return absl::OkStatus();
  MutexLock lock(&health_mu_);
  return waiting_;
}

absl::Status NatsEventLog::Setup() {
  const NatsOptions& o = connection_->options();
  std::string subjects = connection_->SubjectFilter("");
  const char* subject_list[] = {subjects.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = o.stream.c_str();
  config.Subjects = subject_list;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Retention = js_LimitsPolicy;
  config.Discard = js_DiscardOld;
  config.Replicas = o.replicas;
  config.MaxAge = Nanos(o.max_age);
  config.MaxBytes = o.max_bytes;
  config.MaxMsgs = o.max_events;
  config.Duplicates = Nanos(o.duplicate_window);
  config.AllowDirect = true;

  jsErrCode jerr = static_cast<jsErrCode>(0);
  OwnedStreamInfo info;
  natsStatus s = js_GetStreamInfo(info.out(), connection_->js(), o.stream.c_str(), nullptr, &jerr);
  absl::Status found = NatsStatus(s, jerr, absl::StrCat("looking up stream ", o.stream));
  if (absl::IsNotFound(found)) {
    jerr = static_cast<jsErrCode>(0);
    s = js_AddStream(info.out(), connection_->js(), &config, nullptr, &jerr);
    RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("creating stream ", o.stream)));
    log::Info("created JetStream stream",
              {{"stream", o.stream}, {"subjects", subjects}, {"replicas", o.replicas}});
  } else {
    RETURN_IF_ERROR(found);
    const jsStreamConfig* have = info->Config;
    bool ours = false;
    for (int i = 0; i < have->SubjectsLen; ++i) ours |= subjects == have->Subjects[i];
    if (!ours) {
      return absl::FailedPreconditionError(absl::StrCat(
          "stream ", o.stream, " exists without subject ", subjects,
          "; choose another --nats-stream or --nats-subject-prefix"));
    }
    // Apply the limits given now (the stream may predate them).
    if (have->MaxAge != config.MaxAge || have->MaxBytes != config.MaxBytes ||
        have->MaxMsgs != config.MaxMsgs ||
        have->Duplicates != config.Duplicates || !have->AllowDirect ||
        have->Replicas != config.Replicas) {
      OwnedStreamInfo updated;
      jerr = static_cast<jsErrCode>(0);
      s = js_UpdateStream(updated.out(), connection_->js(), &config, nullptr, &jerr);
      RETURN_IF_ERROR(NatsStatus(s, jerr, absl::StrCat("updating stream ", o.stream)));
    }
  }
  last_sequence_.store(info->State.LastSeq, std::memory_order_release);
  tail_next_ = info->State.LastSeq + 1;
  {
    MutexLock lock(&tail_mu_);
    tail_passed_ = info->State.LastSeq;
  }

  RETURN_IF_ERROR(OpenBucket(connection_, DedupBucket(o), "hookfan AppendOnce keys",
                             o.dedup_max_age, o.dedup_max_bytes()));
  // No TTL: a device is remembered after its events are gone.
  RETURN_IF_ERROR(OpenBucket(connection_, DeviceBucket(o),
                             "hookfan device directory: UDID to serial number",
                             absl::ZeroDuration(), o.device_max_bytes()));
  return view_ != nullptr ? view_->Setup() : absl::OkStatus();
}

NatsEventLog::~NatsEventLog() {
  stop_.Notify();
  if (tail_.joinable()) tail_.join();
  if (probe_.joinable()) probe_.join();
  view_.reset();  // its writer reads the log
  connection_->RemoveListener(connection_listener_);
}

void NatsEventLog::NoteLast(uint64_t seq) {
  uint64_t last = last_sequence_.load(std::memory_order_relaxed);
  while (seq > last &&
         !last_sequence_.compare_exchange_weak(last, seq, std::memory_order_acq_rel)) {
  }
}

absl::StatusOr<uint64_t> NatsEventLog::PublishOne(v1::Event& event, absl::Time deadline,
                                                  bool* certainly_not_stored) {
  *certainly_not_stored = false;
  if (event.type().find_first_of("*> \t") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("event type \"", event.type(), "\" is not a NATS subject token list"));
  }
  event.clear_sequence();
  std::string data = event.SerializeAsString();
  std::string subject = connection_->SubjectForType(event.type());
  // While disconnected nats.c would queue the publish and send it after a
  // reconnect, storing an event whose append already failed.
  if (!connection_->connected()) {
    *certainly_not_stored = true;
    return Refused(NATS_CONNECTION_DISCONNECTED, static_cast<jsErrCode>(0),
                   absl::StrCat("publishing event ", event.id()));
  }
  OwnedMsg msg;
  natsStatus s = natsMsg_Create(msg.out(), subject.c_str(), nullptr, data.data(),
                                static_cast<int>(data.size()));
  if (s != NATS_OK) return NatsStatus(s, static_cast<jsErrCode>(0), "building a message");
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MsgId = event.id().c_str();
  options.MaxWait = MillisLeft(deadline);
  options.ExpectStream = connection_->options().stream.c_str();
  OwnedPubAck ack;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_PublishMsg(ack.out(), connection_->js(), msg.get(), &options, &jerr);
  if (s == NATS_MAX_PAYLOAD) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event ", event.id(), " (", data.size(), " bytes) exceeds the NATS server's max_payload"));
  }
  if (s != NATS_OK) {
    // An error reply from JetStream, or a message nats.c never sent, was
    // not stored; a timeout may have been (the acknowledgement lost).
    *certainly_not_stored = jerr != 0 || s == NATS_NO_RESPONDERS ||
                            s == NATS_CONNECTION_DISCONNECTED ||
                            s == NATS_INSUFFICIENT_BUFFER || s == NATS_CONNECTION_CLOSED;
    return Refused(s, jerr, absl::StrCat("publishing event ", event.id()));
  }
  if (ack->Duplicate) return AlreadyStored(event.id());
  event.set_sequence(ack->Sequence);
  NoteLast(ack->Sequence);
  return ack->Sequence;
}

absl::Status NatsEventLog::Append(absl::Span<v1::Event> events) {
  RETURN_IF_ERROR(Opened());
  RETURN_IF_ERROR(ValidateBatch(events));
  if (events.empty()) return absl::OkStatus();
  const absl::Time deadline = absl::Now() + connection_->options().request_timeout;
  bool not_stored = false;
  if (events.size() == 1) {
    {
      std::shared_lock lock(publish_mu_);
      RETURN_IF_ERROR(PublishOne(events[0], deadline, &not_stored).status());
    }
    LearnDevice(events[0], deadline);
    WaitForTail(events[0].sequence(), deadline);
    return absl::OkStatus();
  }
  std::set<std::string_view> ids;
  for (const v1::Event& e : events) {
    if (!ids.insert(e.id()).second) return AlreadyStored(e.id());
  }
  std::unique_lock lock(publish_mu_);
  for (const v1::Event& e : events) {
    absl::StatusOr<EventPtr> found = GetById(e.id());
    if (found.ok()) return AlreadyStored(e.id());
    if (!absl::IsNotFound(found.status())) return found.status();
  }
  for (v1::Event& e : events) RETURN_IF_ERROR(PublishOne(e, deadline, &not_stored).status());
  lock.unlock();
  for (const v1::Event& e : events) LearnDevice(e, deadline);
  WaitForTail(events.back().sequence(), deadline);
  return absl::OkStatus();
}

void NatsEventLog::WaitForTail(uint64_t seq, absl::Time deadline) {
  MutexLock lock(&tail_mu_);
  auto passed = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tail_mu_) {
    return tail_passed_ >= seq || stop_.HasBeenNotified();
  };
  tail_mu_.AwaitWithDeadline(absl::Condition(&passed), deadline);
}

absl::Status NatsEventLog::ReadBucketKey(const std::string& bucket, absl::string_view key,
                                         absl::Time deadline, absl::string_view what,
                                         natsMsg** msg) {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = MillisLeft(deadline);
  const std::string stream = BucketStream(bucket);
  const std::string subject = BucketSubject(bucket, key);
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetLastMsg(msg, connection_->js(), stream.c_str(), subject.c_str(), &options, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
    nats_GetLastError(nullptr);
    if (*msg != nullptr) natsMsg_Destroy(*msg);
    *msg = nullptr;
    return absl::OkStatus();
  }
  return s == NATS_OK ? absl::OkStatus() : Refused(s, jerr, what);
}

absl::StatusOr<NatsEventLog::DedupEntry> NatsEventLog::ReadDedup(const std::string& key,
                                                                absl::Time deadline) {
  OwnedMsg msg;
  RETURN_IF_ERROR(ReadBucketKey(DedupBucket(connection_->options()), key, deadline,
                                "reading a dedup key", msg.out()));
  if (msg.get() == nullptr) return DedupEntry{};
  DedupEntry entry;
  entry.revision = natsMsg_GetSequence(msg.get());
  // A delete or purge marker (KV-Operation header, no data) or a record of
  // another format leaves `record` empty: the key is free.
  entry.record = DedupRecord::Decode(
      absl::string_view(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get())));
  return entry;
}

absl::StatusOr<uint64_t> NatsEventLog::WriteDedup(const std::string& key, const DedupRecord& record,
                                                  uint64_t revision, absl::Time deadline,
                                                  bool* lost_race) {
  *lost_race = false;
  if (!connection_->connected()) {
    return Refused(NATS_CONNECTION_DISCONNECTED, static_cast<jsErrCode>(0),
                   "writing a dedup key");
  }
  const std::string subject = DedupSubject(connection_->options(), key);
  const std::string value = record.Encode();
  OwnedMsg msg;
  natsStatus s = natsMsg_Create(msg.out(), subject.c_str(), nullptr, value.data(),
                                static_cast<int>(value.size()));
  if (s != NATS_OK) return NatsStatus(s, static_cast<jsErrCode>(0), "building a message");
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = MillisLeft(deadline);
  // nats.c sends ExpectLastSubjectSeq only when > 0; "must not exist" is
  // the header with 0, as KV's own Create sends it.
  if (revision == 0) {
    s = natsMsgHeader_Set(msg.get(), "Nats-Expected-Last-Subject-Sequence", "0");
    if (s != NATS_OK) return NatsStatus(s, static_cast<jsErrCode>(0), "building a message");
  } else {
    options.ExpectLastSubjectSeq = revision;
  }
  OwnedPubAck ack;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_PublishMsg(ack.out(), connection_->js(), msg.get(), &options, &jerr);
  if (s != NATS_OK && jerr == JSStreamWrongLastSequenceErr) {
    nats_GetLastError(nullptr);
    *lost_race = true;
    return uint64_t{0};
  }
  if (s != NATS_OK) return Refused(s, jerr, "writing a dedup key");
  return ack->Sequence;
}

void NatsEventLog::CacheDevice(std::string udid, std::string serial_number) {
  MutexLock lock(&devices_mu_);
  if (serial_numbers_.size() >= kMaxCachedDevices) serial_numbers_.clear();
  serial_numbers_[std::move(udid)] = std::move(serial_number);
}

void NatsEventLog::LearnDevice(const v1::Event& event, absl::Time deadline) {
  std::optional<DeviceRecord> device = DeviceRecordOf(event);
  if (!device.has_value()) return;
  {
    MutexLock lock(&devices_mu_);
    auto known = serial_numbers_.find(AbslView(device->udid));
    if (known != serial_numbers_.end() && known->second == device->serial_number) return;
  }
  // The event is stored either way; a device not written is written by the
  // next event that names it. An unavailable store is logged (rate-limited)
  // and counted as a refusal; anything else is news.
  if (!connection_->connected()) {
    Refused(NATS_CONNECTION_DISCONNECTED, static_cast<jsErrCode>(0), "writing a device")
        .IgnoreError();
    return;
  }
  const std::string subject =
      BucketSubject(DeviceBucket(connection_->options()), BucketKey(AbslView(device->udid)));
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = MillisLeft(deadline);
  OwnedPubAck ack;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(ack.out(), connection_->js(), subject.c_str(),
                            device->serial_number.data(),
                            static_cast<int>(device->serial_number.size()), &options, &jerr);
  if (s != NATS_OK) {
    absl::Status refused = Refused(s, jerr, "writing a device");
    if (!absl::IsUnavailable(refused)) {
      log::Warn("could not record a device", {{"event_id", event.id()},
                                              {"error", std::string(refused.message())}});
    }
    return;
  }
  CacheDevice(std::string(device->udid), std::string(device->serial_number));
}

absl::StatusOr<std::string> NatsEventLog::DeviceSerialNumber(std::string_view udid) {
  RETURN_IF_ERROR(Opened());
  {
    MutexLock lock(&devices_mu_);
    auto known = serial_numbers_.find(AbslView(udid));
    if (known != serial_numbers_.end()) return known->second;
  }
  // A lookup runs before its event's append: a store that cannot take
  // writes says so at once, and a frozen one costs at most a second more.
  RETURN_IF_ERROR(Ready());
  const NatsOptions& o = connection_->options();
  OwnedMsg msg;
  RETURN_IF_ERROR(ReadBucketKey(DeviceBucket(o), BucketKey(AbslView(udid)),
                                absl::Now() + std::min(o.request_timeout, kDeviceLookupTimeout),
                                "reading a device", msg.out()));
  if (msg.get() == nullptr) return std::string();
  // A delete or purge marker has no data: the device is not known.
  std::string serial_number(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get()));
  if (!serial_number.empty()) CacheDevice(std::string(udid), serial_number);
  return serial_number;
}

absl::Status NatsEventLog::Refused(natsStatus s, jsErrCode jerr, absl::string_view what) {
  absl::Status status = NatsStatus(s, jerr, what);
  nats_GetLastError(nullptr);  // the text is in `status`
  if (absl::IsUnavailable(status)) {
    refusals_.Note(ClassifyRefusal(s, jerr),
                   std::string_view(status.message().data(), status.message().size()));
  }
  return status;
}

absl::StatusOr<AppendOnceResult> NatsEventLog::AppendOnce(v1::Event event,
                                                          std::string_view dedup_key,
                                                          absl::Duration window) {
  RETURN_IF_ERROR(Opened());
  RETURN_IF_ERROR(ValidateBatch(absl::MakeConstSpan(&event, 1)));
  const std::string key = BucketKey(AbslView(dedup_key));
  const absl::Time time = EventTime(event);
  window = std::min(window, connection_->options().dedup_max_age);
  // One deadline bounds every wait of this append, so that the webhook
  // behind it is answered within the store timeout.
  const absl::Time deadline = absl::Now() + connection_->options().request_timeout;
  // The claim carries its holder's deadline: past it (and kClaimMargin),
  // the holder's publish has happened or never will, so another appender
  // may look the event up and take the key over.
  const DedupRecord claim{.kind = DedupRecord::kClaim, .id = event.id(), .time = deadline};

  // Claim the key (create it, or replace an expired record, a released or
  // an expired claim at the revision read), append, then record the event
  // under the key. Of concurrent appenders exactly one claim succeeds; the
  // others wait for its record. A refused read or write returns at once:
  // retrying a JetStream that refuses writes only adds load.
  uint64_t revision = 0;
  absl::Duration pause = absl::Milliseconds(2);
  // A key is new far more often than not: the first attempt creates the
  // claim without reading the key (one round trip fewer); when the key
  // exists the create is refused and the loop reads it.
  bool assume_new = true;
  while (true) {
    if (absl::Now() >= deadline) {
      return Refused(NATS_TIMEOUT, static_cast<jsErrCode>(0),
                     "waiting for a concurrent append of the same key");
    }
    DedupEntry entry;
    if (!std::exchange(assume_new, false)) {
      ASSIGN_OR_RETURN(entry, ReadDedup(key, deadline));
    }
    const std::optional<DedupRecord>& record = entry.record;
    const bool expired_claim = record.has_value() && record->kind == DedupRecord::kClaim &&
                               absl::Now() > record->time + kClaimMargin;
    if (expired_claim) {
      // The claimant died, or its publish timed out: its event may be stored.
      absl::StatusOr<EventPtr> claimed = GetById(record->id);
      if (claimed.ok() && time - EventTime((*claimed)->event) < window) {
        return AppendOnceResult{.id = record->id,
                                .sequence = (*claimed)->event.sequence(),
                                .duplicate = true};
      }
      if (!claimed.ok() && !absl::IsNotFound(claimed.status())) return claimed.status();
    }
    const bool take_over = !record.has_value() || record->kind == DedupRecord::kReleased ||
                           expired_claim ||
                           (record->kind == DedupRecord::kEvent && time - record->time >= window);
    if (!take_over && record->kind == DedupRecord::kEvent) {
      return AppendOnceResult{.id = record->id, .sequence = record->sequence, .duplicate = true};
    }
    if (!take_over) {  // another appender is between claim and record
      absl::SleepFor(std::min(pause, deadline - absl::Now()));
      pause = std::min(pause * 2, absl::Milliseconds(100));
      continue;
    }
    bool lost_race = false;
    ASSIGN_OR_RETURN(revision, WriteDedup(key, claim, entry.revision, deadline, &lost_race));
    if (!lost_race) break;  // else another appender wrote first: look again
  }

  absl::StatusOr<uint64_t> sequence;
  bool certainly_not_stored = false;
  {
    std::shared_lock lock(publish_mu_);
    sequence = PublishOne(event, deadline, &certainly_not_stored);
  }
  if (!sequence.ok()) {
    // Not stored for certain (JetStream refused it, or it was never sent):
    // release the claim so that the identical retry is taken at once. Maybe
    // stored (a lost acknowledgement): the claim stays until its deadline
    // passes; the next appender then looks the event up.
    if (certainly_not_stored) {
      bool lost_race = false;
      const DedupRecord released{.kind = DedupRecord::kReleased, .id = event.id(),
                                 .time = absl::Now()};
      // A failed release is logged and counted as a refusal; the retry then
      // waits for the claim's deadline.
      WriteDedup(key, released, revision, std::max(deadline, absl::Now() + kReleaseTimeout),
                 &lost_race)
          .IgnoreError();
    }
    return sequence.status();
  }
  const DedupRecord stored{.kind = DedupRecord::kEvent, .id = event.id(), .sequence = *sequence,
                           .time = time};
  bool lost_race = false;
  absl::StatusOr<uint64_t> recorded =
      WriteDedup(key, stored, revision, std::max(deadline, absl::Now() + kReleaseTimeout),
                 &lost_race);
  if (!recorded.ok() || lost_race) {
    // The event is stored; only its key is not. Past the claim's deadline
    // the next appender finds the event by its id, within JetStream's limits.
    log::Warn("could not record an idempotency key",
              {{"event_id", event.id()},
               {"error", lost_race ? std::string("the key was taken over")
                                   : std::string(recorded.status().message())}});
  }
  LearnDevice(event, deadline);
  WaitForTail(*sequence, deadline);
  return AppendOnceResult{.id = event.id(), .sequence = *sequence, .duplicate = false};
}

absl::StatusOr<EventPtr> NatsEventLog::NextAt(uint64_t seq) {
  std::string subjects = connection_->SubjectFilter("");
  jsDirectGetMsgOptions options;
  jsDirectGetMsgOptions_Init(&options);
  options.Sequence = seq;
  options.NextBySubject = subjects.c_str();
  OwnedMsg msg;
  natsStatus s = js_DirectGetMsg(msg.out(), connection_->js(),
                                 connection_->options().stream.c_str(), nullptr, &options);
  if (s == NATS_NOT_FOUND) {
    nats_GetLastError(nullptr);
    return nullptr;
  }
  RETURN_IF_ERROR(NatsStatus(s, static_cast<jsErrCode>(0),
                             absl::StrCat("reading sequence ", seq)));
  return NatsConnection::DecodeEvent(msg.get());
}

absl::StatusOr<std::vector<EventPtr>> NatsEventLog::Read(uint64_t from, size_t max_events,
                                                         size_t max_bytes) {
  RETURN_IF_ERROR(Opened());
  std::vector<EventPtr> events;
  size_t bytes = 0;
  const uint64_t last = LastSequence();
  uint64_t seq = std::max<uint64_t>(from, 1);
  if (max_events > kMaxDirectRead && seq <= last) {
    // Many events: one ordered consumer rather than a round trip each.
    absl::Status decoded;
    RETURN_IF_ERROR(connection_->Scan(
        connection_->options().stream, connection_->SubjectFilter(""), seq, max_events,
        [&](natsMsg* msg) {
          absl::StatusOr<EventPtr> event = NatsConnection::DecodeEvent(msg);
          if (!event.ok()) {
            decoded = event.status();
            return false;
          }
          if ((*event)->event.sequence() > last) return false;
          if (!events.empty() && bytes + (*event)->wire.size() > max_bytes) return false;
          bytes += (*event)->wire.size();
          events.push_back(*std::move(event));
          return true;
        }));
    RETURN_IF_ERROR(decoded);
    return events;
  }
  while (events.size() < max_events && seq <= last) {
    ASSIGN_OR_RETURN(EventPtr event, NextAt(seq));
    if (event == nullptr || event->event.sequence() > last) break;
    if (!events.empty() && bytes + event->wire.size() > max_bytes) break;
    bytes += event->wire.size();
    seq = event->event.sequence() + 1;
    events.push_back(std::move(event));
  }
  return events;
}

absl::StatusOr<EventPtr> NatsEventLog::GetById(std::string_view id_view) {
  RETURN_IF_ERROR(Opened());
  const absl::string_view id(id_view.data(), id_view.size());
  // Scan with an ordered consumer: from a few minutes before a UUIDv7's
  // minting time to a few minutes after it, or the whole stream.
  OwnedStreamInfo info;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(info.out(), connection_->js(),
                                  connection_->options().stream.c_str(), nullptr, &jerr);
  RETURN_IF_ERROR(NatsStatus(s, jerr, "reading stream info"));
  const uint64_t last = info->State.LastSeq;
  absl::Status not_found = absl::NotFoundError(absl::StrCat("no event with id ", id));
  if (info->State.Msgs == 0) return not_found;
  std::optional<absl::Time> minted = UuidV7Time(id);
  OwnedSubscription sub(connection_);
  RETURN_IF_ERROR(SubscribeOrdered(
      1, minted.has_value() ? *minted - kIdTimeSlack : absl::InfinitePast(),
      absl::ZeroDuration(), sub.out()));
  while (true) {
    OwnedMsg msg;
    s = natsSubscription_NextMsg(msg.out(), sub.get(), connection_->timeout_ms());
    if (s == NATS_TIMEOUT && minted.has_value()) {
      nats_GetLastError(nullptr);
      return not_found;  // nothing stored since the start time
    }
    RETURN_IF_ERROR(NatsStatus(s, static_cast<jsErrCode>(0), "scanning the stream"));
    OwnedMetaData meta;
    if (natsMsg_GetMetaData(meta.out(), msg.get()) != NATS_OK) {
      return absl::DataLossError("a scanned message has no JetStream metadata");
    }
    ASSIGN_OR_RETURN(EventPtr event, NatsConnection::DecodeEvent(msg.get()));
    if (event->event.id() == id) return event;
    if (meta->NumPending == 0 || meta->Sequence.Stream >= last) return not_found;
    if (minted.has_value() &&
        absl::FromUnixNanos(meta->Timestamp) > *minted + kIdTimeSlack) {
      return not_found;
    }
  }
}

absl::StatusOr<uint64_t> NatsEventLog::FirstSequence() {
  RETURN_IF_ERROR(Opened());
  OwnedStreamInfo info;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(info.out(), connection_->js(),
                                  connection_->options().stream.c_str(), nullptr, &jerr);
  RETURN_IF_ERROR(NatsStatus(s, jerr, "reading stream info"));
  NoteLast(info->State.LastSeq);
  return info->State.Msgs == 0 ? info->State.LastSeq + 1 : info->State.FirstSeq;
}

uint64_t NatsEventLog::LastSequence() const {
  return last_sequence_.load(std::memory_order_acquire);
}

absl::StatusOr<uint64_t> NatsEventLog::SequenceAtTime(absl::Time t) {
  // Bisect on "the first event at or after seq has time >= t", which grows
  // with seq when event times do.
  ASSIGN_OR_RETURN(uint64_t lo, FirstSequence());
  uint64_t hi = LastSequence() + 1;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    ASSIGN_OR_RETURN(EventPtr event, NextAt(mid));
    if (event == nullptr || EventTime(event->event) >= t) {
      hi = mid;
    } else {
      lo = event->event.sequence() + 1;
    }
  }
  if (lo > LastSequence()) return lo;
  ASSIGN_OR_RETURN(EventPtr event, NextAt(lo));
  return event == nullptr ? LastSequence() + 1 : event->event.sequence();
}

absl::Status NatsEventLog::LatestView() const {
  if (view_ == nullptr) return NoLatestViewError("the store was opened with --latest-view=false");
  return Opened();
}

absl::StatusOr<uint64_t> NatsEventLog::LatestThrough() {
  RETURN_IF_ERROR(LatestView());
  return view_->Through();
}

absl::StatusOr<std::vector<EventPtr>> NatsEventLog::ReadLatest(uint64_t from, uint64_t through,
                                                               size_t max_events) {
  RETURN_IF_ERROR(LatestView());
  return view_->ReadLatest(from, std::min(through, LastSequence()), max_events);
}

absl::StatusOr<std::vector<EventPtr>> NatsEventLog::GetLatest(std::string_view key) {
  RETURN_IF_ERROR(LatestView());
  return view_->GetLatest(key);
}

absl::StatusOr<std::vector<KeyLatest>> NatsEventLog::ListLatest(std::string_view after_key,
                                                                size_t max_keys) {
  RETURN_IF_ERROR(LatestView());
  return view_->ListLatest(after_key, max_keys);
}

void NatsEventLog::SetCommitListener(CommitListener* listener) {
  uint64_t last;
  {
    MutexLock lock(&tail_mu_);
    last = tail_passed_;
  }
  MutexLock lock(&listener_mu_);
  listener_ = listener;
  // A listener set after the log opened in the background learns where
  // the log stands (one set before is told by MarkOpened).
  if (listener_ != nullptr && opened_.HasBeenNotified()) listener_->OnStoreOpened(last);
}

absl::Status NatsEventLog::Ready() const {
  RETURN_IF_ERROR(Opened());
  if (!connection_->connected()) {
    return absl::UnavailableError(absl::StrCat("not connected to NATS at ", connection_->servers()));
  }
  MutexLock lock(&health_mu_);
  return write_health_;
}

absl::Status NatsEventLog::Probe() {
  // A KV put of the key "probe": one message replacing the last one
  // (History 1), written by the bucket's leader and quorum like an event.
  const std::string subject = DedupSubject(connection_->options(), "probe");
  const std::string stream = DedupStream(connection_->options());
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = absl::ToInt64Milliseconds(kProbeTimeout);
  options.ExpectStream = stream.c_str();
  OwnedPubAck ack;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(ack.out(), connection_->js(), subject.c_str(), "1", 1, &options, &jerr);
  return NatsStatus(s, jerr, "writing to JetStream");
}

void NatsEventLog::ProbeLoop() {
  while (!stop_.WaitForNotificationWithTimeout(kProbeInterval)) {
    if (!opened_.HasBeenNotified() || !connection_->connected()) continue;
    absl::Status probe = Probe();
    if (!probe.ok()) nats_GetLastError(nullptr);  // the text is in `probe`
    absl::Status health =
        probe.ok() ? absl::OkStatus()
                   : absl::UnavailableError(
                         absl::StrCat("the event store does not take writes: ", probe.message()));
    MutexLock lock(&health_mu_);
    if (health.ok() != write_health_.ok()) {
      log::Write(health.ok() ? log::Level::kInfo : log::Level::kWarn,
                 health.ok() ? "the event store takes writes again; ready"
                             : "the event store does not take writes; not ready",
                 {{"error", std::string(probe.message())}});
    }
    write_health_ = std::move(health);
  }
}

void NatsEventLog::TailLoop() {
  if (!opened_.HasBeenNotified() && !OpenInBackground()) return;
  while (!stop_.HasBeenNotified()) {
    resubscribe_.store(false, std::memory_order_release);
    OwnedSubscription sub(connection_);
    if (!SubscribeOrdered(tail_next_, absl::InfinitePast(), absl::Seconds(1), sub.out()).ok()) {
      stop_.WaitForNotificationWithTimeout(absl::Milliseconds(250));
      continue;
    }
    while (!stop_.HasBeenNotified() && !resubscribe_.load(std::memory_order_acquire)) {
      std::vector<EventPtr> batch;
      OwnedMsg first;
      natsStatus s = natsSubscription_NextMsg(first.out(), sub.get(), 100);
      if (s == NATS_TIMEOUT) {
        nats_GetLastError(nullptr);
        continue;
      }
      if (s != NATS_OK) {
        nats_GetLastError(nullptr);
        break;  // resubscribe after tail_next_
      }
      // Take what is already queued too, so one commit carries a burst.
      uint64_t queued = 0;
      if (natsSubscription_QueuedMsgs(sub.get(), &queued) != NATS_OK) queued = 0;
      std::vector<OwnedMsg> more(std::min<uint64_t>(queued, 1024));
      for (OwnedMsg& m : more) {
        if (natsSubscription_NextMsg(m.out(), sub.get(), 0) != NATS_OK) {
          nats_GetLastError(nullptr);
          break;
        }
      }
      auto take = [&](natsMsg* msg) {
        if (msg == nullptr) return;
        absl::StatusOr<EventPtr> event = NatsConnection::DecodeEvent(msg);
        if (!event.ok()) {
          log::Error("skipping an undecodable message", {{"error", event.status().ToString()}});
          return;
        }
        uint64_t seq = (*event)->event.sequence();
        if (seq < tail_next_) return;  // seen before a resubscribe
        tail_next_ = seq + 1;
        NoteLast(seq);
        batch.push_back(*std::move(event));
      };
      take(first.get());
      for (OwnedMsg& m : more) take(m.get());
      if (batch.empty()) continue;
      {
        MutexLock lock(&listener_mu_);
        if (listener_ != nullptr) listener_->OnCommit(batch);
      }
      if (view_ != nullptr) view_->Offer(batch);
      MutexLock lock(&tail_mu_);
      tail_passed_ = batch.back()->event.sequence();
    }
  }
}

}  // namespace hookfan::broker
