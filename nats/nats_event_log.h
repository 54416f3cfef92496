#pragma once

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_log.h"
#include "nats/nats_connection.h"
#include "nats/nats_latest_view.h"
#include "common/sync.h"

namespace hookfan::broker {

struct DedupRecord;  // an AppendOnce key's record (nats_event_log.cc)

// The reason JetStream or nats.c refused a write, for logs and metrics:
// "out_of_storage", "no_quorum" (also no responders), "timeout",
// "disconnected" or "other".
std::string_view ClassifyRefusal(natsStatus s, jsErrCode jerr);

// Counts refused writes per reason and logs them: the first of a reason at
// once, then at most once per kLogInterval with how many went unlogged, so
// that an outage under load does not write one line per webhook.
// Thread-safe.
class RefusalLog {
 public:
  static constexpr absl::Duration kLogInterval = absl::Seconds(10);
  void Note(std::string_view reason, std::string_view detail);
  std::map<std::string, uint64_t> Counts() const;

 private:
  struct Reason {
    uint64_t count = 0;
    uint64_t unlogged = 0;
    absl::Time logged = absl::InfinitePast();
  };
  mutable Mutex mu_;
  std::map<std::string, Reason> reasons_ ABSL_GUARDED_BY(mu_);
};

// NatsEventLog keeps the event log in a NATS JetStream stream, so that
// several hookfan replicas share one log: a webhook stored by any replica
// reaches the subscribers of every replica.
//
// Layout: the stream NatsOptions::stream (created if missing, its limits
// updated to the options otherwise) takes the subjects "<prefix>.>"; an
// event of type T is one message on "<prefix>.T" whose data is the Event
// protobuf without its sequence, with the event id as Nats-Msg-Id. The
// JetStream stream sequence is the event's sequence. AppendOnce keys live
// in the key-value bucket "<stream>_DEDUP"; the latest view in the stream
// "<stream>_LATEST" (NatsLatestView).
//
// Open() returns at once when NATS does not answer yet: the log then opens
// in the background (Opened() and Ready() say "waiting for NATS at …" and
// every call fails with kUnavailable until it does), so a replica serves
// /healthz and answers webhooks 503 while NATS starts.
//
// Ready() is the outcome of a write probe, one small message to the dedup
// bucket every kProbeInterval: a frozen, full or quorum-less JetStream
// makes the replica not ready within kProbeInterval + kProbeTimeout, and
// ready again as soon as a probe is taken.
//
// Every replica tails the stream (an ordered push consumer) and tells the
// CommitListener of every event, whichever replica appended it, in stream
// order; an append returns once its own replica's listener was told (or
// after the request timeout: it is stored either way). While NATS is unreachable, appends and reads fail with
// kUnavailable and Ready() says why; the listener is told through
// OnStoreUnavailable so live streams end and clients resume elsewhere or
// later; when NATS returns, the tail resumes after the last event it passed
// on.
//
// Differences from the SQLite log, all owed to JetStream 2.9:
// - A batch of several events is published one message at a time: batches
//   from one replica are contiguous, but a failure midway leaves the events
//   before it stored, and batches of different replicas may interleave.
// - An id already stored is refused only within the stream's duplicate
//   window (and, for batches of more than one event, by a lookup first).
// - GetById scans the stream: hookfan's own ids (UUIDv7) carry their minting
//   time, so the scan covers a few minutes around it; other ids cost a scan
//   of the whole stream.
// - SequenceAtTime bisects on event time, exact when event times grow with
//   sequence (they do up to clock skew between replicas).
// - Durability is JetStream's: acknowledged means written by the stream's
//   leader, and with replicas > 1 by a quorum of servers.
//
// Thread-safe.
class NatsEventLog : public EventLog {
 public:
  static constexpr absl::Duration kProbeInterval = absl::Seconds(1);
  static constexpr absl::Duration kProbeTimeout = absl::Seconds(1);

  // Creates or updates the stream and dedup bucket and starts tailing after
  // the last event; when NATS cannot be reached, keeps trying in the
  // background. `connection` must outlive the log. Errors (NATS reached):
  // kFailedPrecondition when the stream exists with other subjects; what
  // JetStream refused otherwise.
  static absl::StatusOr<std::unique_ptr<NatsEventLog>> Open(NatsConnection* connection);
  ~NatsEventLog() override;

  absl::Status Append(absl::Span<v1::Event> events) override;
  absl::StatusOr<AppendOnceResult> AppendOnce(v1::Event event, std::string_view dedup_key,
                                              absl::Duration window) override;
  absl::StatusOr<std::vector<EventPtr>> Read(uint64_t from, size_t max_events,
                                             size_t max_bytes) override;
  absl::StatusOr<EventPtr> GetById(std::string_view id) override;
  absl::StatusOr<uint64_t> FirstSequence() override;
  uint64_t LastSequence() const override;
  absl::StatusOr<uint64_t> SequenceAtTime(absl::Time t) override;
  // Answers from memory for a UDID this replica wrote or read before (a
  // UDID's serial number does not change), else from the bucket.
  absl::StatusOr<std::string> DeviceSerialNumber(std::string_view udid) override;
  // The latest view (snapshots, GetLatest, ListKeys): NatsLatestView, which
  // trails the log by its writer's lag; LatestThrough says how far it goes.
  absl::Status LatestView() const override;
  absl::StatusOr<uint64_t> LatestThrough() override;
  absl::StatusOr<std::vector<EventPtr>> ReadLatest(uint64_t from, uint64_t through,
                                                   size_t max_events) override;
  absl::StatusOr<std::vector<EventPtr>> GetLatest(std::string_view key) override;
  absl::StatusOr<std::vector<KeyLatest>> ListLatest(std::string_view after_key,
                                                    size_t max_keys) override;
  // The latest view; null when kept without one.
  NatsLatestView* latest_view() const { return view_.get(); }
  // LatestThrough as this replica last saw it (no I/O; for metrics).
  uint64_t LatestViewKnownThrough() const {
    return view_ != nullptr ? view_->known_through() : 0;
  }
  // Whether this replica writes the latest view now (one replica does).
  bool LatestViewWriterLeads() const { return view_ != nullptr && view_->leading(); }
  void SetCommitListener(CommitListener* listener) override;
  absl::Status Ready() const override;
  absl::Status Opened() const override;
  std::map<std::string, uint64_t> RefusalCounts() const override;

 private:
  explicit NatsEventLog(NatsConnection* connection);
  absl::Status Setup();
  // Runs Setup until it succeeds or the log stops; false if it stopped.
  bool OpenInBackground();
  void MarkOpened();
  // One write to the dedup bucket, bounded by kProbeTimeout.
  absl::Status Probe();
  void ProbeLoop();
  // Publishes one event, waiting for its acknowledgement until `deadline`.
  // On failure `certainly_not_stored` says whether the event is surely not
  // in the stream (JetStream refused it or it was never sent) rather than
  // maybe stored (the acknowledgement timed out).
  absl::StatusOr<uint64_t> PublishOne(v1::Event& event, absl::Time deadline,
                                      bool* certainly_not_stored);
  // A dedup key's last record (empty if none or not one of ours) and the
  // subject sequence it was written at (0 if absent).
  struct DedupEntry;
  absl::StatusOr<DedupEntry> ReadDedup(const std::string& key, absl::Time deadline);
  // Reads the last value of `key` in the key-value bucket `bucket` into
  // `msg` (null when the key has none), waiting until `deadline`. Errors:
  // as Refused, naming `what`.
  absl::Status ReadBucketKey(const std::string& bucket, absl::string_view key,
                             absl::Time deadline, absl::string_view what, natsMsg** msg);
  // Writes `record` under `key` if the key is still at `revision` (0: absent);
  // `lost_race` if it is not. Returns the new revision.
  absl::StatusOr<uint64_t> WriteDedup(const std::string& key, const DedupRecord& record,
                                      uint64_t revision, absl::Time deadline, bool* lost_race);
  // Writes the device directory's record of `event` (DeviceRecordOf) unless
  // this replica knows it already; a failure is logged and counted.
  void LearnDevice(const v1::Event& event, absl::Time deadline);
  void CacheDevice(std::string udid, std::string serial_number);
  // NatsStatus(s, jerr, what), counted and logged as a refusal when the
  // store is unavailable.
  absl::Status Refused(natsStatus s, jsErrCode jerr, absl::string_view what);
  // An ordered consumer over every event from `from_time` (unless
  // InfinitePast) or else from `from_sequence`, with heartbeats if given.
  absl::Status SubscribeOrdered(uint64_t from_sequence, absl::Time from_time,
                                absl::Duration heartbeat, natsSubscription** sub) const;
  // The first event with sequence >= seq, nullptr past the end.
  absl::StatusOr<EventPtr> NextAt(uint64_t seq);
  void NoteLast(uint64_t seq);
  // Waits (until `deadline` at most) until the tail has passed `seq` on
  // to the listener, so that an append's own replica has fanned it out
  // when Append returns.
  void WaitForTail(uint64_t seq, absl::Time deadline);
  void TailLoop();

  NatsConnection* const connection_;
  std::atomic<uint64_t> last_sequence_{0};
  // Single-event appends share it; a batch of several holds it alone, so
  // its events get consecutive sequences.
  std::shared_mutex publish_mu_;

  Mutex listener_mu_;
  CommitListener* listener_ ABSL_GUARDED_BY(listener_mu_) = nullptr;
  int connection_listener_ = 0;
  std::atomic<bool> resubscribe_{false};
  uint64_t tail_next_ = 1;  // next sequence the tail passes on (tail thread only)
  Mutex tail_mu_;
  uint64_t tail_passed_ ABSL_GUARDED_BY(tail_mu_) = 0;  // last sequence passed on
  Notification opened_;  // Setup succeeded
  mutable Mutex health_mu_;
  absl::Status waiting_ ABSL_GUARDED_BY(health_mu_);       // why not opened yet
  absl::Status write_health_ ABSL_GUARDED_BY(health_mu_);  // the last probe's outcome
  RefusalLog refusals_;
  Mutex devices_mu_;
  // What this replica knows of the device directory: UDID to serial number.
  absl::flat_hash_map<std::string, std::string> serial_numbers_ ABSL_GUARDED_BY(devices_mu_);
  // The latest view (null with NatsOptions::latest_view off), fed by the
  // tail; its writer starts when the log opens.
  std::unique_ptr<NatsLatestView> view_;
  Notification stop_;
  std::thread tail_;
  std::thread probe_;
};

}  // namespace hookfan::broker
