/// A run as recorded in PostgreSQL (`runqueue.v1.RunRecord`), returned by `GetRun`:
/// the `RunMessage` fields plus its status and timestamps (Unix milliseconds, 0 =
/// not yet).
public struct RunRecord: Sendable, Equatable {
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
    public var status: RunStatus
    /// Duration string; empty = no TTL.
    public var ttl: String
    public var expiresAtMs: Int64
    public var createdAtMs: Int64
    public var updatedAtMs: Int64
    public var completedAtMs: Int64
    public var expiredAtMs: Int64

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
        leaseExpiresAtMs: Int64 = 0,
        status: RunStatus = .unspecified,
        ttl: String = "",
        expiresAtMs: Int64 = 0,
        createdAtMs: Int64 = 0,
        updatedAtMs: Int64 = 0,
        completedAtMs: Int64 = 0,
        expiredAtMs: Int64 = 0
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
        self.status = status
        self.ttl = ttl
        self.expiresAtMs = expiresAtMs
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
        self.completedAtMs = completedAtMs
        self.expiredAtMs = expiredAtMs
    }
}
