// EnqueueBatchPlan: how the client splits one large `enqueueBatch` into
// `EnqueueBatch` calls the server accepts.
//
// Rules (docs/protocol.md, "EnqueueBatch"): a call carries 1...1000 runs and
// its frame must not exceed `Hello.max_frame_bytes`, else the server answers RESOURCE_EXHAUSTED
// and closes the connection. Each run's encoded size is bounded from above
// without encoding it (protobuf: 1-byte tags, varint lengths, at most 10
// bytes per integer), so a chunk is never over the limit, at the cost of
// filling frames a few percent less than exactly. A run that alone cannot fit
// is not sent: it gets its own RESOURCE_EXHAUSTED result.
import RunQueueCore

struct EnqueueBatchPlan: Equatable {
    /// Consecutive index ranges of the input, one call each, in order.
    var chunks: [Range<Int>] = []
    /// Runs too large for any frame.
    var oversized: [Int] = []

    /// Runs per call, as the server allows.
    static let maxRunsPerCall = 1000
    /// Room for the Request envelope: call_id (tag + 10), the oneof member's
    /// tag (2) and length (5), with slack.
    static let envelopeBytes = 32

    init(runs: [RunDescriptor], maxFrameBytes: Int, maxRunsPerCall: Int = EnqueueBatchPlan.maxRunsPerCall) {
        let budget = maxFrameBytes - Self.envelopeBytes
        var start = 0
        var bytes = 0
        for (index, run) in runs.enumerated() {
            let size = Self.repeatedEntryBytes(run)
            if size > budget {
                if start < index { chunks.append(start..<index) }
                oversized.append(index)
                start = index + 1
                bytes = 0
                continue
            }
            if index - start == maxRunsPerCall || bytes + size > budget {
                chunks.append(start..<index)
                start = index
                bytes = 0
            }
            bytes += size
        }
        if start < runs.count { chunks.append(start..<runs.count) }
    }

    /// Upper bound of the bytes one run adds to `EnqueueBatchRequest.runs`:
    /// its tag, its length and the message.
    static func repeatedEntryBytes(_ run: RunDescriptor) -> Int {
        let body = descriptorBytes(run)
        return 1 + varintBytes(body) + body
    }

    /// Upper bound of an encoded RunDescriptor.
    static func descriptorBytes(_ run: RunDescriptor) -> Int {
        let strings = [run.runID, run.orgID, run.projectID, run.environmentID, run.queue,
                       run.concurrencyKey, run.taskIdentifier, run.workerQueue, run.ttl]
        var total = 3 * 11  // environment_type, timestamp_ms, priority_ms: tag + up to 10 bytes
        for string in strings {
            let count = string.utf8.count
            total += 1 + varintBytes(count) + count
        }
        return total
    }

    static func varintBytes(_ value: Int) -> Int {
        var bytes = 1
        var rest = UInt64(max(value, 0)) >> 7
        while rest > 0 {
            bytes += 1
            rest >>= 7
        }
        return bytes
    }
}
