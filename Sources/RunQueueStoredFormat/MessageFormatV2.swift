// MessageFormatV2: trigger.dev's JSON run message (where it is kept in Redis:
// docs/queue-design.md, "Lanes").
//
// Writing: one JSON object, no whitespace, keys in this fixed order
//
//   version ("2"), runId, taskIdentifier, orgId, projectId, environmentId,
//   environmentType, queue (the logical queue key), concurrencyKey (only when
//   set), timestamp, attempt, workerQueue, ttlExpiresAt (only when set)
//
// Strings are escaped as JavaScript's JSON.stringify does (`\"`, `\\`, `\b`
// `\f` `\n` `\r` `\t`, other bytes below 0x20 as lowercase `\u00xx`, nothing
// else), so the bytes equal JSON.stringify's for an object built in this key
// order. Numbers are plain decimal integers.
//
// Reading (strict, one pass, see MessageFormatJSONReader):
// - the value must be one JSON object (whitespace around it allowed) in valid
//   UTF-8; duplicate known keys are an error; unknown keys (trace fields such
//   as `traceparent`, `eligibleAtMs`, ...) are skipped whatever their value;
// - `version` "2", or "1" (legacy): V1 has `masterQueues` instead of
//   `workerQueue`; as trigger.dev's WorkerQueueResolver does, the worker
//   queue is the environment id for DEVELOPMENT, else `masterQueues[0]`
//   (a V1 `workerQueue` key is ignored, a V2 `masterQueues` key too);
// - required: version, runId, orgId, projectId, environmentId,
//   environmentType, queue, timestamp, attempt, workerQueue (V2) /
//   masterQueues (V1 non-DEVELOPMENT); `taskIdentifier` is required unless the
//   caller supplies a fallback (newer trigger.dev versions may leave it out);
// - optional: concurrencyKey and ttlExpiresAt; `null` counts as absent, and
//   concurrencyKey "" means none (trigger.dev writes no `:ck:` for it);
// - every value meets the same rules as at the API edge (Validation): ids,
//   queue name, concurrency key, task identifier, worker queue; the
//   environment type is one of the four names;
// - numbers are canonical JSON integers, non-negative (so any V2 message can
//   be rewritten as V3, which has no signs): timestamp and ttlExpiresAt at
//   most 15 digits (< 10^15, exact as a double), attempt at most UInt32.max;
//   fractions, exponents, `-0` and strings of digits are errors;
// - cross-checks: `queue` parses as a LogicalQueueKey whose org, project and
//   environment equal orgId, projectId, environmentId, and whose concurrency
//   key equals concurrencyKey (absent = none).
// Why hand-written: Foundation's JSONEncoder neither fixes key order nor
// escapes byte-stably and is slow on the enqueue path; JSONSerialization
// turns integers into doubles. The writer reserves once and appends.

import RunQueueCore

public enum MessageFormatV2 {
    // MARK: Encoding

    /// The V2 JSON of `message`. The message must be encodable
    /// (`StoredMessage.isEncodable`; checked in debug builds).
    public static func encode(_ message: StoredMessage) -> [UInt8] {
        var out: [UInt8] = []
        encode(message, into: &out)
        return out
    }

    /// Appends the V2 JSON of `message` to `out`.
    public static func encode(_ message: StoredMessage, into out: inout [UInt8]) {
        assert(message.isEncodable, "encoding an invalid stored message: \(message)")
        let key = message.queueKey
        // Fixed text is about 170 bytes; escapes are rare, so this is exact in practice.
        out.reserveCapacity(out.count + 192 + message.runID.utf8.count + message.taskIdentifier.utf8.count
            + message.orgID.utf8.count + message.projectID.utf8.count + message.environmentID.utf8.count
            + key.encodedByteCount + message.concurrencyKey.utf8.count + message.workerQueue.utf8.count)
        append("{\"version\":\"2\",\"runId\":\"", to: &out)
        appendEscaped(message.runID, to: &out)
        append("\",\"taskIdentifier\":\"", to: &out)
        appendEscaped(message.taskIdentifier, to: &out)
        append("\",\"orgId\":\"", to: &out)
        appendEscaped(message.orgID, to: &out)
        append("\",\"projectId\":\"", to: &out)
        appendEscaped(message.projectID, to: &out)
        append("\",\"environmentId\":\"", to: &out)
        appendEscaped(message.environmentID, to: &out)
        append("\",\"environmentType\":\"", to: &out)
        append(environmentTypeName(message.environmentType), to: &out)
        append("\",\"queue\":\"", to: &out)
        key.appendEncodedJSONEscaped(to: &out)
        if !message.concurrencyKey.isEmpty {
            append("\",\"concurrencyKey\":\"", to: &out)
            appendEscaped(message.concurrencyKey, to: &out)
        }
        append("\",\"timestamp\":", to: &out)
        MessageFormatDecimal.append(message.timestampMs, to: &out)
        append(",\"attempt\":", to: &out)
        MessageFormatDecimal.append(unsigned: UInt64(message.attempt), to: &out)
        append(",\"workerQueue\":\"", to: &out)
        appendEscaped(message.workerQueue, to: &out)
        if let ttl = message.ttlExpiresAtMs {
            append("\",\"ttlExpiresAt\":", to: &out)
            MessageFormatDecimal.append(ttl, to: &out)
            out.append(UInt8(ascii: "}"))
        } else {
            append("\"}", to: &out)
        }
    }

    private static func environmentTypeName(_ type: EnvironmentType) -> StaticString {
        switch type {
        case .development: "DEVELOPMENT"
        case .staging: "STAGING"
        case .preview: "PREVIEW"
        case .production: "PRODUCTION"
        case .unspecified: preconditionFailure("stored message with environment type UNSPECIFIED (validation lets none through)")
        }
    }

    private static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends `text` escaped for the inside of a JSON string (JSON.stringify's rules).
    static func appendEscaped(_ text: String, to out: inout [UInt8]) {
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { appendEscaped($0, to: &out) }
        if done == nil {
            Array(text.utf8).withUnsafeBufferPointer { appendEscaped($0, to: &out) }
        }
    }

    private static func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        var runStart = 0
        for i in 0..<bytes.count {
            let byte = bytes[i]
            if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") { continue }
            if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
            out.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            default:
                let hex: StaticString = "0123456789abcdef"
                out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex.utf8Start[Int(byte >> 4)], hex.utf8Start[Int(byte & 0xF)]])
            }
            runStart = i + 1
        }
        if runStart < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...])) }
    }

    // MARK: Decoding

    /// Decodes a V2 (or legacy V1) JSON message; see the rules at the top of this file.
    ///
    /// - Parameter taskIdentifierFallback: used when the JSON has no
    ///   `taskIdentifier` (from the queue's record or the run's row); nil makes
    ///   the key required.
    public static func decode(_ bytes: [UInt8], taskIdentifierFallback: String? = nil) throws(MessageFormatError) -> StoredMessage {
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(MessageFormatError) in try decode(buffer, taskIdentifierFallback: taskIdentifierFallback) }
        }
        return try result.get()
    }

    /// The keys this decoder knows; the rest are skipped.
    private enum Key: Int, CaseIterable {
        case version, runId, taskIdentifier, orgId, projectId, environmentId, environmentType
        case queue, concurrencyKey, timestamp, attempt, workerQueue, ttlExpiresAt, masterQueues

        var name: StaticString {
            switch self {
            case .version: "version"
            case .runId: "runId"
            case .taskIdentifier: "taskIdentifier"
            case .orgId: "orgId"
            case .projectId: "projectId"
            case .environmentId: "environmentId"
            case .environmentType: "environmentType"
            case .queue: "queue"
            case .concurrencyKey: "concurrencyKey"
            case .timestamp: "timestamp"
            case .attempt: "attempt"
            case .workerQueue: "workerQueue"
            case .ttlExpiresAt: "ttlExpiresAt"
            case .masterQueues: "masterQueues"
            }
        }

        var field: String { name.description }

        static func matching(_ bytes: UnsafeBufferPointer<UInt8>) -> Key? {
            for key in allCases {
                let name = key.name
                guard name.utf8CodeUnitCount == bytes.count else { continue }
                if LogicalQueueKey.literal(name, at: 0, in: bytes) { return key }
            }
            return nil
        }
    }

    /// The values read so far, before the cross-checks.
    private struct Fields {
        var seen: UInt32 = 0
        var version: String?
        var runId: String?
        var taskIdentifier: String?
        var orgId: String?
        var projectId: String?
        var environmentId: String?
        var environmentType: String?
        var queue: String?
        var concurrencyKey: String?
        var timestamp: UInt64?
        var attempt: UInt64?
        var workerQueue: String?
        var ttlExpiresAt: UInt64?
        var firstMasterQueue: String?
    }

    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>, taskIdentifierFallback: String?) throws(MessageFormatError) -> StoredMessage {
        guard MessageFormatJSONReader.isValidUTF8(bytes) else {
            throw MessageFormatError(.malformed, field: nil, "V2 message is not valid UTF-8")
        }
        var reader = MessageFormatJSONReader(bytes)
        var fields = Fields()
        reader.skipWhitespace()
        guard reader.peek == UInt8(ascii: "{") else {
            throw MessageFormatError(.malformed, field: nil, "V2 message must be a JSON object")
        }
        _ = reader.consume(UInt8(ascii: "{"))
        reader.skipWhitespace()
        if !reader.consume(UInt8(ascii: "}")) {
            while true {
                let token = try reader.scanString()
                reader.skipWhitespace()
                try reader.expect(UInt8(ascii: ":"), "':'")
                reader.skipWhitespace()
                let key: Key?
                if token.hasEscapes {
                    let name = try reader.contents(of: token)
                    key = name.withUnsafeBufferPointer { Key.matching($0) }
                } else {
                    key = Key.matching(UnsafeBufferPointer(rebasing: bytes[token.start..<token.end]))
                }
                if let key {
                    let bit = UInt32(1) << UInt32(key.rawValue)
                    guard fields.seen & bit == 0 else {
                        throw MessageFormatError(.malformed, field: key.field, "\(key.field) appears twice")
                    }
                    fields.seen |= bit
                    try readValue(for: key, from: &reader, into: &fields)
                } else {
                    try reader.skipValue()
                }
                reader.skipWhitespace()
                if reader.consume(UInt8(ascii: ",")) {
                    reader.skipWhitespace()
                    continue
                }
                try reader.expect(UInt8(ascii: "}"), "',' or '}'")
                break
            }
        }
        reader.skipWhitespace()
        guard reader.isAtEnd else { throw reader.syntax("bytes after the JSON object") }
        return try message(from: fields, taskIdentifierFallback: taskIdentifierFallback)
    }

    private static func readValue(for key: Key, from reader: inout MessageFormatJSONReader,
                                  into fields: inout Fields) throws(MessageFormatError) {
        switch key {
        case .version: fields.version = try requiredString(key, &reader)
        case .runId: fields.runId = try requiredString(key, &reader)
        case .taskIdentifier: fields.taskIdentifier = try requiredString(key, &reader)
        case .orgId: fields.orgId = try requiredString(key, &reader)
        case .projectId: fields.projectId = try requiredString(key, &reader)
        case .environmentId: fields.environmentId = try requiredString(key, &reader)
        case .environmentType: fields.environmentType = try requiredString(key, &reader)
        case .queue: fields.queue = try requiredString(key, &reader)
        case .workerQueue: fields.workerQueue = try requiredString(key, &reader)
        case .concurrencyKey:
            if try reader.readNull() { return }
            fields.concurrencyKey = try requiredString(key, &reader)
        case .timestamp:
            fields.timestamp = try integer(key, &reader, maxDigits: MessageFormatDecimal.maxTimestampDigits,
                                           rule: "a non-negative integer of at most 15 digits (Unix milliseconds)")
        case .ttlExpiresAt:
            if try reader.readNull() { return }
            fields.ttlExpiresAt = try integer(key, &reader, maxDigits: MessageFormatDecimal.maxTimestampDigits,
                                              rule: "a non-negative integer of at most 15 digits (Unix milliseconds)")
        case .attempt:
            let rule = "an integer 0..4294967295"
            let value = try integer(key, &reader, maxDigits: MessageFormatDecimal.maxAttemptDigits, rule: rule)
            guard value <= UInt64(UInt32.max) else { throw invalid(key.field, rule) }
            fields.attempt = value
        case .masterQueues:
            // An array of strings; only the first is used (V1 routing).
            guard reader.consume(UInt8(ascii: "[")) else { throw invalid(key.field, "an array of strings") }
            reader.skipWhitespace()
            if reader.consume(UInt8(ascii: "]")) { return }
            while true {
                guard reader.peek == UInt8(ascii: "\"") else { throw invalid(key.field, "an array of strings") }
                let value = try reader.readString()
                if fields.firstMasterQueue == nil { fields.firstMasterQueue = value }
                reader.skipWhitespace()
                if reader.consume(UInt8(ascii: ",")) { reader.skipWhitespace(); continue }
                try reader.expect(UInt8(ascii: "]"), "',' or ']'")
                return
            }
        }
    }

    private static func requiredString(_ key: Key, _ reader: inout MessageFormatJSONReader) throws(MessageFormatError) -> String {
        guard reader.peek == UInt8(ascii: "\"") else { throw invalid(key.field, "a string") }
        return try reader.readString()
    }

    private static func integer(_ key: Key, _ reader: inout MessageFormatJSONReader,
                                maxDigits: Int, rule: String) throws(MessageFormatError) -> UInt64 {
        switch try reader.readInteger(maxDigits: maxDigits) {
        case .value(let value): return value
        case .notANumber, .outOfRules: throw invalid(key.field, rule)
        }
    }

    private static func invalid(_ field: String, _ rule: String) -> MessageFormatError {
        MessageFormatError(.invalidField, field: field, "\(field) must be \(rule)")
    }

    private static func missing(_ key: Key) -> MessageFormatError {
        MessageFormatError(.missingField, field: key.field, "\(key.field) is missing")
    }

    /// Presence, value rules and cross-checks, in key order.
    private static func message(from fields: Fields, taskIdentifierFallback: String?) throws(MessageFormatError) -> StoredMessage {
        guard let version = fields.version else { throw missing(.version) }
        guard version == "2" || version == "1" else {
            throw MessageFormatError(.unsupportedVersion, field: "version", "version must be \"2\" (or legacy \"1\")")
        }
        guard let runId = fields.runId else { throw missing(.runId) }
        guard Validation.isIdentifier(runId) else { throw invalid("runId", "1..128 bytes of [A-Za-z0-9_.-]") }
        guard let taskIdentifier = fields.taskIdentifier ?? taskIdentifierFallback else { throw missing(.taskIdentifier) }
        guard Validation.isTaskIdentifier(taskIdentifier) else {
            throw invalid("taskIdentifier", "0..128 bytes of [A-Za-z0-9_./-]")
        }
        guard let orgId = fields.orgId else { throw missing(.orgId) }
        guard Validation.isIdentifier(orgId) else { throw invalid("orgId", "1..128 bytes of [A-Za-z0-9_.-]") }
        guard let projectId = fields.projectId else { throw missing(.projectId) }
        guard Validation.isIdentifier(projectId) else { throw invalid("projectId", "1..128 bytes of [A-Za-z0-9_.-]") }
        guard let environmentId = fields.environmentId else { throw missing(.environmentId) }
        guard Validation.isIdentifier(environmentId) else { throw invalid("environmentId", "1..128 bytes of [A-Za-z0-9_.-]") }
        guard let typeName = fields.environmentType else { throw missing(.environmentType) }
        guard let environmentType = EnvironmentType(name: typeName), environmentType != .unspecified else {
            throw invalid("environmentType", "\"DEVELOPMENT\", \"STAGING\", \"PREVIEW\" or \"PRODUCTION\"")
        }
        guard let queue = fields.queue else { throw missing(.queue) }
        let key = try LogicalQueueKey(parsing: queue)
        guard key.orgID == orgId, key.projectID == projectId, key.environmentID == environmentId else {
            throw MessageFormatError(.mismatch, field: "queue", "queue key's org, project and environment differ from orgId, projectId, environmentId")
        }
        let concurrencyKey = fields.concurrencyKey ?? ""
        guard Validation.isConcurrencyKey(concurrencyKey) else {
            throw invalid("concurrencyKey", "at most 128 bytes with no control characters, no '|' and no 0x1E")
        }
        guard key.concurrencyKey == concurrencyKey else {
            throw MessageFormatError(.mismatch, field: "concurrencyKey", "concurrencyKey differs from the queue key's :ck: section")
        }
        guard let timestamp = fields.timestamp else { throw missing(.timestamp) }
        guard let attempt = fields.attempt else { throw missing(.attempt) }
        let workerQueue: String
        if version == "2" {
            guard let value = fields.workerQueue else { throw missing(.workerQueue) }
            workerQueue = value
        } else if environmentType == .development {
            workerQueue = environmentId
        } else {
            guard let first = fields.firstMasterQueue else {
                throw MessageFormatError(.missingField, field: "masterQueues", "masterQueues must hold at least one queue in a version \"1\" message")
            }
            workerQueue = first
        }
        guard Validation.isIdentifier(workerQueue) else {
            throw invalid(version == "2" ? "workerQueue" : "masterQueues", "1..128 bytes of [A-Za-z0-9_.-]")
        }
        return StoredMessage(
            runID: runId, orgID: orgId, projectID: projectId, environmentID: environmentId,
            environmentType: environmentType, queue: key.queue, concurrencyKey: concurrencyKey,
            taskIdentifier: taskIdentifier, workerQueue: workerQueue,
            // Both at most 15 digits, so they fit Int64 (and UInt32 for attempt, checked when read).
            timestampMs: Int64(timestamp), attempt: UInt32(attempt), ttlExpiresAtMs: fields.ttlExpiresAt.map { Int64($0) }
        )
    }
}
