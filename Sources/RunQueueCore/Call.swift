/// The `call` oneof of a `Request`: which method, with its arguments.
public enum Call: Sendable, Equatable {
    case hello(HelloRequest)
    case ping(PingRequest)
    case enqueue(EnqueueRequest)
    case enqueueBatch(EnqueueBatchRequest)
    case dequeue(DequeueRequest)
    case ack(AckRequest)
    case nack(NackRequest)
    case heartbeat(HeartbeatRequest)
    case readMessage(ReadMessageRequest)
    case getRun(GetRunRequest)
    case queueStats(QueueStatsRequest)
    case setConcurrencyLimit(SetConcurrencyLimitRequest)
    case redrive(RedriveRequest)
    case subscribeExpiry(SubscribeExpiryRequest)
    case cancel(CancelRequest)

    /// The protocol's method name (`"EnqueueBatch"`), for logs and metrics.
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
        case .subscribeExpiry: "SubscribeExpiry"
        case .cancel: "Cancel"
        }
    }
}
