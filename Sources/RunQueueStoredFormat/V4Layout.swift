// V4Layout: our default stored format, which keeps no per-run key.
//
// A lane (environment | queue | worker queue | concurrency key) holds what
// its runs share once, in a lane record: org SEP project SEP environment type
// code SEP task identifier. A run costs only its sorted-set entries unless it
// differs from its lane; then a side value holds the differences:
// attempt SEP timestamp SEP priority SEP task identifier, each field empty
// when it has its default (0, derived from the sorted-set score, 0, the lane's
// task identifier). SEP is 0x1E, which no identifier, queue name or
// concurrency key may contain. The Lua scripts read and write the same
// layout (Sources/RunQueueStorage/Lua/lib.lua); these types are the Swift
// side of it, with strict decoding.
import RunQueueCore

public enum V4Layout {
    static let separator: Character = "\u{1E}"

    /// The lane id `E|Q|W|C`; '|' is forbidden in every part.
    public static func laneID(environmentID: String, queue: String, workerQueue: String, concurrencyKey: String) -> String {
        environmentID + "|" + queue + "|" + workerQueue + "|" + concurrencyKey
    }

    public struct Lane: Sendable, Equatable {
        public var environmentID: String
        public var queue: String
        public var workerQueue: String
        public var concurrencyKey: String

        public init(parsing laneID: String) throws(MessageLayoutError) {
            let parts = laneID.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
                throw MessageLayoutError("lane id \"\(laneID)\" is not environment|queue|worker queue|concurrency key")
            }
            environmentID = String(parts[0])
            queue = String(parts[1])
            workerQueue = String(parts[2])
            concurrencyKey = String(parts[3])
        }
    }

    public struct LaneRecord: Sendable, Equatable {
        public var orgID: String
        public var projectID: String
        public var environmentType: EnvironmentType
        public var taskIdentifier: String

        public init(orgID: String, projectID: String, environmentType: EnvironmentType, taskIdentifier: String) {
            self.orgID = orgID
            self.projectID = projectID
            self.environmentType = environmentType
            self.taskIdentifier = taskIdentifier
        }

        public var encoded: String {
            orgID + "\u{1E}" + projectID + "\u{1E}" + V4Layout.typeCode(environmentType) + "\u{1E}" + taskIdentifier
        }

        public init(parsing text: String) throws(MessageLayoutError) {
            let parts = text.split(separator: V4Layout.separator, omittingEmptySubsequences: false)
            guard parts.count == 4, !parts[0].isEmpty, !parts[1].isEmpty,
                  let type = V4Layout.environmentType(code: parts[2]) else {
                throw MessageLayoutError("lane record is not org SEP project SEP type SEP task")
            }
            orgID = String(parts[0])
            projectID = String(parts[1])
            environmentType = type
            taskIdentifier = String(parts[3])
        }
    }

    public struct SideValue: Sendable, Equatable {
        public var attempt: UInt32
        public var timestampMs: Int64?
        public var priorityMs: Int64
        public var taskIdentifier: String?

        public init(attempt: UInt32 = 0, timestampMs: Int64? = nil, priorityMs: Int64 = 0, taskIdentifier: String? = nil) {
            self.attempt = attempt
            self.timestampMs = timestampMs
            self.priorityMs = priorityMs
            self.taskIdentifier = taskIdentifier
        }

        /// "" when every field has its default (the run needs no side value).
        public var encoded: String {
            let a = attempt > 0 ? String(attempt) : ""
            let t = timestampMs.map { String($0) } ?? ""
            let p = priorityMs != 0 ? String(priorityMs) : ""
            let k = taskIdentifier ?? ""
            if a.isEmpty && t.isEmpty && p.isEmpty && k.isEmpty { return "" }
            return a + "\u{1E}" + t + "\u{1E}" + p + "\u{1E}" + k
        }

        public init(parsing text: String) throws(MessageLayoutError) {
            self.init()
            if text.isEmpty { return }
            let parts = text.split(separator: V4Layout.separator, omittingEmptySubsequences: false)
            guard parts.count == 4 else { throw MessageLayoutError("side value does not have 4 fields") }
            if !parts[0].isEmpty {
                guard let value = V4Layout.decimal(parts[0]), value >= 0, value <= Int64(UInt32.max) else {
                    throw MessageLayoutError("side value attempt is not a decimal")
                }
                attempt = UInt32(value)
            }
            if !parts[1].isEmpty {
                guard let value = V4Layout.decimal(parts[1]) else { throw MessageLayoutError("side value timestamp is not a decimal") }
                timestampMs = value
            }
            if !parts[2].isEmpty {
                guard let value = V4Layout.decimal(parts[2]) else { throw MessageLayoutError("side value priority is not a decimal") }
                priorityMs = value
            }
            if !parts[3].isEmpty { taskIdentifier = String(parts[3]) }
        }
    }

    /// Strict decimal: optional '-', 1..15 digits (Lua numbers are doubles).
    static func decimal(_ text: Substring) -> Int64? {
        var digits = text
        var negative = false
        if digits.first == "-" {
            negative = true
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.count <= 15, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }), let value = Int64(digits) else {
            return nil
        }
        return negative ? -value : value
    }

    public static func typeCode(_ type: EnvironmentType) -> String {
        switch type {
        case .development: "D"
        case .staging: "S"
        case .preview: "V"
        case .production: "P"
        case .unspecified: "?"
        }
    }

    public static func environmentType<S: StringProtocol>(code: S) -> EnvironmentType? {
        switch code {
        case "D": .development
        case "S": .staging
        case "V": .preview
        case "P": .production
        default: nil
        }
    }
}

/// A stored value that does not follow its layout.
public struct MessageLayoutError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
