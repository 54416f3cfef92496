#include "core/ingest.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/event_rules.h"
#include "core/trace_context.h"

namespace hookfan::broker {

absl::Status ValidateType(std::string_view type) {
  if (absl::Status s = CheckEventType(type); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("type ", QuoteForError(type), " is not a valid event type: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status CheckEvent(const v1::Event& event, const IngestRules& rules) {
  if (absl::Status s = ValidateType(event.type()); !s.ok()) return s;
  if (size_t bytes = event.ByteSizeLong(); bytes > rules.max_event_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the event is ", bytes,
                                                     " bytes; the limit is ",
                                                     rules.max_event_bytes, " (--max-event-bytes)"));
  }
  return absl::OkStatus();
}

Ingestor::Ingestor(EventLog* log, Options options)
    : log_(log), options_(options), ids_(options_.clock) {
  if (options_.metrics != nullptr) {
    append_seconds_ = options_.metrics->AddHistogram(
        "hookfan_append_duration_seconds",
        "Time from an event being ready (a webhook's or a Publish's) to it being durable in "
        "the log.",
        metrics::LatencyBuckets());
    store_errors_ = options_.metrics->AddCounter(
        "hookfan_store_errors_total",
        "Appends the event log refused (a webhook answered 503, a Publish UNAVAILABLE).");
    device_lookup_errors_ = options_.metrics->AddCounter(
        "hookfan_device_lookup_errors_total",
        "Events naming their device by UDID alone stored without its serial number because "
        "the device directory could not answer.");
    traces_started_ = options_.metrics->AddCounter(
        "hookfan_traces_started_total",
        "Events that came with no valid W3C trace context and were given a new trace.");
    trace_values_dropped_ = options_.metrics->AddCounter(
        "hookfan_trace_context_dropped_total",
        "Invalid traceparent or tracestate values (or a tracestate without a traceparent) "
        "removed from events.");
  }
}

void Ingestor::CompleteTrace(v1::Event* event) {
  const TraceContextChange change = CompleteTraceContext(event);
  if (change.started && traces_started_ != nullptr) traces_started_->Add();
  if (change.dropped > 0 && trace_values_dropped_ != nullptr) {
    trace_values_dropped_->Add(change.dropped);
  }
}

void Ingestor::CompleteDevice(v1::Event* event) {
  if (!event->has_device()) return;
  const v1::DeviceIdentity& device = event->device();
  if (device.udid().empty() || !device.serial_number().empty()) return;
  absl::StatusOr<std::string> serial_number = log_->DeviceSerialNumber(device.udid());
  if (!serial_number.ok()) {
    if (device_lookup_errors_ != nullptr) device_lookup_errors_->Add();
    return;
  }
  if (!serial_number->empty()) {
    event->mutable_device()->set_serial_number(*std::move(serial_number));
  }
}

void Ingestor::Stamp(v1::Event* event) {
  event->set_id(ids_.Next());
  SetTimestamp(options_.clock->Now(), event->mutable_time());
  CompleteTrace(event);
}

absl::StatusOr<AppendOnceResult> Ingestor::Ingest(v1::Event event, std::string_view dedup_key,
                                                  absl::Duration window) {
  if (event.id().empty()) {
    Stamp(&event);
  } else {
    CompleteTrace(&event);
  }
  // The type rule first, so an event it refuses costs no directory lookup;
  // the size rule after, as the serial number adds bytes.
  if (absl::Status s = ValidateType(event.type()); !s.ok()) return s;
  CompleteDevice(&event);
  if (absl::Status s = CheckEvent(event, options_.rules); !s.ok()) return s;
  const absl::Time start = absl::Now();
  absl::StatusOr<AppendOnceResult> stored;
  if (!dedup_key.empty()) {
    stored = log_->AppendOnce(std::move(event), dedup_key, window);
  } else if (absl::Status s = log_->Append(absl::MakeSpan(&event, 1)); !s.ok()) {
    stored = s;
  } else {
    stored = AppendOnceResult{.id = event.id(), .sequence = event.sequence()};
  }
  if (append_seconds_ != nullptr) {
    append_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (!stored.ok() && store_errors_ != nullptr) store_errors_->Add();
  return stored;
}

}  // namespace hookfan::broker
