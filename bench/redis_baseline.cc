#include "bench/redis_baseline.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hookfan::bench {
namespace {

using Clock = std::chrono::steady_clock;

// How long a blocking connection waits to connect or for an answer. With
// appendfsync always an answer waits for fsync, which can stall for seconds
// on a busy disk; this only has to catch a server that is gone.
constexpr timeval kTimeout = {30, 0};
// XREAD's BLOCK, in ms: how long a consumer waits for new entries before
// it looks at its stop flag again.
constexpr char kBlockMs[] = "200";
constexpr char kReadCount[] = "1024";

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// One command, its arguments passed as they are (binary-safe, no format
// parsing). Null when the connection failed; then `c->errstr` says why.
Reply Command(redisContext* c, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> argvlen;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    argvlen.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), argvlen.data())));
}

std::string_view Str(const redisReply* r) { return std::string_view(r->str, r->len); }

// An error reply's text. (Debian's abseil has its own string_view, which
// StrCat takes and std::string_view does not convert to.)
std::string ErrorText(const redisReply* r) { return std::string(r->str, r->len); }

// A blocking connection that has answered a PING.
absl::StatusOr<Context> Connect(const std::string& host, int port) {
  Context c(redisConnectWithTimeout(host.c_str(), port, kTimeout));
  std::string where = absl::StrCat("redis at ", host, ":", port);
  if (c == nullptr) return absl::UnavailableError(absl::StrCat("cannot connect to ", where));
  if (c->err) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", where, ": ", c->errstr));
  }
  redisSetTimeout(c.get(), kTimeout);
  Reply pong = Command(c.get(), {"PING"});
  if (pong == nullptr) {
    return absl::UnavailableError(absl::StrCat("PING to ", where, ": ", c->errstr));
  }
  if (pong->type == REDIS_REPLY_ERROR) {
    return absl::UnavailableError(absl::StrCat("PING to ", where, ": ", ErrorText(pong.get())));
  }
  return c;
}

// The id of the stream's last entry ("0-0" when it has none), which is what
// XREAD's "$" stands for at this moment.
absl::StatusOr<std::string> LastId(redisContext* c, const std::string& stream) {
  Reply r = Command(c, {"XREVRANGE", stream, "+", "-", "COUNT", "1"});
  if (r == nullptr) return absl::UnavailableError(absl::StrCat("XREVRANGE: ", c->errstr));
  if (r->type == REDIS_REPLY_ERROR) {
    return absl::FailedPreconditionError(absl::StrCat("XREVRANGE ", stream, ": ", ErrorText(r.get())));
  }
  if (r->type != REDIS_REPLY_ARRAY) {
    return absl::InternalError("XREVRANGE: unexpected reply");
  }
  if (r->elements == 0) return std::string("0-0");
  const redisReply* entry = r->element[0];
  if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 1 ||
      entry->element[0]->type != REDIS_REPLY_STRING) {
    return absl::InternalError("XREVRANGE: unexpected reply");
  }
  return std::string(Str(entry->element[0]));
}

}  // namespace

absl::StatusOr<RedisIngestResult> RunRedisIngest(
    const std::string& host, int port, const std::string& stream, int connections,
    double seconds, uint64_t limit, double rate,
    const std::function<std::string(uint64_t)>& make_payload) {
  // Connect first, on this thread: connection setup is not what this
  // measures, and a failure ends the run before it starts.
  std::vector<Context> contexts;
  for (int c = 0; c < connections; ++c) {
    absl::StatusOr<Context> context = Connect(host, port);
    if (!context.ok()) return context.status();
    contexts.push_back(*std::move(context));
  }

  std::atomic<uint64_t> next{0};
  std::mutex mu;
  RedisIngestResult result;
  Clock::time_point last_answer;  // guarded by mu
  Clock::time_point start, end;   // written before `go` opens
  std::latch go(1);
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      redisContext* context = contexts[c].get();
      go.wait();
      std::vector<int64_t> latency;
      uint64_t added = 0, errors = 0;
      Clock::time_point last = start;
      auto slot = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(rate > 0 ? c / rate : 0));
      auto interval = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(rate > 0 ? connections / rate : 0));
      while (Clock::now() < end) {
        uint64_t n = next++;
        if (n >= limit) break;
        if (rate > 0) {
          std::this_thread::sleep_until(slot);
          slot += interval;
        }
        std::string payload = make_payload(n);
        auto t0 = Clock::now();
        Reply r = Command(context, {"XADD", stream, "*", "data", payload});
        last = Clock::now();
        latency.push_back((last - t0).count());
        if (r == nullptr) {  // the connection is broken for good
          ++errors;
          break;
        }
        r->type == REDIS_REPLY_STRING ? ++added : ++errors;
      }
      std::lock_guard<std::mutex> l(mu);
      result.added += added;
      result.errors += errors;
      result.latency_ns.insert(result.latency_ns.end(), latency.begin(), latency.end());
      last_answer = std::max(last_answer, last);
    });
  }
  start = Clock::now();
  last_answer = start;
  end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go.count_down();
  for (auto& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(last_answer - start).count();
  return result;
}

struct RedisConsumers::Consumer {
  Context context;
  std::atomic<uint64_t> received{0};
};

absl::StatusOr<std::unique_ptr<RedisConsumers>> RedisConsumers::Start(
    const std::string& host, int port, const std::string& stream, int consumers,
    std::function<void(std::string_view data)> on_entry) {
  std::vector<std::unique_ptr<Consumer>> connected;
  for (int i = 0; i < consumers; ++i) {
    absl::StatusOr<Context> context = Connect(host, port);
    if (!context.ok()) return context.status();
    connected.push_back(std::make_unique<Consumer>());
    connected.back()->context = *std::move(context);
  }
  // Every consumer starts from the same id, so all see the same entries.
  absl::StatusOr<std::string> start_id =
      consumers > 0 ? LastId(connected[0]->context.get(), stream) : std::string("0-0");
  if (!start_id.ok()) return start_id.status();

  std::unique_ptr<RedisConsumers> self(
      new RedisConsumers(stream, *std::move(start_id), consumers, std::move(on_entry)));
  self->consumers_ = std::move(connected);
  for (auto& c : self->consumers_) {
    self->threads_.emplace_back([s = self.get(), &c = *c] { s->Consume(c); });
  }
  self->ready_.wait();
  return self;
}

RedisConsumers::RedisConsumers(std::string stream, std::string start_id, int consumers,
                               std::function<void(std::string_view)> on_entry)
    : stream_(std::move(stream)),
      start_id_(std::move(start_id)),
      on_entry_(std::move(on_entry)),
      ready_(std::max(consumers, 0)) {}

RedisConsumers::~RedisConsumers() {
  stop_ = true;
  for (auto& t : threads_) t.join();
}

uint64_t RedisConsumers::total() const { return total_.load(); }

uint64_t RedisConsumers::min_received() const {
  uint64_t m = UINT64_MAX;
  for (const auto& c : consumers_) m = std::min<uint64_t>(m, c->received.load());
  return consumers_.empty() ? 0 : m;
}

absl::Status RedisConsumers::status() const {
  std::lock_guard<std::mutex> l(mu_);
  return status_;
}

void RedisConsumers::Fail(absl::Status status) {
  std::lock_guard<std::mutex> l(mu_);
  if (status_.ok()) status_ = std::move(status);
}

void RedisConsumers::Consume(Consumer& consumer) {
  redisContext* c = consumer.context.get();
  std::string last_id = start_id_;
  ready_.count_down();
  while (!stop_) {
    Reply r = Command(c, {"XREAD", "BLOCK", kBlockMs, "COUNT", kReadCount, "STREAMS", stream_,
                          last_id});
    if (r == nullptr) return Fail(absl::UnavailableError(absl::StrCat("XREAD: ", c->errstr)));
    if (r->type == REDIS_REPLY_NIL) continue;  // BLOCK timed out with nothing new
    if (r->type == REDIS_REPLY_ERROR) {
      return Fail(absl::FailedPreconditionError(absl::StrCat("XREAD: ", ErrorText(r.get()))));
    }
    // [[stream, [[id, [field, value, ...]], ...]]]: one stream asked for.
    auto malformed = [this] { Fail(absl::InternalError("XREAD: unexpected reply")); };
    if (r->type != REDIS_REPLY_ARRAY) return malformed();
    uint64_t batch = 0;
    for (size_t s = 0; s < r->elements; ++s) {
      const redisReply* named = r->element[s];
      if (named->type != REDIS_REPLY_ARRAY || named->elements != 2 ||
          named->element[1]->type != REDIS_REPLY_ARRAY) {
        return malformed();
      }
      const redisReply* entries = named->element[1];
      for (size_t e = 0; e < entries->elements; ++e) {
        const redisReply* entry = entries->element[e];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
            entry->element[0]->type != REDIS_REPLY_STRING) {
          return malformed();
        }
        last_id.assign(entry->element[0]->str, entry->element[0]->len);
        ++batch;
        const redisReply* fields = entry->element[1];
        if (fields->type != REDIS_REPLY_ARRAY) continue;  // no fields to look at
        for (size_t f = 0; f + 1 < fields->elements; f += 2) {
          const redisReply* name = fields->element[f];
          const redisReply* value = fields->element[f + 1];
          if (name->type == REDIS_REPLY_STRING && Str(name) == "data" &&
              value->type == REDIS_REPLY_STRING) {
            on_entry_(Str(value));
            break;
          }
        }
      }
    }
    // Counted after on_entry, so a caller that sees the total it waits for
    // also sees everything on_entry did.
    consumer.received += batch;
    total_ += batch;
  }
}

}  // namespace hookfan::bench
