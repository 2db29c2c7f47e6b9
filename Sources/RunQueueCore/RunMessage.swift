/// A run as delivered to a worker (`runqueue.v1.RunMessage`): by `Dequeue`, or by
/// `ReadMessage`.
public struct RunMessage: Sendable, Equatable {
    public var runID: String
    public var orgID: String
    public var projectID: String
    public var environmentID: String
    public var environmentType: EnvironmentType
    /// The queue name.
    public var queue: String
    /// Empty = none.
    public var concurrencyKey: String
    public var taskIdentifier: String
    public var workerQueue: String
    /// Ordering time, Unix milliseconds.
    public var timestampMs: Int64
    /// Failures so far (0 on the first delivery).
    public var attempt: UInt32
    /// When the current lease lapses, Unix milliseconds; 0 when not leased.
    public var leaseExpiresAtMs: Int64

    public init(
        runID: String = "",
        orgID: String = "",
        projectID: String = "",
        environmentID: String = "",
        environmentType: EnvironmentType = .unspecified,
        queue: String = "",
        concurrencyKey: String = "",
        taskIdentifier: String = "",
        workerQueue: String = "",
        timestampMs: Int64 = 0,
        attempt: UInt32 = 0,
        leaseExpiresAtMs: Int64 = 0
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
        self.leaseExpiresAtMs = leaseExpiresAtMs
    }
}
