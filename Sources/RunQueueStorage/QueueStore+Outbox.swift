// The outbox side of QueueStore: reading a shard's unapplied entries,
// acknowledging the applied ones, and pausing lapses while the outbox cannot
// drain. See OutboxApplier for who calls these.
import RedisDriver
import RunQueueCore
import RunQueueEncoding

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

    public var id: String
    public var op: Op
    public var runID: String
    public var attempt: UInt32
    public var timeMs: Int64

    public init(id: String, op: Op, runID: String, attempt: UInt32, timeMs: Int64) {
        self.id = id
        self.op = op
        self.runID = runID
        self.attempt = attempt
        self.timeMs = timeMs
    }

    /// The entry's position as one number (`ms * 10^6 + sequence`), which
    /// orders entries of one shard; rows remember the last one applied.
    public var sequence: Int64 { Self.sequence(ofEntryID: id) }

    public static func sequence(ofEntryID id: String) -> Int64 {
        let parts = id.split(separator: "-")
        guard parts.count == 2, let ms = Int64(parts[0]), let n = Int64(parts[1]) else { return 0 }
        return ms * 1_000_000 + min(n, 999_999)
    }
}

extension QueueStore {
    /// The oldest `count` entries of a shard's outbox (all unapplied).
    public func readOutbox(shard: Int, count: Int, _ completion: @escaping (Result<[OutboxEntry], QueueStoreError>) -> Void) {
        let key = tag(shard: shard) + ":outbox"
        redis.send([Array("XRANGE".utf8), Array(key.utf8), Array("-".utf8), Array("+".utf8), Array("COUNT".utf8), Array(String(count).utf8)]) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read the outbox")))
            case .success(let value):
                var entries: [OutboxEntry] = []
                for item in value.array ?? [] {
                    guard let pair = item.array, pair.count == 2, let id = pair[0].string, let fields = pair[1].array else { continue }
                    var map: [String: String] = [:]
                    for i in stride(from: 0, to: fields.count - 1, by: 2) {
                        if let k = fields[i].string, let v = fields[i + 1].string { map[k] = v }
                    }
                    guard let opText = map["o"], let op = OutboxEntry.Op(rawValue: opText), let run = map["r"],
                          let attempt = map["a"].flatMap(UInt32.init), let time = map["t"].flatMap(Int64.init) else { continue }
                    entries.append(OutboxEntry(id: id, op: op, runID: run, attempt: attempt, timeMs: time))
                }
                completion(.success(entries))
            }
        }
    }

    /// PostgreSQL has these entries: delete them and clear their finishing
    /// marks. `oldest`: the entries are the oldest of the stream, read from
    /// its start (as `readOutbox` reads), so the stream is trimmed up to the
    /// newest of them at once instead of deleting entry by entry.
    public func outboxDone(shard: Int, entries: [OutboxEntry], oldest: Bool = false,
                           _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        guard !entries.isEmpty else { completion(.success(())); return }
        let tag = tag(shard: shard)
        var args = [tag]
        if oldest, let newest = entries.max(by: { Self.entryIDOrder($0.id) < Self.entryIDOrder($1.id) }) {
            args.append(newest.id)
            // Only completions, dead letters and expiries set finishing marks.
            for entry in entries where entry.op != .dequeued && entry.op != .queued {
                args.append(entry.id)
                args.append(entry.runID)
            }
        } else {
            args.append("")
            for entry in entries {
                args.append(entry.id)
                args.append(entry.runID)
            }
        }
        redis.evalScript(scripts.outboxDone, keys: [tag + ":outbox", tag + ":fin"], args: args) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "acknowledge outbox entries") })
        }
    }

    /// Stream entry id order ("ms-seq", both compared as numbers).
    static func entryIDOrder(_ id: String) -> (ms: UInt64, seq: UInt64) {
        var parts: (UInt64, UInt64) = (0, 0)
        var inSequence = false
        for byte in id.utf8 {
            if byte == UInt8(ascii: "-") { inSequence = true; continue }
            let digit = UInt64(byte &- UInt8(ascii: "0"))
            if inSequence { parts.1 = parts.1 &* 10 &+ digit } else { parts.0 = parts.0 &* 10 &+ digit }
        }
        return parts
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
    public func epoch(shard: Int, _ completion: @escaping (Result<String?, QueueStoreError>) -> Void) {
        redis.evalScript(scripts.epoch, keys: [tag(shard: shard) + ":epoch"], args: ["get"]) { result in
            completion(result.map { $0.string }.mapError { Self.map($0, doing: "read the epoch") })
        }
    }

    public func setEpoch(shard: Int, _ value: String, _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        redis.evalScript(scripts.epoch, keys: [tag(shard: shard) + ":epoch"], args: ["set", value]) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "set the epoch") })
        }
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
