#include "rpc/wire.h"

#include <algorithm>
#include <string>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::broker {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  if (absl::IsUnavailable(status) && !IsShuttingDown(status)) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, kStoreUnavailable);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

grpc::ByteBuffer EncodeSubscribeResponse(const std::vector<EventPtr>& events) {
  using google::protobuf::io::CodedOutputStream;
  using google::protobuf::internal::WireFormatLite;
  constexpr uint32_t kEventsTag = WireFormatLite::MakeTag(
      v1::SubscribeResponse::kEventsFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  size_t total = 0;
  for (const EventPtr& e : events) {
    total += CodedOutputStream::VarintSize32(kEventsTag) +
             CodedOutputStream::VarintSize64(e->wire.size()) + e->wire.size();
  }
  auto* bytes = new std::string(total, '\0');
  uint8_t* p = reinterpret_cast<uint8_t*>(bytes->data());
  for (const EventPtr& e : events) {
    p = CodedOutputStream::WriteTagToArray(kEventsTag, p);
    p = CodedOutputStream::WriteVarint64ToArray(e->wire.size(), p);
    p = std::copy(e->wire.begin(), e->wire.end(), p);
  }
  grpc::Slice slice(
      bytes->data(), bytes->size(),
      [](void* s) { delete static_cast<std::string*>(s); }, bytes);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace hookfan::broker
