// MessageFormatV3: the compact run message of an unmerged trigger.dev change
// (where it is kept in Redis: docs/queue-design.md, "Lanes").
//
//     "v3:" queue RS timestamp RS attempt RS type RS workerQueue      RS = 0x1E
//
// - queue: the logical queue key (`{org:O}:proj:P:env:E:queue:Q[:ck:C]`);
// - timestamp: decimal Unix ms, 1..15 digits; attempt: decimal, 1..10 digits,
//   at most UInt32.max. Both canonical: ASCII digits only, no sign, no space,
//   no leading zero except "0" itself (one spelling per number, so a
//   decode + encode round trip is byte-exact);
// - type: exactly one byte, `D` DEVELOPMENT, `S` STAGING, `V` PREVIEW,
//   `P` PRODUCTION;
// - workerQueue: an identifier.
//
// Invariants:
// - Exactly five fields: no field may contain 0x1E. Ids and queue names
//   cannot (their alphabets); concurrency keys cannot (Validation rejects
//   0x1E), so splitting on 0x1E is unambiguous.
// - Decoding is strict: wrong field count, an empty field, a bad digit string
//   or type code is an error naming the field, never a zero or NaN
//   (trigger.dev parsed with parseInt and no check).
// - V3 carries no run id, no task identifier and no TTL deadline. The decoder
//   returns the five fields (`Decoded`); the caller supplies the run id (the
//   key it read) and the task identifier (the queue's record or the run's
//   row), both validated, never derived from the queue name and never
//   defaulted to "" (trigger.dev's two bugs). The TTL deadline lives in the
//   shard's TTL index, keyed by run id, not in the message.
// Why keep V3: trigger.dev deployments that ran that change wrote it; reading it
// (and writing it on request) lets a deployment move between formats in
// either direction with no backfill.

import RunQueueCore

public enum MessageFormatV3 {
    /// `v3:`
    static let prefix: StaticString = "v3:"
    /// The ASCII record separator between fields.
    public static let separator: UInt8 = 0x1E
    static let fieldCount = 5

    /// What a V3 value holds: a stored message without run id, task identifier
    /// and TTL deadline.
    public struct Decoded: Sendable, Equatable {
        public var queueKey: LogicalQueueKey
        public var timestampMs: Int64
        public var attempt: UInt32
        public var environmentType: EnvironmentType
        public var workerQueue: String

        public init(queueKey: LogicalQueueKey, timestampMs: Int64, attempt: UInt32,
                    environmentType: EnvironmentType, workerQueue: String) {
            self.queueKey = queueKey
            self.timestampMs = timestampMs
            self.attempt = attempt
            self.environmentType = environmentType
            self.workerQueue = workerQueue
        }

        /// The full message, with the fields V3 does not carry supplied by the caller.
        /// - Parameters:
        ///   - runID: the run the value was read for; must be an identifier (never "").
        ///   - taskIdentifier: from the queue's record or the run's row (0..128
        ///     bytes of the queue alphabet); never derived from the queue name.
        public func storedMessage(runID: String, taskIdentifier: String) throws(MessageFormatError) -> StoredMessage {
            guard Validation.isIdentifier(runID) else {
                throw MessageFormatError(.invalidField, field: "runId", "runId must be 1..128 bytes of [A-Za-z0-9_.-] (supplied by the caller for V3)")
            }
            guard Validation.isTaskIdentifier(taskIdentifier) else {
                throw MessageFormatError(.invalidField, field: "taskIdentifier", "taskIdentifier must be 0..128 bytes of [A-Za-z0-9_./-] (supplied by the caller for V3)")
            }
            return StoredMessage(
                runID: runID, orgID: queueKey.orgID, projectID: queueKey.projectID,
                environmentID: queueKey.environmentID, environmentType: environmentType,
                queue: queueKey.queue, concurrencyKey: queueKey.concurrencyKey,
                taskIdentifier: taskIdentifier, workerQueue: workerQueue,
                timestampMs: timestampMs, attempt: attempt, ttlExpiresAtMs: nil
            )
        }
    }

    // MARK: Encoding

    /// The V3 value of `message`; its run id, task identifier and TTL deadline
    /// are not written. The message must be encodable
    /// (`StoredMessage.isEncodable`; checked in debug builds).
    public static func encode(_ message: StoredMessage) -> [UInt8] {
        var out: [UInt8] = []
        encode(message, into: &out)
        return out
    }

    /// Appends the V3 value of `message` to `out`.
    public static func encode(_ message: StoredMessage, into out: inout [UInt8]) {
        assert(message.isEncodable, "encoding an invalid stored message: \(message)")
        let key = message.queueKey
        // prefix 3 + key + 4 separators + 15 + 10 digits + 1 type byte + worker queue
        out.reserveCapacity(out.count + 33 + key.encodedByteCount + message.workerQueue.utf8.count)
        out.append(contentsOf: UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
        key.appendEncoded(to: &out)
        out.append(separator)
        MessageFormatDecimal.append(message.timestampMs, to: &out)
        out.append(separator)
        MessageFormatDecimal.append(unsigned: UInt64(message.attempt), to: &out)
        out.append(separator)
        out.append(typeCode(message.environmentType))
        out.append(separator)
        out.append(contentsOf: message.workerQueue.utf8)
    }

    /// `D`, `S`, `V` or `P`.
    public static func typeCode(_ type: EnvironmentType) -> UInt8 {
        switch type {
        case .development: UInt8(ascii: "D")
        case .staging: UInt8(ascii: "S")
        case .preview: UInt8(ascii: "V")
        case .production: UInt8(ascii: "P")
        case .unspecified: preconditionFailure("stored message with environment type UNSPECIFIED (validation lets none through)")
        }
    }

    /// The environment type of a code byte, or nil for any other byte.
    public static func environmentType(code: UInt8) -> EnvironmentType? {
        switch code {
        case UInt8(ascii: "D"): .development
        case UInt8(ascii: "S"): .staging
        case UInt8(ascii: "V"): .preview
        case UInt8(ascii: "P"): .production
        default: nil
        }
    }

    // MARK: Decoding

    /// Decodes a V3 value into its five fields; see the rules at the top of this file.
    public static func decode(_ bytes: [UInt8]) throws(MessageFormatError) -> Decoded {
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(MessageFormatError) in try decode(buffer) }
        }
        return try result.get()
    }

    /// Decodes a V3 value and completes it with the caller's run id and task identifier.
    public static func decode(_ bytes: [UInt8], runID: String, taskIdentifier: String) throws(MessageFormatError) -> StoredMessage {
        try decode(bytes).storedMessage(runID: runID, taskIdentifier: taskIdentifier)
    }

    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) throws(MessageFormatError) -> Decoded {
        guard LogicalQueueKey.literal(prefix, at: 0, in: bytes) else {
            throw MessageFormatError(.malformed, field: nil, "V3 message must start with \"v3:\"")
        }
        // The field boundaries: 4 separators, found without allocating.
        var bounds: (Int, Int, Int, Int) = (0, 0, 0, 0)
        var found = 0
        let start = prefix.utf8CodeUnitCount
        for i in start..<bytes.count where bytes[i] == separator {
            found += 1
            switch found {
            case 1: bounds.0 = i
            case 2: bounds.1 = i
            case 3: bounds.2 = i
            case 4: bounds.3 = i
            default: break
            }
        }
        guard found == fieldCount - 1 else {
            throw MessageFormatError(.malformed, field: nil, "V3 message must have exactly 5 fields separated by 0x1E (found \(found + 1))")
        }
        func field(_ from: Int, _ to: Int) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: bytes[from..<to])
        }
        let queueBytes = field(start, bounds.0)
        let timestampBytes = field(bounds.0 + 1, bounds.1)
        let attemptBytes = field(bounds.1 + 1, bounds.2)
        let typeBytes = field(bounds.2 + 1, bounds.3)
        let workerQueueBytes = field(bounds.3 + 1, bytes.count)

        guard !queueBytes.isEmpty else { throw empty("queue") }
        let key = try LogicalQueueKey(parsing: queueBytes, field: "queue")
        guard !timestampBytes.isEmpty else { throw empty("timestamp") }
        guard let timestamp = MessageFormatDecimal.parse(timestampBytes, maxDigits: MessageFormatDecimal.maxTimestampDigits) else {
            throw MessageFormatError(.invalidField, field: "timestamp", "timestamp must be 1..15 decimal digits with no sign, space or leading zero")
        }
        guard !attemptBytes.isEmpty else { throw empty("attempt") }
        guard let attempt = MessageFormatDecimal.parse(attemptBytes, maxDigits: MessageFormatDecimal.maxAttemptDigits),
              attempt <= UInt64(UInt32.max) else {
            throw MessageFormatError(.invalidField, field: "attempt", "attempt must be decimal digits 0..4294967295 with no sign, space or leading zero")
        }
        guard !typeBytes.isEmpty else { throw empty("environmentType") }
        guard typeBytes.count == 1, let type = environmentType(code: typeBytes[0]) else {
            throw MessageFormatError(.invalidField, field: "environmentType", "environmentType must be one of the codes D, S, V, P")
        }
        guard !workerQueueBytes.isEmpty else { throw empty("workerQueue") }
        guard workerQueueBytes.count <= Validation.maxBytes, workerQueueBytes.allSatisfy(Validation.isIdentifierByte) else {
            throw MessageFormatError(.invalidField, field: "workerQueue", "workerQueue must be 1..128 bytes of [A-Za-z0-9_.-]")
        }
        return Decoded(
            queueKey: key,
            // At most 15 digits: fits Int64.
            timestampMs: Int64(timestamp),
            attempt: UInt32(attempt),
            environmentType: type,
            workerQueue: String(decoding: workerQueueBytes, as: UTF8.self)
        )
    }

    private static func empty(_ field: String) -> MessageFormatError {
        MessageFormatError(.missingField, field: field, "\(field) is empty in a V3 message")
    }
}
