/// What a client enqueues (`runqueue.v1.RunDescriptor`). Values are carried as
/// received; the server validates identifiers and the TTL (docs/protocol.md,
/// "Field rules").
public struct RunDescriptor: Sendable, Equatable {
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
    /// Ordering time, Unix milliseconds; 0 = now.
    public var timestampMs: Int64
    /// Subtracted from the ordering time.
    public var priorityMs: Int64
    /// Duration string (`"30m"`); empty = no TTL.
    public var ttl: String

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
        priorityMs: Int64 = 0,
        ttl: String = ""
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
        self.priorityMs = priorityMs
        self.ttl = ttl
    }
}
