// Validation: the protocol's identifier and number rules, in one place.
//
// What: every value a client hands us that ends up inside a Redis key, a
// stored message or an ordering score is checked here before any script
// runs (docs/protocol.md, "Field rules"). The stored-format
// decoders (RunQueueWire, RunQueueStoredFormat) apply the same predicates to what they read back.
//
// Rules (all lengths are UTF-8 BYTES, never characters):
// - identifiers (`run_id`, `org_id`, `project_id`, `environment_id`,
//   `worker_queue`): 1..128 bytes of [A-Za-z0-9_.-]
// - `queue`: 1..128 bytes of [A-Za-z0-9_./-]
// - `task_identifier`: 0..128 bytes of the queue alphabet
// - `concurrency_key`: 0..128 bytes with no control character (C0 U+0000..U+001F,
//   DEL U+007F, C1 U+0080..U+009F), no `|` (trigger.dev's TTL member
//   separator) and no 0x1E (the V3 field separator; a C0 control anyway)
// - `environment_type`: one of the four named types, never UNSPECIFIED
// - `timestamp_ms`: 0 ... 999_999_999_999_999 (0 = now): at most 15 digits,
//   the limit the stored formats V2/V3 put on a time
//   (Sources/RunQueueStoredFormat/MessageFormatDecimal.swift), so every
//   accepted run can be written in every format; that is below 2^53, so it is
//   also exact in a Lua number or a Redis score (doubles).
// - `priority_ms`: within ±(2^53 - 1), and the ordering score
//   `timestamp_ms - priority_ms` must stay within ±(2^53 - 1) too, so the
//   score is exact as a double. With `timestamp_ms = 0` the engine substitutes
//   its clock and calls `orderingScore` itself.
//
// Invariants: a check never allocates on success; an error's message always
// contains the proto field name in snake_case (docs/protocol.md, "Field
// rules"), and is a fixed sentence per rule (values are never echoed, so a
// hostile value cannot bloat or forge an error message).
// Why bytes and an ASCII alphabet: these values are embedded in Redis keys and
// in the V2/V3 grammar (`:` separates key sections, 0x1E separates V3 fields),
// so the alphabets exclude every separator by construction.

/// A request value that breaks a protocol rule; maps to `INVALID_ARGUMENT`.
public struct ValidationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The proto field name in snake_case (`run_id`, `concurrency_key`...).
    public let field: String
    /// A sentence that starts with the field name.
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { message }
}

/// The protocol's value rules. Throwing checks for requests, `is...`
/// predicates (no error value built) for decoders.
public enum Validation {
    /// Longest identifier, queue name, task identifier or concurrency key, in UTF-8 bytes.
    public static let maxBytes = 128
    /// 2^53 - 1: the largest integer a double (a Lua number, a Redis score) holds exactly.
    public static let maxExactInteger: Int64 = (1 << 53) - 1
    /// The largest `timestamp_ms`: 15 digits (year 33658), what V2/V3 can store.
    public static let maxTimestampMs: Int64 = 999_999_999_999_999

    // MARK: Byte classes

    /// `[A-Za-z0-9_.-]`
    @inlinable
    public static func isIdentifierByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// `[A-Za-z0-9_./-]`: the identifier alphabet plus `/`.
    @inlinable
    public static func isQueueNameByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "/") || isIdentifierByte(byte)
    }

    // MARK: Predicates

    /// 1..128 bytes of `[A-Za-z0-9_.-]`.
    public static func isIdentifier(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard utf8.count >= 1, utf8.count <= maxBytes else { return false }
        return allBytes(of: value, isIdentifierByte)
    }

    /// 1..128 bytes of `[A-Za-z0-9_./-]`.
    public static func isQueueName(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard utf8.count >= 1, utf8.count <= maxBytes else { return false }
        return allBytes(of: value, isQueueNameByte)
    }

    /// 0..128 bytes of `[A-Za-z0-9_./-]`.
    public static func isTaskIdentifier(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard utf8.count <= maxBytes else { return false }
        return allBytes(of: value, isQueueNameByte)
    }

    /// 0..128 bytes of UTF-8 with no C0/DEL/C1 control character, no `|`, no 0x1E.
    public static func isConcurrencyKey(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard utf8.count <= maxBytes else { return false }
        // A String is always valid UTF-8, so 0xC2 is always a lead byte and a
        // C1 control (U+0080..U+009F) is exactly 0xC2 followed by 0x80...0x9F.
        var previous: UInt8 = 0
        for byte in utf8 {
            if byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "|") { return false }
            if previous == 0xC2, byte >= 0x80, byte <= 0x9F { return false }
            previous = byte
        }
        return true
    }

    /// Whether every UTF-8 byte of `value` passes `test`; scans the string's
    /// own storage when it is contiguous (always, for native strings).
    @inline(__always)
    private static func allBytes(of value: String, _ test: (UInt8) -> Bool) -> Bool {
        if let result = value.utf8.withContiguousStorageIfAvailable({ bytes in
            for byte in bytes where !test(byte) { return false }
            return true
        }) {
            return result
        }
        return value.utf8.allSatisfy(test)
    }

    // MARK: Throwing checks

    public static func identifier(_ value: String, field: String) throws(ValidationError) {
        guard isIdentifier(value) else {
            throw ValidationError(field: field, message: "\(field) must be 1..128 bytes of [A-Za-z0-9_.-]")
        }
    }

    public static func queueName(_ value: String, field: String = "queue") throws(ValidationError) {
        guard isQueueName(value) else {
            throw ValidationError(field: field, message: "\(field) must be 1..128 bytes of [A-Za-z0-9_./-]")
        }
    }

    public static func taskIdentifier(_ value: String, field: String = "task_identifier") throws(ValidationError) {
        guard isTaskIdentifier(value) else {
            throw ValidationError(field: field, message: "\(field) must be 0..128 bytes of [A-Za-z0-9_./-]")
        }
    }

    public static func concurrencyKey(_ value: String, field: String = "concurrency_key") throws(ValidationError) {
        guard isConcurrencyKey(value) else {
            throw ValidationError(
                field: field,
                message: "\(field) must be 0..128 bytes of UTF-8 with no control characters, no '|' and no 0x1E"
            )
        }
    }

    public static func environmentType(_ value: EnvironmentType, field: String = "environment_type") throws(ValidationError) {
        guard value != .unspecified else {
            throw ValidationError(field: field, message: "\(field) must be DEVELOPMENT, STAGING, PREVIEW or PRODUCTION")
        }
    }

    /// 0 ... 999_999_999_999_999 (0 = now).
    public static func timestampMs(_ value: Int64, field: String = "timestamp_ms") throws(ValidationError) {
        guard value >= 0, value <= maxTimestampMs else {
            throw ValidationError(field: field, message: "\(field) must be 0..999999999999999 (Unix milliseconds, 0 = now)")
        }
    }

    /// Within ±(2^53 - 1).
    public static func priorityMs(_ value: Int64, field: String = "priority_ms") throws(ValidationError) {
        guard value >= -maxExactInteger, value <= maxExactInteger else {
            throw ValidationError(field: field, message: "\(field) must be within -9007199254740991..9007199254740991")
        }
    }

    /// The ordering score `timestampMs - priorityMs` of a run, checked to be
    /// exact as a double. Call it with the effective timestamp (the clock when
    /// `timestamp_ms` is 0) after `timestampMs` and `priorityMs` passed.
    public static func orderingScore(timestampMs: Int64, priorityMs: Int64) throws(ValidationError) -> Int64 {
        let (score, overflow) = timestampMs.subtractingReportingOverflow(priorityMs)
        guard !overflow, score >= -maxExactInteger, score <= maxExactInteger else {
            throw ValidationError(
                field: "priority_ms",
                message: "priority_ms puts the ordering time (timestamp_ms - priority_ms) outside -9007199254740991..9007199254740991"
            )
        }
        return score
    }

    /// Every field of a descriptor but `ttl` (parsed by the expiry module), in
    /// proto field order; the first failure is thrown.
    public static func runDescriptor(_ d: RunDescriptor) throws(ValidationError) {
        try identifier(d.runID, field: "run_id")
        try identifier(d.orgID, field: "org_id")
        try identifier(d.projectID, field: "project_id")
        try identifier(d.environmentID, field: "environment_id")
        try environmentType(d.environmentType)
        try queueName(d.queue)
        try concurrencyKey(d.concurrencyKey)
        try taskIdentifier(d.taskIdentifier)
        try identifier(d.workerQueue, field: "worker_queue")
        try timestampMs(d.timestampMs)
        try priorityMs(d.priorityMs)
        if d.timestampMs != 0 {
            _ = try orderingScore(timestampMs: d.timestampMs, priorityMs: d.priorityMs)
        }
    }
}
