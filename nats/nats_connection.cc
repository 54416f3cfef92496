#include "nats/nats_connection.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/log.h"
#include "common/status_macros.h"

// Not in nats.h, but exported by libnats 3.4 (src/sub.c): the reference
// count that natsSubscription_Destroy drops and that frees the
// subscription at zero (NatsConnection::EndSubscription).
extern "C" void natsSub_retain(natsSubscription* sub);
extern "C" void natsSub_release(natsSubscription* sub);

namespace hookfan::broker {

absl::StatusOr<std::vector<std::string>> ParseNatsServers(absl::string_view store) {
  absl::string_view rest = store;
  std::string scheme = "nats://";
  if (absl::ConsumePrefix(&rest, "tls://")) scheme = "tls://";
  else if (!absl::ConsumePrefix(&rest, "nats://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("a NATS store is nats://host:port[,host:port...]; got \"", store, "\""));
  }
  std::vector<std::string> servers;
  for (absl::string_view part : absl::StrSplit(rest, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!absl::ConsumePrefix(&part, "nats://")) absl::ConsumePrefix(&part, "tls://");
    size_t colon = part.rfind(':');
    int port = 0;
    if (part.empty() || colon == 0 || colon == absl::string_view::npos ||
        !absl::SimpleAtoi(part.substr(colon + 1), &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "NATS server \"", part, "\" in \"", store, "\" is not host:port"));
    }
    servers.push_back(absl::StrCat(scheme, part));
  }
  return servers;
}

absl::Status NatsStatus(natsStatus s, jsErrCode jerr, absl::string_view what) {
  if (s == NATS_OK) return absl::OkStatus();
  const char* text = natsStatus_GetText(s);
  std::string message = absl::StrCat(what, ": ", text);
  if (jerr != 0) absl::StrAppend(&message, " (JetStream error ", static_cast<int>(jerr), ")");
  if (jerr == JSStreamNotFoundErr || jerr == JSConsumerNotFoundErr ||
      jerr == JSNoMessageFoundErr || s == NATS_NOT_FOUND) {
    return absl::NotFoundError(message);
  }
  switch (s) {
    case NATS_TIMEOUT:
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NOT_YET_CONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_IO_ERROR:
    case NATS_NO_SERVER:
    case NATS_SSL_ERROR:
    case NATS_INSUFFICIENT_BUFFER:  // a publish while reconnecting
      return absl::UnavailableError(message);
    default:
      break;
  }
  if (jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr ||
      jerr == JSClusterNoPeersErr || jerr == JSInsufficientResourcesErr ||
      jerr == JSStreamStoreFailedErr || jerr == JSClusterNotAvailErr ||
      jerr == JSStorageResourcesExceededErr || jerr == JSMemoryResourcesExceededErr) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

namespace {

// nats.c calls connection callbacks on a thread of its own, possibly after
// natsConnection_Destroy returned; the closure is therefore a key into this
// registry, not a pointer to the (maybe destroyed) NatsConnection.
Mutex registry_mu(absl::kConstInit);
std::map<uintptr_t, NatsConnection*>& Registry() ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mu) {
  static auto* registry = new std::map<uintptr_t, NatsConnection*>;
  return *registry;
}
uintptr_t next_key ABSL_GUARDED_BY(registry_mu) = 1;

}  // namespace

absl::StatusOr<std::unique_ptr<NatsConnection>> NatsConnection::Connect(
    const NatsOptions& options) {
  if (options.servers.empty()) return absl::InvalidArgumentError("no NATS server given");
  if (options.replicas < 1 || options.replicas > 5) {
    return absl::InvalidArgumentError("NATS stream replicas must be 1 to 5");
  }
  // nats.c spins up to 2,000 times on a busy lock before it sleeps: on a
  // two-core replica that spinning was 17% of hookfan's CPU under webhook
  // load (perf). Set before the library's first use opens it; a no-op after.
  static const natsStatus opened = nats_Open(/*lockSpinCount=*/0);
  (void)opened;
  auto connection = std::unique_ptr<NatsConnection>(new NatsConnection(options));
  natsOptions* opts = nullptr;
  auto check = [](natsStatus s, absl::string_view what) -> absl::Status {
    if (s == NATS_OK) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", natsStatus_GetText(s), ": ", nats_GetLastError(nullptr)));
  };
  std::vector<const char*> urls;
  for (const std::string& url : options.servers) urls.push_back(url.c_str());
  absl::Status status = check(natsOptions_Create(&opts), "NATS options");
  if (status.ok()) {
    status = check(natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size())),
                   "NATS servers");
  }
  if (status.ok()) status = check(natsOptions_SetName(opts, options.name.c_str()), "NATS name");
  if (status.ok()) {
    // Reconnect forever, quickly; fail requests at once while disconnected
    // (a webhook then gets 503 rather than waiting for a timeout).
    natsOptions_SetMaxReconnect(opts, -1);
    natsOptions_SetCustomReconnectDelay(opts, &NatsConnection::ReconnectDelay, nullptr);
    natsOptions_SetFailRequestsOnDisconnect(opts, true);
    // And never buffer a publish to send after a reconnect: the caller was
    // already told it failed (a 503), so it must not be stored later.
    natsOptions_SetReconnectBufSize(opts, 1);
    natsOptions_SetTimeout(opts, 2000);
    natsOptions_SetPingInterval(opts, 5000);
    natsOptions_SetMaxPingsOut(opts, 2);
    {
      MutexLock lock(&registry_mu);
      connection->registry_key_ = next_key++;
      Registry()[connection->registry_key_] = connection.get();
    }
    void* closure = reinterpret_cast<void*>(connection->registry_key_);
    natsOptions_SetDisconnectedCB(opts, &NatsConnection::OnDisconnected, closure);
    natsOptions_SetReconnectedCB(opts, &NatsConnection::OnReconnected, closure);
    // With no server up yet, Connect returns and the first connection is
    // made in the background like a reconnection (told to OnReconnected).
    natsOptions_SetRetryOnFailedConnect(opts, true, &NatsConnection::OnReconnected, closure);
  }
  if (status.ok() && !options.credentials_file.empty()) {
    status = check(natsOptions_SetUserCredentialsFromFiles(
                       opts, options.credentials_file.c_str(), nullptr),
                   absl::StrCat("NATS credentials ", options.credentials_file));
  }
  if (status.ok() && !options.tls_ca_file.empty()) {
    status = check(natsOptions_SetSecure(opts, true), "NATS TLS");
    if (status.ok()) {
      status = check(natsOptions_LoadCATrustedCertificates(opts, options.tls_ca_file.c_str()),
                     absl::StrCat("NATS TLS CA ", options.tls_ca_file));
    }
  }
  if (status.ok() && !options.tls_cert_file.empty()) {
    status = check(natsOptions_LoadCertificatesChain(opts, options.tls_cert_file.c_str(),
                                                     options.tls_key_file.c_str()),
                   absl::StrCat("NATS TLS certificate ", options.tls_cert_file));
  }
  if (!status.ok()) {
    natsOptions_Destroy(opts);
    return status;
  }

  natsStatus s = natsConnection_Connect(&connection->nc_, opts);
  natsOptions_Destroy(opts);
  if (s == NATS_NOT_YET_CONNECTED) {
    nats_GetLastError(nullptr);
    log::Warn("no NATS server answers yet; connecting in the background",
              {{"servers", connection->servers()}});
  } else if (s != NATS_OK) {
    return NatsStatus(s, static_cast<jsErrCode>(0),
                      absl::StrCat("connecting to NATS ", connection->servers()));
  } else {
    connection->connected_.store(true, std::memory_order_release);
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = connection->timeout_ms();
  s = natsConnection_JetStream(&connection->js_, connection->nc_, &jo);
  if (s != NATS_OK) return NatsStatus(s, static_cast<jsErrCode>(0), "JetStream context");
  return connection;
}

NatsConnection::~NatsConnection() {
  {
    MutexLock lock(&registry_mu);
    Registry().erase(registry_key_);
  }
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
}

int NatsConnection::AddListener(std::function<void(bool connected)> listener) {
  MutexLock lock(&mu_);
  listeners_.emplace_back(next_listener_, std::move(listener));
  return next_listener_++;
}

void NatsConnection::RemoveListener(int id) {
  MutexLock lock(&mu_);
  std::erase_if(listeners_, [id](const auto& l) { return l.first == id; });
}

std::string NatsConnection::servers() const { return absl::StrJoin(options_.servers, ","); }

int64_t NatsConnection::ReconnectDelay(natsConnection*, int attempts, void*) {
  // `attempts` counts rounds over the whole server list: 250 ms, doubling
  // up to kMaxReconnectDelay, with up to 100 ms of jitter so that replicas
  // restarted together do not knock at once.
  const int64_t max_ms = absl::ToInt64Milliseconds(kMaxReconnectDelay);
  const int64_t base = std::min<int64_t>(max_ms, int64_t{250} << std::clamp(attempts - 1, 0, 4));
  return base + static_cast<int64_t>(absl::ToUnixNanos(absl::Now()) % 101);
}

void NatsConnection::Notify(bool connected) {
  connected_.store(connected, std::memory_order_release);
  log::Write(connected ? log::Level::kInfo : log::Level::kWarn,
             connected ? "connected to NATS" : "lost NATS; retrying",
             {{"servers", servers()}});
  MutexLock lock(&mu_);
  for (const auto& [id, listener] : listeners_) listener(connected);
}

void NatsConnection::OnDisconnected(natsConnection*, void* closure) {
  MutexLock lock(&registry_mu);
  auto it = Registry().find(reinterpret_cast<uintptr_t>(closure));
  if (it != Registry().end()) it->second->Notify(false);
}

void NatsConnection::OnReconnected(natsConnection*, void* closure) {
  MutexLock lock(&registry_mu);
  auto it = Registry().find(reinterpret_cast<uintptr_t>(closure));
  if (it != Registry().end()) it->second->Notify(true);
}

void NatsConnection::EndSubscription(natsSubscription* sub) { EndSubscriptions({sub}); }

void NatsConnection::EndSubscriptions(std::initializer_list<natsSubscription*> subs) {
  if (std::all_of(subs.begin(), subs.end(), [](natsSubscription* s) { return s == nullptr; })) {
    return;
  }
  // Debian bookworm's libnats 3.4.1 looks up an incoming message's
  // subscription and then locks it without holding a reference
  // (natsConn_processMsg; nats.c issue #637, fixed in 3.6 by taking one
  // there): freeing a subscription while the read loop is between the two
  // made it lock freed memory, which crashed the process or left the
  // connection's close waiting for the read loop forever. So hold a
  // reference across natsSubscription_Destroy, which takes `sub` out of
  // the lookup, until a flush returns: the read loop takes the flush's
  // PONG only after the messages before it, so no lookup still holds
  // `sub` then. (A flush that times out means the read loop is waiting on
  // the socket, not holding it.) natsSubscription_Unsubscribe would do
  // instead of the reference but also deletes an ordered consumer, reading
  // its name unlocked while nats.c's own thread recreates it after a
  // reconnect: a use-after-free ASan found.
  // One flush serves every subscription ended together.
  for (natsSubscription* sub : subs) {
    if (sub == nullptr) continue;
    natsSub_retain(sub);
    natsSubscription_Destroy(sub);
  }
  if (natsConnection_FlushTimeout(nc_, absl::ToInt64Milliseconds(kEndFlushTimeout)) != NATS_OK) {
    nats_GetLastError(nullptr);
  }
  for (natsSubscription* sub : subs) {
    if (sub != nullptr) natsSub_release(sub);
  }
}

absl::Status NatsConnection::Scan(const std::string& stream, const std::string& filter,
                                  uint64_t from, size_t max,
                                  const std::function<bool(natsMsg*)>& take) {
  if (max == 0) return absl::OkStatus();
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Ordered = true;
  options.Stream = stream.c_str();
  options.Config.DeliverPolicy = js_DeliverByStartSequence;
  options.Config.OptStartSeq = std::max<uint64_t>(from, 1);
  OwnedSubscription sub(this);
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(sub.out(), js_, filter.c_str(), nullptr, &options, &jerr);
  const std::string what = absl::StrCat("reading stream ", stream);
  RETURN_IF_ERROR(NatsStatus(s, jerr, what));
  // Nothing to read would otherwise cost a whole timeout to learn.
  jsConsumerInfo* info = nullptr;
  s = natsSubscription_GetConsumerInfo(&info, sub.get(), nullptr, &jerr);
  RETURN_IF_ERROR(NatsStatus(s, jerr, what));
  const uint64_t available = info->NumPending + info->Delivered.Consumer;
  jsConsumerInfo_Destroy(info);
  for (size_t taken = 0; taken < std::min<uint64_t>(max, available);) {
    natsMsg* msg = nullptr;
    s = natsSubscription_NextMsg(&msg, sub.get(), timeout_ms());
    RETURN_IF_ERROR(NatsStatus(s, static_cast<jsErrCode>(0), what));
    uint64_t pending = 0;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      pending = meta->NumPending;
      jsMsgMetaData_Destroy(meta);
    }
    ++taken;
    const bool more = take(msg);
    natsMsg_Destroy(msg);
    if (!more || pending == 0) break;
  }
  return absl::OkStatus();
}

void OwnedSubscription::reset() {
  connection_->EndSubscription(sub_);
  sub_ = nullptr;
}

std::string NatsConnection::SubjectForType(absl::string_view type) const {
  return absl::StrCat(options_.subject_prefix, ".", type);
}

std::string NatsConnection::SubjectFilter(absl::string_view type_pattern) const {
  return absl::StrCat(options_.subject_prefix, ".", type_pattern.empty() ? ">" : type_pattern);
}

absl::Status NatsConnection::LimitStreamBytes(const std::string& stream, int64_t max_bytes) {
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, &jerr);
  absl::Status status = NatsStatus(s, jerr, absl::StrCat("looking up stream ", stream));
  if (status.ok() && info->Config->MaxBytes != max_bytes) {
    jsStreamConfig config = *info->Config;  // its strings live in `info`
    config.MaxBytes = max_bytes;
    jsStreamInfo* updated = nullptr;
    jerr = static_cast<jsErrCode>(0);
    s = js_UpdateStream(&updated, js_, &config, nullptr, &jerr);
    status = NatsStatus(s, jerr, absl::StrCat("limiting stream ", stream, " to ", max_bytes, " bytes"));
    if (updated != nullptr) jsStreamInfo_Destroy(updated);
    if (status.ok()) log::Info("set a stream's byte limit", {{"stream", stream}, {"max_bytes", max_bytes}});
  }
  if (info != nullptr) jsStreamInfo_Destroy(info);
  return status;
}

absl::StatusOr<EventPtr> NatsConnection::DecodeEvent(natsMsg* msg, const char* sequence_header) {
  uint64_t sequence = 0;
  jsMsgMetaData* meta = nullptr;
  if (sequence_header == nullptr && natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    sequence = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
  } else {
    nats_GetLastError(nullptr);  // not a JetStream delivery: a direct get
    const char* value = nullptr;
    if (natsMsgHeader_Get(msg, sequence_header != nullptr ? sequence_header : "Nats-Sequence",
                          &value) != NATS_OK ||
        !absl::SimpleAtoi(value, &sequence)) {
      return absl::DataLossError(
          absl::StrCat("message on ", natsMsg_GetSubject(msg), " carries no stream sequence"));
    }
  }
  v1::Event event;
  if (!event.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))) {
    return absl::DataLossError(
        absl::StrCat("event at sequence ", sequence, " does not decode"));
  }
  event.set_sequence(sequence);
  return MakeStoredEvent(std::move(event));
}

}  // namespace hookfan::broker
