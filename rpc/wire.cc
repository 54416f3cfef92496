#include "rpc/wire.h"

#include <cstring>
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
  // One allocation (the slice and its refcount), filled once: no zeroing,
  // and memcpy rather than an element-wise copy between char types.
  grpc::Slice slice(total);
  uint8_t* p = const_cast<uint8_t*>(slice.begin());
  for (const EventPtr& e : events) {
    p = CodedOutputStream::WriteTagToArray(kEventsTag, p);
    p = CodedOutputStream::WriteVarint64ToArray(e->wire.size(), p);
    std::memcpy(p, e->wire.data(), e->wire.size());
    p += e->wire.size();
  }
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace hookfan::broker
