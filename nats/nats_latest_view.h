#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sync.h"
#include "nats/nats_connection.h"
#include "store/event_log.h"

namespace hookfan::broker {

// NatsLatestView keeps a NatsEventLog's latest view (EventLog::GetLatest)
// in a JetStream stream of its own, shared by every replica.
//
// Layout: the stream "<stream>_LATEST" takes the subjects
// "$HOOKFAN.<stream>_LATEST.>" and keeps one message per subject. The
// newest event of key K and type T is one message on "<…>.k.<hex(K)>.<T>"
// whose data is the event and whose Hookfan-Through header is its
// sequence; hex keeps the keys' byte order, so that subjects sort as keys
// do. The view holds the full events: trimming the events stream (its age,
// size or count limits) never takes the newest event of a key and type,
// which is compacted retention on NATS.
//
// Every message also says how far the view goes: its Hookfan-Through is
// the log sequence up to which every event is in the view. A run of events
// without a key moves that point with one marker message on "<…>.through".
// The view's last message therefore tells where the view stands.
//
// Writers: every event gets one message (an entry, or a marker for an
// event without a key), published with Nats-Expected-Last-Sequence set to
// where its predecessor leaves the view, pipelined. What follows a given
// message is thus the same whichever writer writes it: two writers that
// both extend the view interleave harmlessly, and a writer that lost a race
// (another replica wrote first) reads the view again. Every replica runs a
// writer fed by its own tail; one leads, the others watch and take over
// when the view stays behind their tail for kTakeOver (a replica gone, a
// leader cut off). A writer that dies midway leaves a view that is exact
// up to its last message; the next writer continues after it. The view
// therefore trails the log by the leader's lag (milliseconds under load).
// It misses events only if retention deletes them before it takes them
// (a view stalled, full or without a writer, for longer than the events
// stream keeps events): the writer logs that as an error.
//
// Reads see the view as of its last message: a snapshot taken at Through()
// is exact (see EventLog::ReadLatest), and GetLatest answers as of it.
//
// Thread-safe.
class NatsLatestView {
 public:
  // A follower takes over when the view stayed behind its tail this long.
  static constexpr absl::Duration kTakeOver = absl::Seconds(1);
  // At most this many events wait between the tail and the writer; an
  // overflow costs a read of the log instead.
  static constexpr size_t kMaxQueued = 4096;

  // `connection` and `log` (the events the view is of, read when the tail's
  // queue does not hold them) must outlive the view.
  NatsLatestView(NatsConnection* connection, EventLog* log);
  ~NatsLatestView();
  NatsLatestView(const NatsLatestView&) = delete;
  NatsLatestView& operator=(const NatsLatestView&) = delete;

  // Creates the view's stream, or applies today's options to it. Errors:
  // as NatsStatus.
  absl::Status Setup();
  // Starts the writer; call once, after Setup succeeded.
  void Start();
  // The tail passed `events` on (in log order).
  void Offer(const std::vector<EventPtr>& events);

  // The header of every view message: the log sequence up to which the
  // view holds every event (an entry's own sequence).
  static constexpr char kThroughHeader[] = "Hookfan-Through";

  // Where the view stands: its stream's last sequence and the log sequence
  // it holds every event up to.
  struct Position {
    uint64_t view_sequence = 0;
    uint64_t through = 0;
  };
  absl::StatusOr<Position> Load();
  // The log sequence the view holds every event up to.
  absl::StatusOr<uint64_t> Through();
  // As EventLog's.
  absl::StatusOr<std::vector<EventPtr>> ReadLatest(uint64_t from, uint64_t through,
                                                   size_t max_events);
  absl::StatusOr<std::vector<EventPtr>> GetLatest(std::string_view key);
  absl::StatusOr<std::vector<KeyLatest>> ListLatest(std::string_view after_key, size_t max_keys);

  // Whether this replica's writer writes the view now (rather than
  // watching another one do it).
  bool leading() const { return leading_.load(std::memory_order_relaxed); }
  // Through() as this replica last saw it (no I/O; for metrics).
  uint64_t known_through() const { return known_through_.load(std::memory_order_relaxed); }

  // The view's stream and subjects (for tests and tools).
  std::string Stream() const;
  std::string EntrySubject(std::string_view key, std::string_view type) const;
  // The subjects of the entries whose type matches `type_pattern` (filter.h
  // syntax, NATS' own; "" for every entry).
  std::string EntriesFilter(std::string_view type_pattern) const;

 private:
  // The first entry at or after view sequence `at` on subjects `filter`
  // (nullptr past the end), its view sequence in `*found`.
  absl::StatusOr<EventPtr> EntryAt(uint64_t at, const std::string& filter, uint64_t* found);
  // One message that extends the view.
  struct Extension {
    std::string subject;
    std::string data;
    uint64_t through = 0;
  };
  // Publishes `extensions` in order (pipelined) extending the view at
  // `*at`, which moves past each one written; `lost_race` if another
  // writer extended the view first. Each expects the view's last sequence
  // its predecessor leaves, so a failure ends the run: what was written is
  // a prefix.
  absl::Status Extend(const std::vector<Extension>& extensions, Position* at, bool* lost_race);
  // The writer's JetStream context: its own, for its acknowledgement
  // handler (OnAck), kept for the view's life (destroying one with
  // acknowledgements due would free its reply subscription under nats.c
  // 3.4.1's read loop; see NatsConnection::EndSubscriptions).
  absl::StatusOr<jsCtx*> WriterContext();
  static void OnAck(jsCtx* js, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure);
  // The events after `through`, from the tail's queue or else the log.
  absl::StatusOr<std::vector<EventPtr>> Next(uint64_t through);
  // Writes `events` into the view at `*at`.
  absl::Status Write(const std::vector<EventPtr>& events, Position* at, bool* lost_race);
  void WriteLoop();
  uint64_t TailPassed();

  NatsConnection* const connection_;
  EventLog* const log_;
  const std::string stream_;
  const std::string prefix_;  // "$HOOKFAN.<stream>_LATEST"

  // Where the entries after a log sequence start in the view, as the last
  // pages read found it (log sequence -> view sequence), so that reading a
  // snapshot page after page does not search for each page's start. A hint
  // stays right: the view's entries only ever move to its end.
  static constexpr size_t kMaxStarts = 256;
  Mutex starts_mu_;
  std::map<uint64_t, uint64_t> starts_ ABSL_GUARDED_BY(starts_mu_);

  // The acknowledgements of the writer's current run, by message: the
  // view sequence written (0: refused, with the error). A message of an
  // earlier run that timed out is still allocated until its late
  // acknowledgement, so its address is no message's of this run: OnAck
  // ignores it.
  struct Ack {
    bool done = false;
    uint64_t view_sequence = 0;
    natsStatus status = NATS_OK;
    jsErrCode error = static_cast<jsErrCode>(0);
  };
  Mutex acks_mu_;
  jsCtx* writer_js_ = nullptr;  // the writer thread's, then the destructor's
  std::map<const natsMsg*, size_t> run_ ABSL_GUARDED_BY(acks_mu_);  // to its index
  std::vector<Ack> acks_ ABSL_GUARDED_BY(acks_mu_);

  Mutex mu_;
  std::deque<EventPtr> queued_ ABSL_GUARDED_BY(mu_);
  uint64_t tail_passed_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> leading_{false};
  std::atomic<uint64_t> known_through_{0};  // as the last Load or write found it
  Notification stop_;
  std::thread writer_;
};

}  // namespace hookfan::broker
