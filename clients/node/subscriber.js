#!/usr/bin/env node
// Prints the hookfan events matching a filter, one JSON object per line, in
// sequence order.
//
// When the stream drops (UNAVAILABLE: hookfan restarting or unreachable;
// RESOURCE_EXHAUSTED: busy, or this client stalled past hookfan's
// --grpc-stall-timeout) it reconnects with jittered backoff and resumes
// after the last sequence it saw, so nothing is missed and nothing repeats.
//
// Each event is handled in a span that continues the event's trace: hookfan
// gives every event a W3C trace context (the sender's, or one it started),
// which the OpenTelemetry API reads like the traceparent/tracestate headers
// of an incoming request. Here the spans go to no exporter; stderr names
// each one. Register your exporter on the provider to send them.
//
// Exit status: 0 after --max events; 1 when hookfan refuses or ends the
// stream for another reason (bad filter, start past retention); 2 for a bad
// flag.
'use strict';

const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const otel = require('@opentelemetry/api');
const { W3CTraceContextPropagator } = require('@opentelemetry/core');
const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');

const USAGE = `Usage: subscriber.js [--server HOST:PORT] [--type PATTERN]...
                     [--from earliest|latest|snapshot|N] [--max N] [--proto DIR]
  --server  hookfan's gRPC address (default 127.0.0.1:9090)
  --type    event type pattern, e.g. 'applivery.device.*'; repeat for
            several (default: every type)
  --from    where to start: the oldest event held, new events only
            (default), or sequence N
  --max     exit after N events
  --proto   directory holding hookfan/v1/*.proto (default: the repo's proto/)`;

function usageError(message) {
  console.error(`subscriber.js: ${message}\n\n${USAGE}`);
  process.exit(2);
}

// Parses the command line into {server, types, start, max, proto}.
function parseOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        server: { type: 'string', default: '127.0.0.1:9090' },
        type: { type: 'string', multiple: true, default: [] },
        from: { type: 'string', default: 'latest' },
        max: { type: 'string' },
        proto: { type: 'string', default: path.join(__dirname, '..', '..', 'proto') },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    usageError(error.message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  let start;
  if (values.from === 'earliest' || values.from === 'latest' || values.from === 'snapshot') {
    start = { [values.from]: true };
  } else if (/^[0-9]+$/.test(values.from) && BigInt(values.from) >= 1n) {
    start = { afterSequence: (BigInt(values.from) - 1n).toString() };
  } else {
    usageError(`--from: expected earliest, latest, snapshot or a sequence >= 1, ` +
               `got "${values.from}"`);
  }
  if (values.max !== undefined && !/^[1-9][0-9]*$/.test(values.max)) {
    usageError(`--max: expected a positive count, got "${values.max}"`);
  }
  return {
    server: values.server,
    types: values.type,
    start,
    max: values.max === undefined ? Infinity : Number(values.max),
    proto: values.proto,
  };
}

// Node's "generate" step: proto-loader reads the .proto files at run time.
// The options make events print like protobuf's JSON mapping where it
// matters here: uint64 sequences as decimal strings, enums by name, bytes
// as base64 (timestamps stay {seconds, nanos}).
function loadEventBroker(protoDir) {
  const definition = protoLoader.loadSync('hookfan/v1/broker.proto', {
    includeDirs: [protoDir],
    longs: String,
    enums: String,
    bytes: String,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).hookfan.v1.EventBroker;
}

// The greater of `sequence` (a BigInt, or null: unknown) and the sequence
// under `key` in gRPC `metadata`, if there is one.
function later(sequence, metadata, key) {
  const [value] = metadata.get(key);
  if (value === undefined) return sequence;
  const reported = BigInt(value.toString());
  return sequence === null || reported > sequence ? reported : sequence;
}

// Exponential backoff with jitter: each wait is between half and all of a
// ceiling that doubles after every failed attempt, from 100 ms up to 10 s.
// Random spread keeps many clients from reconnecting in lockstep.
class Backoff {
  constructor(firstMs = 100, capMs = 10000) {
    this.firstMs = firstMs;
    this.capMs = capMs;
    this.reset();
  }

  // Call once a stream works again.
  reset() {
    this.ceilingMs = this.firstMs;
  }

  // Returns how long to wait before the next attempt.
  next() {
    const delayMs = this.ceilingMs * (0.5 + Math.random() / 2);
    this.ceilingMs = Math.min(this.ceilingMs * 2, this.capMs);
    return delayMs;
  }
}

// The tracer the handler's spans come from: the OpenTelemetry SDK's, with
// the W3C propagator that reads hookfan's trace context.
function setUpTracing() {
  otel.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  otel.trace.setGlobalTracerProvider(new BasicTracerProvider());
  return otel.trace.getTracer('hookfan-node-example');
}

// Handles one event (prints it) in a span that continues its trace: a child
// of the span that sent it, in the same trace.
function handle(tracer, event) {
  // event.extensions holds "traceparent" and "tracestate", the W3C
  // propagator's keys: it reads them like an incoming request's headers.
  const parent = otel.propagation.extract(otel.ROOT_CONTEXT, event.extensions || {});
  const span = tracer.startSpan(`process ${event.type}`, { kind: otel.SpanKind.CONSUMER }, parent);
  otel.context.with(otel.trace.setSpan(parent, span), () => {
    process.stdout.write(JSON.stringify(event) + '\n');
    const { traceId, spanId } = span.spanContext();
    const parentSpanId = otel.trace.getSpanContext(parent)?.spanId ?? 'none';
    console.error(`subscriber.js: event ${event.sequence} handled in trace ${traceId}, ` +
                  `span ${spanId}, parent ${parentSpanId}`);
  });
  span.end();
}

function main() {
  const options = parseOptions(process.argv.slice(2));
  const tracer = setUpTracing();
  const EventBroker = loadEventBroker(options.proto);
  const backoff = new Backoff();
  let resumeAfter = null; // BigInt: the sequence to resume after; null until known
  let snapshotThrough = 0n; // where a snapshot start's snapshot ends
  let printed = 0;

  // One attempt: opens a stream on a new client (a client that failed keeps
  // failing calls until its own reconnect backoff expires, a new one
  // connects at once) and, when the stream drops, schedules the next.
  function subscribe() {
    const client = new EventBroker(options.server, grpc.credentials.createInsecure());
    // Cut off inside a snapshot: a new snapshot holds what this one had yet
    // to send, and what was handled already is skipped below.
    const retake = options.start.snapshot === true && (resumeAfter ?? 0n) < snapshotThrough;
    const start = resumeAfter === null || retake
      ? options.start : { afterSequence: resumeAfter.toString() };
    const handledBefore = resumeAfter ?? 0n;
    const stream = client.Subscribe({ filter: { types: options.types }, start });
    // Once registered, hookfan says where the stream starts: resuming from
    // there also holds for a "latest" stream cut before any event.
    stream.on('metadata', (metadata) => {
      resumeAfter = later(resumeAfter, metadata, 'hookfan-start-after');
      snapshotThrough = later(snapshotThrough, metadata, 'hookfan-snapshot-through');
    });
    stream.on('data', (response) => {
      backoff.reset();
      for (const event of response.events) {
        if (printed === options.max) return; // cancelled, still draining
        if (BigInt(event.sequence) <= handledBefore) continue; // before a new snapshot
        handle(tracer, event);
        resumeAfter = BigInt(event.sequence);
        if (++printed === options.max) stream.cancel();
      }
    });
    stream.on('error', () => {}); // every end is handled on 'status'
    stream.on('status', (status) => {
      client.close();
      if (printed === options.max) return; // done: Node exits with 0
      const reason = status.code === grpc.status.OK
        ? 'hookfan ended the stream'
        : `${grpc.status[status.code]}: ${status.details}`;
      // UNAVAILABLE: hookfan restarting or unreachable; RESOURCE_EXHAUSTED:
      // busy, or this client stopped reading for --grpc-stall-timeout.
      if (status.code !== grpc.status.UNAVAILABLE &&
          status.code !== grpc.status.RESOURCE_EXHAUSTED) {
        console.error(`subscriber.js: ${reason}`);
        process.exitCode = 1;
        return;
      }
      // A draining or stalled stream names the last sequence it sent.
      resumeAfter = later(resumeAfter, status.metadata, 'hookfan-resume-after');
      const delayMs = backoff.next();
      console.error(`subscriber.js: ${reason}; reconnecting in ${(delayMs / 1000).toFixed(1)}s`);
      setTimeout(subscribe, delayMs);
    });
  }
  subscribe();
}

main();
