#pragma once

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/event_log.h"
#include "common/sync.h"

namespace hookfan::broker {

// Where and how hookfan keeps its log on NATS JetStream.
struct NatsOptions {
  std::vector<std::string> servers;  // "nats://host:port", at least one
  std::string stream = "HOOKFAN";    // the events stream; other names derive from it
  std::string subject_prefix = "hookfan.events";  // event type T is published on <prefix>.T
  int replicas = 1;                               // of every stream hookfan creates (1..5)
  absl::Duration max_age = absl::ZeroDuration();  // events older are dropped; 0: no limit
  int64_t max_bytes = -1;                         // the stream's size limit; -1: none
  int64_t max_events = -1;                        // events kept at most; -1: no limit
  // JetStream drops a message whose Nats-Msg-Id (the event id) it stored
  // within this window: a retried publish is stored once.
  absl::Duration duplicate_window = absl::Minutes(2);
  // AppendOnce keys are kept at most this long (their bucket's TTL); a
  // longer dedup window is cut to it.
  absl::Duration dedup_max_age = absl::Hours(24);
  std::string credentials_file;  // NATS .creds (JWT + NKey seed); empty: none
  std::string tls_ca_file;       // trust these CAs (enables TLS)
  std::string tls_cert_file;     // client certificate chain (mutual TLS)
  std::string tls_key_file;
  absl::Duration request_timeout = absl::Seconds(5);  // of every JetStream call
  std::string name = "hookfan";  // connection name the server shows
  // Keep the latest view (NatsLatestView) in the stream "<stream>_LATEST".
  bool latest_view = true;

  // The byte limits of the streams hookfan keeps next to the events stream,
  // derived from its max_bytes so that one flag bounds what hookfan puts on
  // JetStream's disk: the AppendOnce key bucket may take a quarter of it,
  // the dead letters an eighth, the device directory a sixty-fourth and
  // the latest view a quarter (105/64, under 1.7 x max_bytes in all; each
  // at least 1 MiB). -1 (no limit) when max_bytes has none.
  int64_t dedup_max_bytes() const { return ShareOfMaxBytes(4); }
  int64_t dead_letter_max_bytes() const { return ShareOfMaxBytes(8); }
  int64_t device_max_bytes() const { return ShareOfMaxBytes(64); }
  int64_t latest_view_max_bytes() const { return ShareOfMaxBytes(4); }
  int64_t ShareOfMaxBytes(int64_t divisor) const {
    return max_bytes > 0 ? std::max<int64_t>(max_bytes / divisor, 1 << 20) : -1;
  }
};

// Owns a nats.c object and destroys it with `destroy`.
template <typename T, void (*destroy)(T*)>
class Owned {
 public:
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { reset(); }
  // For a nats.c call that creates the object.
  T** out() {
    reset();
    return &p_;
  }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  void reset() {
    if (p_ != nullptr) destroy(p_);
    p_ = nullptr;
  }

 private:
  T* p_ = nullptr;
};

// Owns a subscription on a connection and ends it with
// NatsConnection::EndSubscription (the connection must outlive it).
class NatsConnection;
class OwnedSubscription {
 public:
  explicit OwnedSubscription(NatsConnection* connection) : connection_(connection) {}
  OwnedSubscription(const OwnedSubscription&) = delete;
  OwnedSubscription& operator=(const OwnedSubscription&) = delete;
  ~OwnedSubscription() { reset(); }
  // For a nats.c call that creates the subscription.
  natsSubscription** out() {
    reset();
    return &sub_;
  }
  natsSubscription* get() const { return sub_; }
  void reset();

 private:
  NatsConnection* const connection_;
  natsSubscription* sub_ = nullptr;
};

// A duration as nats.c takes it in its options: nanoseconds.
inline int64_t Nanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

// A duration as nats.c takes it in waits: milliseconds, at least 1 (nats.c
// reads 0 as "the default").
inline int64_t Millis(absl::Duration d) {
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(d));
}

// Parses a `--store` value of the form "nats://host:port[,nats://host:port…]"
// (the scheme may be given once, or "tls://") into NatsOptions::servers.
// Errors: kInvalidArgument naming the problem.
absl::StatusOr<std::vector<std::string>> ParseNatsServers(absl::string_view store);

// Maps a NATS status (and JetStream error code, 0 if none) to an
// absl::Status: timeouts, no responders, closed or disconnected connections
// and server-side JetStream unavailability are kUnavailable; "not found"
// errors are kNotFound; anything else kInternal. `what` says what failed.
absl::Status NatsStatus(natsStatus s, jsErrCode jerr, absl::string_view what);

// NatsConnection is one connection to a NATS cluster with its JetStream
// context, shared by the JetStream log and consumer groups of a replica. It
// connects and reconnects forever, backing off to kMaxReconnectDelay; while
// not connected, requests fail at once (kUnavailable) instead of waiting.
// Thread-safe.
class NatsConnection {
 public:
  // The longest pause between two rounds of connection attempts.
  static constexpr absl::Duration kMaxReconnectDelay = absl::Seconds(2);

  // Tries the servers once and returns: connected, or still trying in the
  // background (pods may start before NATS is up; listeners learn of the
  // connection). Errors: kInvalidArgument for bad options or unreadable
  // credential/TLS files, kUnavailable for a refusal that retrying cannot
  // mend (e.g. a failed TLS handshake or authorization).
  static absl::StatusOr<std::unique_ptr<NatsConnection>> Connect(const NatsOptions& options);
  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  natsConnection* nc() const { return nc_; }
  jsCtx* js() const { return js_; }
  const NatsOptions& options() const { return options_; }
  // The request timeout in milliseconds, for nats.c calls that take one.
  int64_t timeout_ms() const { return absl::ToInt64Milliseconds(options_.request_timeout); }

  // True while connected to a server.
  bool connected() const { return connected_.load(std::memory_order_acquire); }

  // "nats://a:4222,nats://b:4222": where this connection goes, for messages.
  std::string servers() const;

  // `listener(connected)` is called from a NATS thread on every disconnect
  // (false) and (re)connect (true). It must not block. Returns an id for
  // RemoveListener, which must be called before the listener dies.
  int AddListener(std::function<void(bool connected)> listener);
  void RemoveListener(int id);

  // The subject events of `type` are published on: "<prefix>.<type>".
  std::string SubjectForType(absl::string_view type) const;
  // A JetStream subject filter for an event type pattern (filter.h syntax,
  // which is NATS' own): "<prefix>.<pattern>"; "<prefix>.>" for "".
  std::string SubjectFilter(absl::string_view type_pattern) const;

  // Sets the MaxBytes of the existing stream `stream` to `max_bytes` (-1:
  // none) unless it has that limit already: a stream created by an older
  // hookfan or with other flags gets today's. Errors as NatsStatus.
  absl::Status LimitStreamBytes(const std::string& stream, int64_t max_bytes);

  // Reads the messages of `stream` on the subjects `filter` from sequence
  // `from` on, in order, through an ordered consumer (one round trip for
  // many messages, where a direct get takes one each), handing each to
  // `take` until it returns false, `max` were taken or none is left.
  // Errors: as NatsStatus.
  absl::Status Scan(const std::string& stream, const std::string& filter, uint64_t from,
                    size_t max, const std::function<bool(natsMsg*)>& take);

  // Decodes an event message of the events stream: a JetStream delivery
  // (sequence from its metadata) or a direct-get reply (from the
  // Nats-Sequence header); or, given `sequence_header`, a message carrying
  // the event's sequence in that header. Errors: kDataLoss if it does not
  // decode.
  static absl::StatusOr<EventPtr> DecodeEvent(natsMsg* msg, const char* sequence_header = nullptr);

  // Destroys `sub` (a subscription on this connection; null is a no-op),
  // freeing it only once the read loop can no longer hand it a message;
  // every subscription hookfan makes ends here. Blocks for one round trip
  // to NATS, kEndFlushTimeout at most.
  static constexpr absl::Duration kEndFlushTimeout = absl::Milliseconds(500);
  void EndSubscription(natsSubscription* sub);
  // Ends several at once, with one round trip for all.
  void EndSubscriptions(std::initializer_list<natsSubscription*> subs);

 private:
  explicit NatsConnection(NatsOptions options) : options_(std::move(options)) {}
  static void OnDisconnected(natsConnection* nc, void* closure);
  static void OnReconnected(natsConnection* nc, void* closure);
  static int64_t ReconnectDelay(natsConnection* nc, int attempts, void* closure);
  void Notify(bool connected);

  const NatsOptions options_;
  uintptr_t registry_key_ = 0;  // the callbacks' closure
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<bool> connected_{false};
  Mutex mu_;
  int next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::pair<int, std::function<void(bool)>>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hookfan::broker
