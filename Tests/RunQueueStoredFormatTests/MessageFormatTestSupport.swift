import RunQueueCore
import RunQueueStoredFormat

/// Seeded values for the stored-format property tests: a fixed seed gives the
/// same inputs on every run and machine.
struct MessageFormatRandom {
    /// SplitMix64.
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    mutating func bool() -> Bool { next() & 1 == 1 }

    mutating func pick<T>(_ values: [T]) -> T { values[int(0...values.count - 1)] }

    private static let identifierBytes = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-".utf8)

    /// Lengths favour the edges (1 and 128) as much as the middle.
    private mutating func length(min: Int) -> Int {
        switch int(0...3) {
        case 0: min
        case 1: 128
        default: int(min...128)
        }
    }

    mutating func identifier() -> String {
        String(decoding: (0..<length(min: 1)).map { _ in pick(Self.identifierBytes) }, as: UTF8.self)
    }

    mutating func queueName() -> String {
        let bytes = Self.identifierBytes + [UInt8(ascii: "/")]
        return String(decoding: (0..<length(min: 1)).map { _ in pick(bytes) }, as: UTF8.self)
    }

    mutating func taskIdentifier() -> String {
        let bytes = Self.identifierBytes + [UInt8(ascii: "/")]
        return String(decoding: (0..<length(min: 0)).map { _ in pick(bytes) }, as: UTF8.self)
    }

    /// Pieces that stress the key grammar and JSON escaping; all allowed in a concurrency key.
    private static let concurrencyKeyPieces = [
        ":", ":ck:", "ck", "{org:", "}", "queue:", "a", "Z", "9", " ", "\"", "\\", "/", "'", "{", "[", "é", "日本", "🎉",
        "\u{A0}", "\u{2028}", "\u{FFFD}", "\u{7E}", "v3:", "null", "-", "_",
    ]

    /// A concurrency key of at most 128 bytes; empty (none) a quarter of the time.
    mutating func concurrencyKey() -> String {
        if int(0...3) == 0 { return "" }
        let target = int(1...128)
        var key = ""
        while true {
            let piece = pick(Self.concurrencyKeyPieces)
            if key.utf8.count + piece.utf8.count > target { break }
            key += piece
        }
        return key.isEmpty ? "k" : key
    }

    mutating func environmentType() -> EnvironmentType {
        pick([.development, .staging, .preview, .production])
    }

    mutating func time() -> Int64 {
        switch int(0...3) {
        case 0: 0
        case 1: 999_999_999_999_999
        default: Int64(next() % 1_000_000_000_000_000)
        }
    }

    mutating func attempt() -> UInt32 {
        switch int(0...3) {
        case 0: 0
        case 1: .max
        default: UInt32(truncatingIfNeeded: next() % 20)
        }
    }

    mutating func queueKey() -> LogicalQueueKey {
        LogicalQueueKey(orgID: identifier(), projectID: identifier(), environmentID: identifier(),
                        queue: queueName(), concurrencyKey: concurrencyKey())
    }

    mutating func storedMessage(withTTL: Bool? = nil) -> StoredMessage {
        let ttl = withTTL ?? bool()
        return StoredMessage(
            runID: identifier(), orgID: identifier(), projectID: identifier(), environmentID: identifier(),
            environmentType: environmentType(), queue: queueName(), concurrencyKey: concurrencyKey(),
            taskIdentifier: taskIdentifier(), workerQueue: identifier(), timestampMs: time(),
            attempt: attempt(), ttlExpiresAtMs: ttl ? time() : nil
        )
    }
}

/// The run the golden vectors describe.
enum MessageFormatSamples {
    /// PRODUCTION, no concurrency key, no TTL, attempt 0.
    static let plain = StoredMessage(
        runID: "run_1234", orgID: "org_1", projectID: "proj_1", environmentID: "env_1",
        environmentType: .production, queue: "task/send-email", concurrencyKey: "",
        taskIdentifier: "send-email", workerQueue: "main", timestampMs: 1_700_000_000_000,
        attempt: 0, ttlExpiresAtMs: nil
    )

    /// DEVELOPMENT, concurrency key with a `:` in it, a TTL, attempt 3.
    static let keyed = StoredMessage(
        runID: "run_5678", orgID: "org_1", projectID: "proj_1", environmentID: "env_1",
        environmentType: .development, queue: "task/send-email", concurrencyKey: "user:42",
        taskIdentifier: "send-email", workerQueue: "env_1", timestampMs: 1_700_000_000_000,
        attempt: 3, ttlExpiresAtMs: 1_700_000_600_000
    )

    static let plainV2 = #"{"version":"2","runId":"run_1234","taskIdentifier":"send-email","orgId":"org_1","projectId":"proj_1","environmentId":"env_1","environmentType":"PRODUCTION","queue":"{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email","timestamp":1700000000000,"attempt":0,"workerQueue":"main"}"#

    static let keyedV2 = #"{"version":"2","runId":"run_5678","taskIdentifier":"send-email","orgId":"org_1","projectId":"proj_1","environmentId":"env_1","environmentType":"DEVELOPMENT","queue":"{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email:ck:user:42","concurrencyKey":"user:42","timestamp":1700000000000,"attempt":3,"workerQueue":"env_1","ttlExpiresAt":1700000600000}"#

    static let plainV3 = "v3:{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email\u{1E}1700000000000\u{1E}0\u{1E}P\u{1E}main"

    static let keyedV3 = "v3:{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email:ck:user:42\u{1E}1700000000000\u{1E}3\u{1E}D\u{1E}env_1"
}

extension String {
    var utf8Bytes: [UInt8] { Array(utf8) }
}
