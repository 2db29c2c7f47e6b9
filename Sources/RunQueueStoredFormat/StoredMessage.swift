// StoredMessage: the per-run message as the V2 and V3 formats hold it in
// Redis, and the dual read that accepts either.
//
// What: the fields of a queued run that a stored message carries, decoupled
// from how they are spelled (`MessageFormatV2` JSON, `MessageFormatV3`
// compact). V4 (ours) keeps these fields in per-queue records instead and
// lives with the storage module.
//
// Invariants:
// - A StoredMessage that came out of a decoder passes `Validation` in every
//   field (ids, queue name, concurrency key, task identifier, worker queue,
//   environment type), its timestamp is 0 ..< 10^15, and its queue key's
//   org / project / environment equal the message's.
// - The encoders expect the same of what they are given (the API edge
//   validated it); `encode(decode(x))` is byte-exact for what our encoders
//   wrote, and `decode(encode(m)) == m` for every valid `m` (V3: with
//   `ttlExpiresAtMs == nil`, which V3 cannot carry).
// - The run id and task identifier of a V3 message come from the caller (the
//   key the message was read from, the queue's record or the run's row): never
//   from the queue name (trigger.dev's bug) and never defaulted to "" (its
//   other bug); a missing or invalid one is an error.
// Why a separate type rather than RunMessage: RunMessage is the wire view
// (lease deadline, no TTL); this is the storage view (TTL, no lease).

import RunQueueCore

public struct StoredMessage: Sendable, Equatable {
    public var runID: String
    public var orgID: String
    public var projectID: String
    public var environmentID: String
    public var environmentType: EnvironmentType
    /// The queue name (not the logical queue key; see `queueKey`).
    public var queue: String
    /// `""` = none.
    public var concurrencyKey: String
    public var taskIdentifier: String
    public var workerQueue: String
    /// The enqueued ordering time, Unix milliseconds.
    public var timestampMs: Int64
    /// Failures so far.
    public var attempt: UInt32
    /// The absolute TTL deadline, Unix milliseconds; nil = no TTL.
    public var ttlExpiresAtMs: Int64?

    public init(
        runID: String,
        orgID: String,
        projectID: String,
        environmentID: String,
        environmentType: EnvironmentType,
        queue: String,
        concurrencyKey: String = "",
        taskIdentifier: String,
        workerQueue: String,
        timestampMs: Int64,
        attempt: UInt32 = 0,
        ttlExpiresAtMs: Int64? = nil
    ) {
        self.runID = runID
        self.orgID = orgID
        self.projectID = projectID
        self.environmentID = environmentID
        self.environmentType = environmentType
        self.queue = queue
        self.concurrencyKey = concurrencyKey
        self.taskIdentifier = taskIdentifier
        self.workerQueue = workerQueue
        self.timestampMs = timestampMs
        self.attempt = attempt
        self.ttlExpiresAtMs = ttlExpiresAtMs
    }

    /// The logical queue key V2 and V3 store in their `queue` field.
    public var queueKey: LogicalQueueKey {
        LogicalQueueKey(orgID: orgID, projectID: projectID, environmentID: environmentID,
                        queue: queue, concurrencyKey: concurrencyKey)
    }

    /// The wire view of this run, leased until `leaseExpiresAtMs` (0 = not leased).
    public func runMessage(leaseExpiresAtMs: Int64) -> RunMessage {
        RunMessage(
            runID: runID, orgID: orgID, projectID: projectID, environmentID: environmentID,
            environmentType: environmentType, queue: queue, concurrencyKey: concurrencyKey,
            taskIdentifier: taskIdentifier, workerQueue: workerQueue, timestampMs: timestampMs,
            attempt: attempt, leaseExpiresAtMs: leaseExpiresAtMs
        )
    }

    /// Whether every field meets the rules the decoders enforce (what the
    /// encoders assume; checked in debug builds).
    public var isEncodable: Bool {
        Validation.isIdentifier(runID) && Validation.isIdentifier(orgID) && Validation.isIdentifier(projectID)
            && Validation.isIdentifier(environmentID) && environmentType != .unspecified
            && Validation.isQueueName(queue) && Validation.isConcurrencyKey(concurrencyKey)
            && Validation.isTaskIdentifier(taskIdentifier) && Validation.isIdentifier(workerQueue)
            && Self.isStoredTime(timestampMs) && (ttlExpiresAtMs.map(Self.isStoredTime) ?? true)
    }

    /// 0 ..< 10^15: a non-negative time of at most 15 digits.
    static func isStoredTime(_ ms: Int64) -> Bool {
        ms >= 0 && ms < 1_000_000_000_000_000
    }

    // MARK: Dual read

    /// Decodes a message in whichever format it was written, and says which.
    ///
    /// - Parameters:
    ///   - runID: the run the message was read for (from its key). A V2
    ///     message must carry the same `runId`; a V3 message carries none and
    ///     takes this one.
    ///   - taskIdentifier: from the queue's record or the run's row. Required
    ///     for V3 (which carries none); for V2 used only when the JSON lacks
    ///     `taskIdentifier` (newer trigger.dev versions may leave it out).
    public static func decode(
        _ bytes: [UInt8], runID: String, taskIdentifier: String?
    ) throws(MessageFormatError) -> (StoredMessage, StoredFormat) {
        switch StoredFormat.detect(bytes) {
        case .v3:
            guard let taskIdentifier else {
                throw MessageFormatError(
                    .missingField, field: "taskIdentifier",
                    "taskIdentifier must be supplied for a V3 message (from the queue's record or the run's row)"
                )
            }
            let partial = try MessageFormatV3.decode(bytes)
            return (try partial.storedMessage(runID: runID, taskIdentifier: taskIdentifier), .v3)
        case .v2:
            let message = try MessageFormatV2.decode(bytes, taskIdentifierFallback: taskIdentifier)
            guard message.runID == runID else {
                throw MessageFormatError(.mismatch, field: "runId", "runId in the message differs from the run it was read for")
            }
            return (message, .v2)
        case nil:
            throw MessageFormatError(.unknownFormat, field: nil, "stored message is neither V3 (\"v3:\") nor V2 (a JSON object)")
        }
    }
}

/// Which encoding a stored message value uses.
public enum StoredFormat: Sendable, Equatable, CaseIterable {
    /// JSON (`version` "2", or legacy "1").
    case v2
    /// `v3:` compact.
    case v3

    /// V3 iff the bytes start with `v3:`; V2 iff they start with `{`; else nil.
    /// (A JSON object cannot start with `v`, so the two never overlap.)
    public static func detect(_ bytes: [UInt8]) -> StoredFormat? {
        if bytes.count >= 3, bytes[0] == UInt8(ascii: "v"), bytes[1] == UInt8(ascii: "3"), bytes[2] == UInt8(ascii: ":") {
            return .v3
        }
        if bytes.first == UInt8(ascii: "{") { return .v2 }
        return nil
    }

    /// What `ReadMessage` reports for a message found in this format.
    public var messageSource: MessageSource {
        switch self {
        case .v2: .redisV2
        case .v3: .redisV3
        }
    }
}
