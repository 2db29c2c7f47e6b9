// The TTL system's side of QueueStore: expiring the runs of one shard whose
// deadline passed (expire.lua), and the per-shard lease that lets one server
// instance at a time run a shard's expiry timer.
import RedisDriver

extension QueueStore {
    public struct ExpireResult: Sendable, Equatable {
        /// Runs expired by this call (each has an E entry in the outbox).
        public var expired: Int
        /// The shard's next TTL deadline (service-clock ms), nil when none.
        /// A value <= now means the batch ran out with work still due.
        public var nextDeadlineMs: Int64?
        /// The earliest deadline among the runs expired here (now minus it
        /// is how late the oldest one was), nil when none expired.
        public var oldestExpiredDeadlineMs: Int64?
        /// The shard's outbox length after the call: stream entries not yet in
        /// PostgreSQL (a claim's or an ack batch's entry carries many runs).
        public var outboxLength: Int

        public init(expired: Int, nextDeadlineMs: Int64?, oldestExpiredDeadlineMs: Int64?, outboxLength: Int) {
            self.expired = expired
            self.nextDeadlineMs = nextDeadlineMs
            self.oldestExpiredDeadlineMs = oldestExpiredDeadlineMs
            self.outboxLength = outboxLength
        }
    }

    /// Expires up to `batch` runs of `shard` whose TTL deadline is <= `now`.
    public func expire(shard: Int, now: Int64, batch: Int, _ completion: @escaping (Result<ExpireResult, QueueStoreError>) -> Void) {
        let tag = tag(shard: shard)
        redis.evalScript(scripts.expire, keys: [tag + ":ttlq", tag + ":outbox", tag + ":fin"],
                         args: [tag, String(now), String(max(1, batch))]) { result in
            switch result {
            case .success(.array(let p)) where p.count == 4:
                let next = p[1].int ?? -1
                let oldest = p[2].int ?? -1
                completion(.success(ExpireResult(expired: Int(p[0].int ?? 0), nextDeadlineMs: next >= 0 ? next : nil,
                                                 oldestExpiredDeadlineMs: oldest >= 0 ? oldest : nil,
                                                 outboxLength: Int(p[3].int ?? 0))))
            case .success(let other):
                completion(.failure(QueueStoreError(.internal, "expire script answered \(other)")))
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "expire runs")))
            }
        }
    }

    /// Takes or renews the expiry lease of `shard` for `owner` (SET NX PX,
    /// or PEXPIRE when `owner` already holds it). True when `owner` holds it.
    public func expiryLease(shard: Int, owner: String, ttlMs: Int64, _ completion: @escaping (Result<Bool, QueueStoreError>) -> Void) {
        redis.evalScript(scripts.expiryLease, keys: [tag(shard: shard) + ":ttllease"], args: ["take", owner, String(max(1, ttlMs))]) { result in
            completion(result.map { $0.int == 1 }.mapError { Self.map($0, doing: "take the expiry lease") })
        }
    }

    /// Gives the lease back if `owner` holds it (shutdown: another instance takes over at once).
    public func releaseExpiryLease(shard: Int, owner: String, _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        redis.evalScript(scripts.expiryLease, keys: [tag(shard: shard) + ":ttllease"], args: ["drop", owner]) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "release the expiry lease") })
        }
    }
}
