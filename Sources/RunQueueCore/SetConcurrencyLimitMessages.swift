/// The `SetConcurrencyLimit` call.
public struct SetConcurrencyLimitRequest: Sendable, Equatable {
    public var environmentID: String
    /// Empty = the environment.
    public var queue: String
    /// Required by the server; nil = neither member sent.
    public var value: LimitValue?
    /// Environment only; 0 = unchanged.
    public var burstFactor: Double

    public init(
        environmentID: String = "",
        queue: String = "",
        value: LimitValue? = nil,
        burstFactor: Double = 0
    ) {
        self.environmentID = environmentID
        self.queue = queue
        self.value = value
        self.burstFactor = burstFactor
    }
}

/// The answer to `SetConcurrencyLimit` (no fields).
public struct SetConcurrencyLimitResponse: Sendable, Equatable {
    public init() {}
}

/// The `value` oneof of `SetConcurrencyLimit`: set a cap, or clear it (a queue
/// loses its limit; an environment goes back to the defaults).
public enum LimitValue: Sendable, Equatable {
    case limit(UInt32)
    case clear
}

extension SetConcurrencyLimitRequest {
    public typealias LimitValue = RunQueueCore.LimitValue
}
