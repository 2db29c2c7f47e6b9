/// Which expiry events a `SubscribeExpiry` stream carries (`runqueue.v1.ExpiryFilter`);
/// an empty field matches everything.
public struct ExpiryFilter: Sendable, Equatable {
    public var orgID: String
    public var projectID: String
    public var environmentID: String
    public var queue: String

    public init(
        orgID: String = "",
        projectID: String = "",
        environmentID: String = "",
        queue: String = ""
    ) {
        self.orgID = orgID
        self.projectID = projectID
        self.environmentID = environmentID
        self.queue = queue
    }
}
