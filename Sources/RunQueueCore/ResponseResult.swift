/// The `result` oneof of a `Response`: one member per method, plus
/// `expiryEvent` for the events of a `SubscribeExpiry` stream.
public enum ResponseResult: Sendable, Equatable {
    case hello(HelloResponse)
    case ping(PingResponse)
    case enqueue(EnqueueResponse)
    case enqueueBatch(EnqueueBatchResponse)
    case dequeue(DequeueResponse)
    case ack(AckResponse)
    case nack(NackResponse)
    case heartbeat(HeartbeatResponse)
    case readMessage(ReadMessageResponse)
    case getRun(GetRunResponse)
    case queueStats(QueueStatsResponse)
    case setConcurrencyLimit(SetConcurrencyLimitResponse)
    case redrive(RedriveResponse)
    case subscribeExpiry(SubscribeExpiryResponse)
    case cancel(CancelResponse)
    case expiryEvent(ExpiryEvent)

    /// The protocol's method name this result answers (`"EnqueueBatch"`);
    /// `"SubscribeExpiry"` for stream events too.
    public var methodName: String {
        switch self {
        case .hello: "Hello"
        case .ping: "Ping"
        case .enqueue: "Enqueue"
        case .enqueueBatch: "EnqueueBatch"
        case .dequeue: "Dequeue"
        case .ack: "Ack"
        case .nack: "Nack"
        case .heartbeat: "Heartbeat"
        case .readMessage: "ReadMessage"
        case .getRun: "GetRun"
        case .queueStats: "QueueStats"
        case .setConcurrencyLimit: "SetConcurrencyLimit"
        case .redrive: "Redrive"
        case .subscribeExpiry, .expiryEvent: "SubscribeExpiry"
        case .cancel: "Cancel"
        }
    }
}
