/// One run that expired, as streamed by `SubscribeExpiry` (`runqueue.v1.ExpiryEvent`).
public struct ExpiryEvent: Sendable, Equatable {
    /// Strictly increasing position in the durable event log.
    public var cursor: UInt64
    public var runID: String
    public var orgID: String
    public var projectID: String
    public var environmentID: String
    public var environmentType: EnvironmentType
    public var queue: String
    public var concurrencyKey: String
    public var taskIdentifier: String
    public var ttl: String
    public var expiresAtMs: Int64
    public var expiredAtMs: Int64

    public init(
        cursor: UInt64 = 0,
        runID: String = "",
        orgID: String = "",
        projectID: String = "",
        environmentID: String = "",
        environmentType: EnvironmentType = .unspecified,
        queue: String = "",
        concurrencyKey: String = "",
        taskIdentifier: String = "",
        ttl: String = "",
        expiresAtMs: Int64 = 0,
        expiredAtMs: Int64 = 0
    ) {
        self.cursor = cursor
        self.runID = runID
        self.orgID = orgID
        self.projectID = projectID
        self.environmentID = environmentID
        self.environmentType = environmentType
        self.queue = queue
        self.concurrencyKey = concurrencyKey
        self.taskIdentifier = taskIdentifier
        self.ttl = ttl
        self.expiresAtMs = expiresAtMs
        self.expiredAtMs = expiredAtMs
    }
}
