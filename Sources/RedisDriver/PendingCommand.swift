/// One command waiting for its reply. Held by the connection's pending queue
/// (for timeouts and teardown) and, retained through `privdata`, by hiredis
/// until its reply callback. Whichever completes it first wins: `complete` runs
/// the completion at most once and drops it, so later calls are no-ops.
final class PendingCommand {
    /// Loop time (ms) after which the command counts as timed out.
    let deadlineMs: UInt64
    private var completion: ((Result<RedisValue, RedisError>) -> Void)?

    init(deadlineMs: UInt64, _ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        self.deadlineMs = deadlineMs
        self.completion = completion
    }

    var isDone: Bool { completion == nil }

    func complete(_ result: Result<RedisValue, RedisError>) {
        guard let completion else { return }
        self.completion = nil
        completion(result)
    }
}
