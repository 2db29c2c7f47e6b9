// QueueStore: the queue's Redis state machine, one Lua script per change.
//
// Every method maps to one script on one shard (see Lua/lib.lua for the key
// layout); a batch enqueue is one script call per shard it touches. Results
// are decoded here into domain values; Redis failures become UNAVAILABLE
// (INTERNAL for a script error, which is a bug). Loop thread only: the
// callbacks run on the loop of the Redis connection.
import Foundation
import RedisDriver
import RunQueueCore
import RunQueueStoredFormat

public final class QueueStore: @unchecked Sendable {
    public let redis: RedisConnection
    public let shards: ShardMap
    public let config: QueueConfig
    let scripts = QueueScripts.shared
    /// The deployment's epoch (recorded in PostgreSQL); claims on a shard
    /// whose T:epoch differs report it instead of claiming. Set at start.
    public var epoch = ""

    public init(redis: RedisConnection, shards: ShardMap, config: QueueConfig) {
        self.redis = redis
        self.shards = shards
        self.config = config
    }

    /// The hash tag of a shard's keys: `{rqN}`, or `{<prefix>:rqN}` with a key prefix.
    public func tag(shard: Int) -> String {
        let plain = shards.hashTag(shard: shard)
        return config.keyPrefix.isEmpty ? plain : "{" + config.keyPrefix + ":" + plain.dropFirst()
    }

    func tag(forEnvironment id: String) -> String { tag(shard: shards.shard(forEnvironment: id)) }

    /// The shard of a tag this store made, or nil.
    public func shard(fromTag tag: some StringProtocol) -> Int? {
        guard tag.hasSuffix("}"), let rq = tag.range(of: "rq", options: .backwards) else { return nil }
        guard let shard = Int(tag[rq.upperBound...].dropLast()), shard >= 0, shard < shards.shardCount,
              self.tag(shard: shard) == tag else { return nil }
        return shard
    }

    // MARK: enqueue

    /// A validated run ready to be stored: timestamp resolved (0 became the
    /// enqueue time) and the TTL deadline computed.
    public struct EnqueueItem: Sendable {
        public var run: RunDescriptor
        public var expiresAtMs: Int64?
        /// Failures so far: 0 for a new run; a rebuild from PostgreSQL
        /// restores the recorded attempt.
        public var attempt: UInt32

        public init(run: RunDescriptor, expiresAtMs: Int64?, attempt: UInt32 = 0) {
            self.run = run
            self.expiresAtMs = expiresAtMs
            self.attempt = attempt
        }
    }

    /// Most runs one script call takes (Lua's unpack of a script's arguments
    /// has a limit: a rebuild page may hold thousands of one shard's runs).
    static let maxRunsPerScript = 1000

    /// Each shard's list cut into script calls of at most `maxRunsPerScript`, in order.
    static func scriptCalls<T>(_ byShard: [Int: [T]]) -> [(shard: Int, list: [T])] {
        byShard.flatMap { shard, list in
            stride(from: 0, to: list.count, by: maxRunsPerScript).map { (shard, Array(list[$0..<min(list.count, $0 + maxRunsPerScript)])) }
        }
    }

    /// Adds runs, grouped into one script call per shard (and per
    /// `maxRunsPerScript` runs). The completion gets one result per item, in
    /// order: true = added, false = already present.
    public func enqueue(_ items: [EnqueueItem], now: Int64, redrive: Bool = false,
                        _ completion: @escaping ([Result<Bool, QueueStoreError>]) -> Void) {
        var byShard: [Int: [Int]] = [:]
        for (index, item) in items.enumerated() {
            byShard[shards.shard(forEnvironment: item.run.environmentID), default: []].append(index)
        }
        let calls = Self.scriptCalls(byShard)
        var results = [Result<Bool, QueueStoreError>](repeating: .failure(QueueStoreError(.internal, "not answered")), count: items.count)
        var pending = calls.count
        if pending == 0 { completion([]); return }
        for (shard, indexes) in calls {
            let tag = self.tag(shard: shard)
            var args: [[UInt8]] = [Array(tag.utf8), Array(String(now).utf8), Array((redrive ? "redrive" : "").utf8)]
            args.reserveCapacity(3 + indexes.count * 8)
            for index in indexes { appendEnqueueArgs(items[index], to: &args) }
            redis.evalScript(scripts.enqueue, keys: [Array((tag + ":due").utf8), Array((tag + ":inflight").utf8)], args: args) { result in
                switch result {
                case .success(.array(let flags)) where flags.count == indexes.count:
                    for (flag, index) in zip(flags, indexes) { results[index] = .success(flag.int == 1) }
                case .success(let other):
                    for index in indexes { results[index] = .failure(QueueStoreError(.internal, "enqueue script answered \(other)")) }
                case .failure(let error):
                    for index in indexes { results[index] = .failure(Self.map(error, doing: "enqueue")) }
                }
                pending -= 1
                if pending == 0 { completion(results) }
            }
        }
    }

    private func appendEnqueueArgs(_ item: EnqueueItem, to args: inout [[UInt8]]) {
        let run = item.run
        let laneID = V4Layout.laneID(environmentID: run.environmentID, queue: run.queue,
                                     workerQueue: run.workerQueue, concurrencyKey: run.concurrencyKey)
        let record = V4Layout.LaneRecord(orgID: run.orgID, projectID: run.projectID,
                                         environmentType: run.environmentType, taskIdentifier: run.taskIdentifier)
        let side: String
        let message: [UInt8]
        switch config.messageFormat {
        case .v4:
            side = V4Layout.SideValue(attempt: item.attempt, timestampMs: item.attempt > 0 ? run.timestampMs : nil,
                                      priorityMs: run.priorityMs).encoded
            message = []
        case .v2, .v3:
            side = run.priorityMs != 0 || item.attempt > 0
                ? V4Layout.SideValue(attempt: item.attempt, timestampMs: run.timestampMs, priorityMs: run.priorityMs).encoded : ""
            message = StoredMessageCodec.encode(run, expiresAtMs: item.expiresAtMs, format: config.messageFormat)
        }
        args.append(Array(run.runID.utf8))
        args.append(Array(laneID.utf8))
        args.append(Array(record.encoded.utf8))
        args.append(Array(String(run.timestampMs - run.priorityMs).utf8))
        args.append(Array(String(run.timestampMs).utf8))
        args.append(Array(side.utf8))
        args.append(message)
        args.append(item.expiresAtMs.map { Array(String($0).utf8) } ?? [])
    }

    // MARK: claim

    public struct ClaimResult: Sendable {
        /// False when the shard's epoch did not match: its state must be
        /// rebuilt from PostgreSQL first (nothing was claimed).
        public var epochMatched = true
        public var messages: [RunMessage]
        /// When this shard next has something coming due (a delayed run, a
        /// lease deadline), in service-clock ms; nil if nothing is pending.
        public var nextWakeMs: Int64?
    }

    public func claim(shard: Int, workerQueue: String, count: Int, leaseDeadlineMs: Int64, now: Int64, seed: UInt64,
                      _ completion: @escaping (Result<ClaimResult, QueueStoreError>) -> Void) {
        let tag = self.tag(shard: shard)
        let keys = [tag + ":wq:" + workerQueue, tag + ":due", tag + ":leases", tag + ":inflight"].map { Array($0.utf8) }
        let args: [String] = [
            tag, workerQueue, String(now), String(count), String(leaseDeadlineMs),
            String(config.defaultEnvironmentLimit), String(config.defaultBurstFactor), String(seed % 1_000_000_007),
            String(config.fairEnvironmentWindow), String(config.backoff.maxAttempts), String(config.housekeepingBudget),
            epoch,
        ]
        redis.evalScript(scripts.claim, keys: keys, args: args.map { Array($0.utf8) }) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "dequeue")))
            case .success(.array(let parts)) where parts.count == 1 && parts[0].int == -2:
                completion(.success(ClaimResult(epochMatched: false, messages: [], nextWakeMs: nil)))
            case .success(let value):
                do {
                    completion(.success(try ClaimDecoder.decode(value, leaseDeadlineMs: leaseDeadlineMs)))
                } catch {
                    completion(.failure(QueueStoreError(.internal, "claim script answered in an unexpected shape: \(error)")))
                }
            }
        }
    }

    /// Puts claimed runs that were never delivered back (no extra attempt).
    public func release(shard: Int, runIDs: [String], now: Int64, _ completion: @escaping (Result<Int, QueueStoreError>) -> Void) {
        let tag = self.tag(shard: shard)
        let args = [tag, String(now), String(config.backoff.maxAttempts)] + runIDs
        redis.evalScript(scripts.release, keys: [tag + ":inflight", tag + ":leases"], args: args) { result in
            completion(result.map { Int($0.int ?? 0) }.mapError { Self.map($0, doing: "release") })
        }
    }

    /// Applies due lease lapses on one shard; returns the shard's next wake time.
    public func lapse(shard: Int, now: Int64, _ completion: @escaping (Result<Int64?, QueueStoreError>) -> Void) {
        let tag = self.tag(shard: shard)
        let args = [tag, String(now), String(config.backoff.maxAttempts), String(config.housekeepingBudget)]
        redis.evalScript(scripts.lapse, keys: [tag + ":leases"], args: args) { result in
            switch result {
            case .success(.array(let parts)) where parts.count == 2:
                let wake = parts[1].int ?? -1
                completion(.success(wake >= 0 ? wake : nil))
            case .success(let other):
                completion(.failure(QueueStoreError(.internal, "lapse script answered \(other)")))
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "lapse")))
            }
        }
    }

    // MARK: ack / nack / heartbeat

    public enum FencedOutcome<Value: Sendable>: Sendable {
        case done(Value)
        case notInFlight
        case fenceMismatch(currentAttempt: UInt32)
    }

    /// What an ack did: completed the run now, or found it completed and
    /// still finishing (a retry fenced at that attempt); either way
    /// `entryID` is the outbox entry PostgreSQL must apply before the answer.
    public struct AckResult: Sendable, Equatable {
        public var entryID: String
        public var attempt: UInt32?
        public var alreadyCompleted: Bool
        /// The C entry this call appended (nil for a retry of an earlier
        /// ack): what the applier writes, known without reading the stream.
        public var entry: OutboxEntry?
    }

    private func fenced(_ script: RedisScript, runID: String, environmentID: String, fence: UInt32?, now: Int64,
                        extra: [String], doing: String,
                        _ completion: @escaping (Result<FencedOutcome<[RedisValue]>, QueueStoreError>) -> Void) {
        let tag = tag(forEnvironment: environmentID)
        let args = [tag, runID, environmentID, fence.map(String.init) ?? "", String(now), String(config.backoff.maxAttempts)] + extra
        redis.evalScript(script, keys: [tag + ":inflight", tag + ":leases"], args: args) { result in
            switch result {
            case .success(.array(let parts)) where !parts.isEmpty:
                switch parts[0].int {
                case 1: completion(.success(.done(Array(parts.dropFirst()))))
                case 2: completion(.success(.done(parts)))
                case 0: completion(.success(.notInFlight))
                case -1: completion(.success(.fenceMismatch(currentAttempt: UInt32(parts.count > 1 ? parts[1].int ?? 0 : 0))))
                default: completion(.failure(QueueStoreError(.internal, "\(doing) script answered \(parts)")))
                }
            case .success(let other):
                completion(.failure(QueueStoreError(.internal, "\(doing) script answered \(other)")))
            case .failure(let error):
                completion(.failure(Self.map(error, doing: doing)))
            }
        }
    }

    /// One run to ack in a batch.
    public struct AckItem: Sendable {
        public var runID: String
        public var environmentID: String
        public var fence: UInt32?

        public init(runID: String, environmentID: String, fence: UInt32?) {
            self.runID = runID
            self.environmentID = environmentID
            self.fence = fence
        }
    }

    public func ack(runID: String, environmentID: String, fence: UInt32?, now: Int64,
                    _ completion: @escaping (Result<FencedOutcome<AckResult>, QueueStoreError>) -> Void) {
        ack([AckItem(runID: runID, environmentID: environmentID, fence: fence)], now: now) { results in
            completion(results.first ?? .failure(QueueStoreError(.internal, "ack produced no result")))
        }
    }

    /// Acks many runs: one script call per shard they touch, each run checked
    /// on its own. The completion gets one result per item, in order.
    public func ack(_ items: [AckItem], now: Int64,
                    _ completion: @escaping ([Result<FencedOutcome<AckResult>, QueueStoreError>]) -> Void) {
        var byShard: [Int: [Int]] = [:]
        for (index, item) in items.enumerated() {
            byShard[shards.shard(forEnvironment: item.environmentID), default: []].append(index)
        }
        var results = [Result<FencedOutcome<AckResult>, QueueStoreError>](
            repeating: .failure(QueueStoreError(.internal, "not answered")), count: items.count)
        var pending = byShard.count
        if pending == 0 { completion([]); return }
        for (shard, indexes) in byShard {
            let tag = self.tag(shard: shard)
            var args: [[UInt8]] = [Array(tag.utf8), Array(String(now).utf8), Array(String(config.backoff.maxAttempts).utf8)]
            args.reserveCapacity(3 + indexes.count * 3)
            for index in indexes {
                let item = items[index]
                args.append(Array(item.runID.utf8))
                args.append(Array(item.environmentID.utf8))
                args.append(item.fence.map { Array(String($0).utf8) } ?? [])
            }
            redis.evalScript(scripts.ack, keys: [Array((tag + ":inflight").utf8), Array((tag + ":leases").utf8)], args: args) { result in
                switch result {
                case .success(.array(let answers)) where answers.count == indexes.count:
                    for (answer, index) in zip(answers, indexes) {
                        results[index] = Self.decodeAck(answer, runID: items[index].runID, fence: items[index].fence, now: now)
                    }
                case .success(let other):
                    for index in indexes { results[index] = .failure(QueueStoreError(.internal, "ack script answered \(other)")) }
                case .failure(let error):
                    for index in indexes { results[index] = .failure(Self.map(error, doing: "ack")) }
                }
                pending -= 1
                if pending == 0 { completion(results) }
            }
        }
    }

    private static func decodeAck(_ answer: RedisValue, runID: String, fence: UInt32?, now: Int64) -> Result<FencedOutcome<AckResult>, QueueStoreError> {
        guard let parts = answer.array, !parts.isEmpty else {
            return .failure(QueueStoreError(.internal, "ack script answered \(answer)"))
        }
        switch parts[0].int {
        case 1 where parts.count == 3:
            let id = parts[1].string ?? ""
            let attempt = UInt32(parts[2].int ?? 0)
            let entry = OutboxEntry(id: id, op: .completed, runID: runID, attempt: attempt, timeMs: now)
            return .success(.done(AckResult(entryID: id, attempt: attempt, alreadyCompleted: false, entry: entry)))
        case 2 where parts.count == 3:
            // Completed and still finishing. Only a retry fenced at that
            // attempt answers as the first call did (docs/durability.md); an
            // unfenced repeat is an ack of a run no longer in flight
            // (docs/protocol.md, "Ack"),
            // however soon after the first answer it comes.
            let attempt = UInt32(parts[1].int ?? 0)
            guard let fence else { return .success(.notInFlight) }
            if fence != attempt { return .success(.fenceMismatch(currentAttempt: attempt)) }
            return .success(.done(AckResult(entryID: parts[2].string ?? "", attempt: attempt, alreadyCompleted: true)))
        case 0:
            return .success(.notInFlight)
        case -1:
            return .success(.fenceMismatch(currentAttempt: UInt32(parts.count > 1 ? parts[1].int ?? 0 : 0)))
        default:
            return .failure(QueueStoreError(.internal, "ack script answered \(parts)"))
        }
    }

    public struct NackResult: Sendable, Equatable {
        public var attempt: UInt32
        public var deadLettered: Bool
        /// The outbox entry PostgreSQL must apply before the answer.
        public var entryID: String

        public init(attempt: UInt32, deadLettered: Bool, entryID: String = "") {
            self.attempt = attempt
            self.deadLettered = deadLettered
            self.entryID = entryID
        }
    }

    public func nack(runID: String, environmentID: String, fence: UInt32?, retryAtMs: Int64, keepAttempt: Bool,
                     now: Int64, random: Double,
                     _ completion: @escaping (Result<FencedOutcome<NackResult>, QueueStoreError>) -> Void) {
        let b = config.backoff
        let extra = [String(retryAtMs), keepAttempt ? "1" : "0", String(b.factor), String(b.minMs), String(b.maxMs),
                     String(1 + min(max(random, 0), 0.999_999))]
        fenced(scripts.nack, runID: runID, environmentID: environmentID, fence: fence, now: now, extra: extra, doing: "nack") { result in
            completion(result.map { outcome in
                switch outcome {
                case .done(let parts):
                    .done(NackResult(attempt: UInt32(parts.first?.int ?? 0), deadLettered: parts.count > 1 && parts[1].int == 1,
                                     entryID: parts.count > 2 ? parts[2].string ?? "" : ""))
                case .notInFlight: .notInFlight
                case .fenceMismatch(let attempt): .fenceMismatch(currentAttempt: attempt)
                }
            })
        }
    }

    public func heartbeat(runID: String, environmentID: String, fence: UInt32?, leaseDeadlineMs: Int64, now: Int64,
                          _ completion: @escaping (Result<FencedOutcome<Int64>, QueueStoreError>) -> Void) {
        fenced(scripts.heartbeat, runID: runID, environmentID: environmentID, fence: fence, now: now,
               extra: [String(leaseDeadlineMs)], doing: "heartbeat") { result in
            completion(result.map { outcome in
                switch outcome {
                case .done(let parts): .done(parts.first?.int ?? leaseDeadlineMs)
                case .notInFlight: .notInFlight
                case .fenceMismatch(let attempt): .fenceMismatch(currentAttempt: attempt)
                }
            })
        }
    }

    // MARK: redrive / limits / stats / read

    public enum LimitChange: Sendable, Equatable {
        case set(limit: UInt32, burstFactor: Double)
        case clear
    }

    public func setLimit(environmentID: String, queue: String, change: LimitChange, _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        let tag = tag(forEnvironment: environmentID)
        let args: [String]
        switch change {
        case .set(let limit, let burst): args = [tag, environmentID, queue, "set", String(limit), String(burst)]
        case .clear: args = [tag, environmentID, queue, "clear", "0", "0"]
        }
        redis.evalScript(scripts.limits, keys: [tag + ":due"], args: args) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "set the limit") })
        }
    }

    public func stats(environmentID: String, queue: String, concurrencyKey: String, now: Int64,
                      _ completion: @escaping (Result<QueueStatsResponse, QueueStoreError>) -> Void) {
        let tag = tag(forEnvironment: environmentID)
        let args = [tag, environmentID, queue, concurrencyKey, String(now), String(config.defaultEnvironmentLimit),
                    String(config.defaultBurstFactor), String(config.backoff.maxAttempts)]
        redis.evalScript(scripts.stats, keys: [tag + ":leases"], args: args) { result in
            switch result {
            case .success(.array(let p)) where p.count == 5:
                let oldest = p[3].int ?? -1
                completion(.success(QueueStatsResponse(
                    length: UInt64(max(0, p[0].int ?? 0)), due: UInt64(max(0, p[1].int ?? 0)),
                    inFlight: UInt64(max(0, p[2].int ?? 0)),
                    oldestAgeMs: oldest >= 0 ? max(0, now - oldest) : 0,
                    concurrencyLimit: UInt32(clamping: p[4].int ?? 0))))
            case .success(let other):
                completion(.failure(QueueStoreError(.internal, "stats script answered \(other)")))
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read stats")))
            }
        }
    }

    public enum RunState: String, Sendable {
        case inFlight = "F", due = "R", delayed = "D"
    }

    public struct FoundRun: Sendable {
        public var state: RunState
        public var message: RunMessage
        public var source: MessageSource
        public var expiresAtMs: Int64?
    }

    public func read(runID: String, environmentID: String, now: Int64, _ completion: @escaping (Result<FoundRun?, QueueStoreError>) -> Void) {
        let tag = tag(forEnvironment: environmentID)
        let args = [tag, runID, environmentID, String(now), String(config.backoff.maxAttempts)]
        redis.evalScript(scripts.read, keys: [tag + ":inflight"], args: args) { result in
            switch result {
            case .success(.array(let p)) where p.isEmpty:
                completion(.success(nil))
            case .success(.array(let p)) where p.count == 9:
                do {
                    completion(.success(try ClaimDecoder.decodeRead(runID: runID, parts: p)))
                } catch {
                    completion(.failure(QueueStoreError(.internal, "stored run \(runID) is unreadable: \(error)")))
                }
            case .success(let other):
                completion(.failure(QueueStoreError(.internal, "read script answered \(other)")))
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read the run")))
            }
        }
    }

    static func map(_ error: RedisError, doing: String) -> QueueStoreError {
        switch error.code {
        case .replyError, .protocolError:
            QueueStoreError(.internal, "Redis refused to \(doing): \(error.message)")
        case .notConnected, .connectFailed, .disconnected, .closed, .invalidConfig:
            QueueStoreError(.unavailable, "Redis is unavailable, could not \(doing): \(error.message)")
        case .timeout:
            QueueStoreError(.unavailable, "Redis did not answer in time, the \(doing) may or may not have happened; retry")
        }
    }
}
