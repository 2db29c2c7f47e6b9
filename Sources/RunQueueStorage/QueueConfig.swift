import RunQueueCore

/// The queue's tunables, with the defaults listed in README.md "Configuration".
public struct QueueConfig: Sendable {
    /// Environment concurrency limit when none was set (trigger.dev's default 100).
    public var defaultEnvironmentLimit = 100
    /// Environment burst factor when none was set (cap = floor(limit x burst)).
    public var defaultBurstFactor = 1.0
    /// Lease when Dequeue / Heartbeat pass 0: 5 minutes.
    public var defaultLeaseMs: Int64 = 300_000
    public var backoff = NackBackoff()
    /// What new messages are written as: v4 (default), v2 or v3.
    public var messageFormat: MessageFormatChoice = .v4
    /// How many of the environments with the oldest due work compete in one
    /// claim (the fairness window).
    public var fairEnvironmentWindow = 64
    /// Lapses and promotions of delayed runs applied per script call.
    public var housekeepingBudget = 200
    /// Namespace inside every hash tag (`{<prefix>:rqN}`), so several
    /// deployments (or test runs) can share one Redis; "" = none.
    public var keyPrefix = ""
    /// The channel on which scripts announce wake-ups (fixed in Lua/lib.lua).
    public static let wakeChannel = "runqueue:wake"

    public init() {}
}

public enum MessageFormatChoice: String, Sendable, CaseIterable {
    case v2, v3, v4
}
