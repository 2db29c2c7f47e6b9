// The outbox side of QueueStore: reading a shard's unapplied entries,
// acknowledging the applied ones, and pausing lapses while the outbox cannot
// drain. See OutboxApplier for who calls these.
import RedisDriver
import RunQueueCore
import RunQueueStoredFormat

/// One change waiting for PostgreSQL.
public struct OutboxEntry: Sendable, Equatable {
    public enum Op: String, Sendable {
        /// Dequeued (claimed) at `attempt`.
        case dequeued = "D"
        /// Back in the queue (nack, lapse, release) with `attempt`.
        case queued = "Q"
        case completed = "C"
        case deadLettered = "X"
        case expired = "E"
    }

    public let id: String
    /// The smallest entry id after `id` (`ms-(seq+1)`): trimming below it
    /// keeps everything written after that entry.
    public static func successorID(of id: String) -> String {
        guard let dash = id.firstIndex(of: "-"), let seq = UInt64(id[id.index(after: dash)...]) else { return id }
        return String(id[..<dash]) + "-" + String(seq &+ 1)
    }

    /// The entry's position as one number (`ms * 10^6 + sequence`), which
    /// orders entries of one shard; rows remember the last one applied.
    public let sequence: Int64
    public var op: Op
    public var runID: String
    public var attempt: UInt32
    public var timeMs: Int64
    /// The shard's sequence (T:seq) after this entry; 0 when not known (an
    /// entry built from a script's answer rather than read from the stream).
    public var shardSequence: Int64

    public init(id: String, op: Op, runID: String, attempt: UInt32, timeMs: Int64, shardSequence: Int64 = 0) {
        self.id = id
        self.sequence = Self.sequence(ofEntryID: id)
        self.op = op
        self.runID = runID
        self.attempt = attempt
        self.timeMs = timeMs
        self.shardSequence = shardSequence
    }

    public static func sequence(ofEntryID id: String) -> Int64 {
        // "ms-seq", digits only; anything else is 0 (no stream writes such an id).
        var ms: Int64 = 0, n: Int64 = 0, dashes = 0, digits = 0  // digits of the current part; 18 cannot overflow
        for byte in id.utf8 {
            if byte == UInt8(ascii: "-") { dashes += 1; digits = 0; continue }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 18 else { return 0 }
            digits += 1
            if dashes == 0 { ms = ms &* 10 &+ Int64(byte - UInt8(ascii: "0")) } else { n = n &* 10 &+ Int64(byte - UInt8(ascii: "0")) }
        }
        guard dashes == 1 else { return 0 }
        return ms &* 1_000_000 &+ min(n, 999_999)
    }
}

extension QueueStore {
    /// Up to `count` stream entries of a shard's outbox in stream order: the
    /// oldest, or the first ones after entry id `after` (a reader's cursor).
    /// An entry of many runs gives one OutboxEntry per run, with its id.
    public func readOutbox(shard: Int, after: String? = nil, count: Int,
                           _ completion: @escaping (Result<[OutboxEntry], QueueStoreError>) -> Void) {
        let key = tag(shard: shard) + ":outbox"
        let start = after.map { "(" + $0 } ?? "-"
        redis.send([Array("XRANGE".utf8), Array(key.utf8), Array(start.utf8), Array("+".utf8), Array("COUNT".utf8), Array(String(count).utf8)]) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read the outbox")))
            case .success(let value):
                var entries: [OutboxEntry] = []
                for item in value.array ?? [] {
                    guard let pair = item.array, pair.count == 2, let id = pair[0].string, let fields = pair[1].array else { continue }
                    // Fields o (op), r (run), a (attempt), t (time), s (the
                    // shard's sequence); matched without a dictionary: this
                    // runs for every entry.
                    var opText: String?, run: String?, attemptText: String?, timeText: String?, seqText: String?
                    for i in stride(from: 0, to: fields.count - 1, by: 2) {
                        guard let k = fields[i].string, let v = fields[i + 1].string else { continue }
                        switch k {
                        case "o": opText = v
                        case "r": run = v
                        case "a": attemptText = v
                        case "t": timeText = v
                        case "s": seqText = v
                        default: break
                        }
                    }
                    guard let opText, let op = OutboxEntry.Op(rawValue: opText), let run, let attemptText,
                          let time = timeText.flatMap(Int64.init) else { continue }
                    // One stream entry may carry many runs changed by one
                    // script call: ids and attempts joined by 0x1E, in order.
                    // Each becomes an OutboxEntry of its own with the stream
                    // entry's id.
                    let runs = run.utf8.split(separator: 0x1E, omittingEmptySubsequences: false)
                    let attempts = attemptText.utf8.split(separator: 0x1E, omittingEmptySubsequences: false)
                    guard runs.count == attempts.count else { continue }
                    for (runBytes, attemptBytes) in zip(runs, attempts) {
                        guard let runID = String(runBytes), !runID.isEmpty,
                              let attempt = String(attemptBytes).flatMap(UInt32.init) else { continue }
                        entries.append(OutboxEntry(id: id, op: op, runID: runID, attempt: attempt, timeMs: time,
                                                   shardSequence: seqText.flatMap(Int64.init) ?? 0))
                    }
                }
                completion(.success(entries))
            }
        }
    }

    /// PostgreSQL has these entries: clear the finishing marks they set and
    /// delete them. `trimBelow`: every entry of the stream below this id is
    /// applied (or superseded), so the stream is trimmed there at once instead
    /// of deleting entry by entry, and `entries` only needs to hold those
    /// that may have set a finishing mark. Without it exactly `entries` are deleted.
    public func outboxDone(shard: Int, entries: [OutboxEntry], trimBelow: String? = nil,
                           _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        guard !entries.isEmpty || trimBelow != nil else { completion(.success(())); return }
        let tag = tag(shard: shard)
        var args = [tag, trimBelow ?? ""]
        // Only completions, dead letters and expiries set finishing marks.
        for entry in entries where trimBelow == nil || (entry.op != .dequeued && entry.op != .queued) {
            args.append(entry.id)
            args.append(entry.runID)
        }
        redis.evalScript(scripts.outboxDone, keys: [tag + ":outbox", tag + ":fin"], args: args) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "acknowledge outbox entries") })
        }
    }

    /// Pauses lapses on a shard for `ttlMs` (renew to keep it), or resumes them.
    public func pauseLapses(shard: Int, on: Bool, ttlMs: Int64, _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        let tag = tag(shard: shard)
        redis.evalScript(scripts.pause, keys: [tag + ":pause"], args: [on ? "on" : "off", String(ttlMs)]) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "pause lapses") })
        }
    }
}

extension QueueStore {
    /// A shard's epoch in Redis, or nil when it has none (fresh or lost).
    /// A shard's epoch (nil: missing) and sequence (0: missing).
    public func epoch(shard: Int, _ completion: @escaping (Result<(epoch: String?, sequence: Int64), QueueStoreError>) -> Void) {
        let tag = tag(shard: shard)
        redis.evalScript(scripts.epoch, keys: [tag + ":epoch", tag + ":seq"], args: ["get"]) { result in
            completion(result.map { value in
                let parts = value.array ?? []
                return (parts.first?.string, parts.count > 1 ? parts[1].int ?? 0 : 0)
            }.mapError { Self.map($0, doing: "read the epoch") })
        }
    }

    /// Sets a shard's epoch, and raises its sequence to `appliedSequence` (what PostgreSQL applied last).
    public func setEpoch(shard: Int, _ value: String, appliedSequence: Int64 = 0, _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        let tag = tag(shard: shard)
        redis.evalScript(scripts.epoch, keys: [tag + ":epoch", tag + ":seq"], args: ["set", value, String(appliedSequence)]) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "set the epoch") })
        }
    }

    /// Deletes every key of a shard (its state went back in time and is
    /// rebuilt from PostgreSQL), batch by batch with SCAN; the deployment's
    /// facts kept in shard 0 (`{rq0}:meta:*`) stay.
    public func wipe(shard: Int, _ completion: @escaping (Result<Int, QueueStoreError>) -> Void) {
        let tag = tag(shard: shard)
        var deleted = 0
        func scan(_ cursor: String) {
            redis.send(["SCAN", cursor, "MATCH", tag + ":*", "COUNT", "1000"].map { Array($0.utf8) }) { [redis] result in
                let parts: [RedisValue]
                switch result {
                case .failure(let error):
                    completion(.failure(Self.map(error, doing: "wipe the shard")))
                    return
                case .success(let value):
                    parts = value.array ?? []
                }
                guard parts.count == 2, let next = parts[0].string, let keys = parts[1].array?.compactMap(\.string) else {
                    completion(.failure(QueueStoreError(.internal, "SCAN answered something else")))
                    return
                }
                let doomed = keys.filter { !$0.hasPrefix(tag + ":meta:") }
                let proceed = {
                    deleted += doomed.count
                    if next == "0" { completion(.success(deleted)) } else { scan(next) }
                }
                guard !doomed.isEmpty else { proceed(); return }
                redis.send((["UNLINK"] + doomed).map { Array($0.utf8) }) { result in
                    if case .failure(let error) = result {
                        completion(.failure(Self.map(error, doing: "wipe the shard")))
                    } else {
                        proceed()
                    }
                }
            }
        }
        scan("0")
    }

    /// Which of these runs the shard holds in any form (queued, in flight, finishing).
    public func present(shard: Int, runs: [RunDescriptor], _ completion: @escaping (Result<[Bool], QueueStoreError>) -> Void) {
        guard !runs.isEmpty else { completion(.success([])); return }
        let tag = tag(shard: shard)
        var args = [tag]
        for run in runs {
            args.append(run.runID)
            args.append(V4Layout.laneID(environmentID: run.environmentID, queue: run.queue,
                                        workerQueue: run.workerQueue, concurrencyKey: run.concurrencyKey))
        }
        redis.evalScript(scripts.present, keys: [tag + ":inflight"], args: args) { result in
            switch result {
            case .success(.array(let flags)) where flags.count == runs.count:
                completion(.success(flags.map { $0.int == 1 }))
            case .success(let other):
                completion(.failure(QueueStoreError(.internal, "present script answered \(other)")))
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "check runs")))
            }
        }
    }
}
