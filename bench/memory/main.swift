// runqueue-bench-memory: Redis memory per pending run.
//
// Starts a private redis-server on a free port (so nothing else lives in it;
// used_memory is per server), then for each message format (v4, v3, v2)
// enqueues N runs into ONE queue through QueueStore (the real Lua scripts),
// every run with a TTL and a realistic 29-byte run id ("run_" + 25 cuid-style
// characters), and prints (used_memory after - before) / N.
//
// Baseline, measured in the same run on the same server: trigger.dev's key
// layout written directly with pipelined commands: per run a queue ZSET
// entry, an env ZSET entry, a message key holding the V2 JSON (or the V3
// value of the unmerged compact format), and a TTL ZSET member
// "queueKey|runId|orgId". Ratios are ours / baseline.
//
// Between cases: FLUSHALL SYNC, the loading connection closed, and Redis left
// to settle until used_memory stops moving. The scripts are loaded before the
// "before" reading, so the script cache is not counted.
//
// --json: the report lines go to stderr and one JSON object with every figure
// (bytes per run by case) to stdout, for make bench-compare.
//
// usage: runqueue-bench-memory [--runs N] [--batch N] [--inflight N] [--redis-server PATH] [--json]
import BenchSupport
import Foundation
import RedisDriver
import RunQueueCore
import RunQueueStoredFormat
import RunQueueStorage
import UVLoop

let jsonOutput = CommandLine.arguments.contains("--json")

/// Prints a report line at once (stdout is block-buffered when piped, e.g.
/// `make bench | tee`); to stderr with --json, where stdout carries only the
/// JSON object.
func report(_ line: String = "") {
    (jsonOutput ? FileHandle.standardError : FileHandle.standardOutput).write(Data((line + "\n").utf8))
}

// MARK: ids

/// Deterministic xorshift, so every run of the bench stores the same bytes.
struct IDSource {
    var state: UInt64
    static let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// A cuid-style id: "c" + `count - 1` base-36 characters (25 in all by default).
    mutating func cuid(_ count: Int = 25) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "c")]
        while bytes.count < count { bytes.append(Self.alphabet[Int(next() % 36)]) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: Redis helpers

/// Keeps `window` jobs in flight on the loop until `count` have finished.
final class Pump: @unchecked Sendable {
    let count: Int
    let window: Int
    let start: (Int, @escaping (String?) -> Void) -> Void
    var next = 0
    var finished = 0
    var firstError: String?
    var completion: ((String?) -> Void)?

    init(count: Int, window: Int, start: @escaping (Int, @escaping (String?) -> Void) -> Void) {
        self.count = count
        self.window = window
        self.start = start
    }

    func run(_ completion: @escaping (String?) -> Void) {
        self.completion = completion
        if count == 0 { completion(nil); return }
        while next < count && next - finished < window { launch() }
    }

    private func launch() {
        let index = next
        next += 1
        start(index) { [self] error in
            finished += 1
            if firstError == nil, let error { firstError = error }
            if next < count {
                launch()
            } else if finished == count {
                completion?(firstError)
                completion = nil
            }
        }
    }
}

func pump(on loop: EventLoop, count: Int, window: Int,
          _ start: @escaping (Int, @escaping (String?) -> Void) -> Void) async throws {
    let error: String? = await withCheckedContinuation { continuation in
        let p = Pump(count: count, window: window, start: start)
        loop.execute { p.run { continuation.resume(returning: $0) } }
    }
    if let error { throw BenchError(error) }
}

func connect(_ loop: EventLoop, port: UInt16) async throws -> RedisConnection {
    let config = RedisConfig(host: "127.0.0.1", port: port, commandTimeoutMs: 60_000)
    let redis = try await loop.submit { RedisConnection(loop: loop, config: config) }
    loop.execute { redis.connect() }
    try await redis.waitUntilConnected(timeoutMs: 5_000)
    return redis
}

func close(_ redis: RedisConnection) async {
    _ = try? await redis.loop.submit { redis.close() }
}

func usedMemory(_ redis: RedisConnection) async throws -> Int {
    let info = try await redis.command("INFO", "memory").string ?? ""
    for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("used_memory:") {
        if let value = Int(line.dropFirst("used_memory:".count)) { return value }
    }
    throw BenchError("INFO memory has no used_memory")
}

/// used_memory once Redis is idle: waits, then reads until two readings agree.
func settledMemory(_ redis: RedisConnection) async throws -> Int {
    try await Task.sleep(for: .milliseconds(1_500))
    var last = try await usedMemory(redis)
    for _ in 0..<20 {
        try await Task.sleep(for: .milliseconds(250))
        let now = try await usedMemory(redis)
        if now == last { return now }
        last = now
    }
    return last
}

// MARK: the data

struct Fixture {
    let orgID: String
    let projectID: String
    let environmentID: String
    let queue = "task/my-background-task"
    let taskIdentifier = "my-background-task"
    let workerQueue = "main"
    let runIDs: [String]
    let baseTimestampMs: Int64
    let expiresAtMs: Int64

    init(runs: Int) {
        var ids = IDSource(state: 0x9E37_79B9_7F4A_7C15)
        orgID = ids.cuid()
        projectID = ids.cuid()
        environmentID = ids.cuid()
        runIDs = (0..<runs).map { _ in "run_" + ids.cuid() }
        precondition(runIDs.allSatisfy { $0.utf8.count == 29 })
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        baseTimestampMs = now - Int64(runs)
        expiresAtMs = now + 3_600_000
    }

    func run(_ index: Int) -> RunDescriptor {
        RunDescriptor(runID: runIDs[index], orgID: orgID, projectID: projectID, environmentID: environmentID,
                      environmentType: .production, queue: queue, concurrencyKey: "", taskIdentifier: taskIdentifier,
                      workerQueue: workerQueue, timestampMs: baseTimestampMs + Int64(index), priorityMs: 0, ttl: "1h")
    }

    func storedMessage(_ index: Int) -> StoredMessage {
        StoredMessage(runID: runIDs[index], orgID: orgID, projectID: projectID, environmentID: environmentID,
                      environmentType: .production, queue: queue, taskIdentifier: taskIdentifier, workerQueue: workerQueue,
                      timestampMs: baseTimestampMs + Int64(index), attempt: 0, ttlExpiresAtMs: expiresAtMs)
    }

    /// trigger.dev's logical queue key `{org:O}:proj:P:env:E:queue:Q`.
    var queueKey: String { LogicalQueueKey(orgID: orgID, projectID: projectID, environmentID: environmentID, queue: queue).encoded }
}

// MARK: the cases

/// Enqueues every run through QueueStore in `format`.
func loadOurs(_ fixture: Fixture, format: MessageFormatChoice, port: UInt16, batch: Int, inflight: Int) async throws {
    let loop = try EventLoop(name: "bench-memory")
    defer { loop.shutdown() }
    let redis = try await connect(loop, port: port)
    var config = QueueConfig()
    config.messageFormat = format
    let store = QueueStore(redis: redis, shards: ShardMap(), config: config)
    let total = fixture.runIDs.count
    let batches = (total + batch - 1) / batch
    let now = fixture.baseTimestampMs + Int64(total)
    let items: [[QueueStore.EnqueueItem]] = (0..<batches).map { b in
        (b * batch..<min(total, (b + 1) * batch)).map { QueueStore.EnqueueItem(run: fixture.run($0), expiresAtMs: fixture.expiresAtMs) }
    }
    try await pump(on: loop, count: batches, window: inflight) { index, done in
        store.enqueue(items[index], now: now) { results in
            for result in results {
                switch result {
                case .success(true): continue
                case .success(false): done("run enqueued twice in batch \(index)"); return
                case .failure(let error): done("enqueue failed: \(error)"); return
                }
            }
            done(nil)
        }
    }
    await close(redis)
}

/// Loads the scripts (one enqueue into a throwaway queue) so the script cache
/// is in place before the "before" reading.
func warmUp(port: UInt16) async throws {
    let loop = try EventLoop(name: "bench-memory-warmup")
    defer { loop.shutdown() }
    let redis = try await connect(loop, port: port)
    let store = QueueStore(redis: redis, shards: ShardMap(), config: QueueConfig())
    for script in QueueScripts.shared.all.values { try await redis.loadScript(script) }
    let run = RunDescriptor(runID: "run_warmup", orgID: "org", projectID: "proj", environmentID: "env", environmentType: .production,
                            queue: "q", taskIdentifier: "t", workerQueue: "w", timestampMs: 1, ttl: "")
    try await pump(on: loop, count: 1, window: 1) { _, done in
        store.enqueue([QueueStore.EnqueueItem(run: run, expiresAtMs: 10)], now: 1) { _ in done(nil) }
    }
    await close(redis)
}

/// The reference layout, written directly: queue ZSET + env ZSET + message
/// key (V2 JSON, or V3 with `compact`) + TTL ZSET member "queueKey|runId|orgId" (TTL optional).
func loadReference(_ fixture: Fixture, withTTL: Bool, compact: Bool = false, port: UInt16) async throws {
    let loop = try EventLoop(name: "bench-memory-ref")
    defer { loop.shutdown() }
    let redis = try await connect(loop, port: port)
    let queueKey = fixture.queueKey
    let org = "{org:\(fixture.orgID)}"
    let envKey = Array("\(org):env:\(fixture.environmentID)".utf8)
    let queueKeyBytes = Array(queueKey.utf8)
    let ttlKey = Array("ttl:shard:0".utf8)
    let chunk = 500
    let total = fixture.runIDs.count
    let chunks = (total + chunk - 1) / chunk
    var commands: [[[[UInt8]]]] = []
    commands.reserveCapacity(chunks)
    for c in 0..<chunks {
        var list: [[[UInt8]]] = []
        for i in c * chunk..<min(total, (c + 1) * chunk) {
            let runID = fixture.runIDs[i]
            let score = Array(String(fixture.baseTimestampMs + Int64(i)).utf8)
            let member = Array(runID.utf8)
            list.append([Array("ZADD".utf8), queueKeyBytes, score, member])
            list.append([Array("ZADD".utf8), envKey, score, member])
            let message = compact ? MessageFormatV3.encode(fixture.storedMessage(i)) : MessageFormatV2.encode(fixture.storedMessage(i))
            list.append([Array("SET".utf8), Array("\(org):message:\(runID)".utf8), message])
            if withTTL {
                list.append([Array("ZADD".utf8), ttlKey, Array(String(fixture.expiresAtMs).utf8),
                             Array("\(queueKey)|\(runID)|\(fixture.orgID)".utf8)])
            }
        }
        commands.append(list)
    }
    try await pump(on: loop, count: chunks, window: 4) { index, done in
        let list = commands[index]
        var remaining = list.count
        var error: String?
        for command in list {
            redis.send(command) { result in
                if case .failure(let e) = result, error == nil { error = "\(e)" }
                remaining -= 1
                if remaining == 0 { done(error) }
            }
        }
    }
    await close(redis)
}

// MARK: main

func main() async throws {
    let runs = Int(option("--runs") ?? "") ?? 100_000
    let batch = Int(option("--batch") ?? "") ?? 500
    let inflight = Int(option("--inflight") ?? "") ?? 4
    let redisServer = option("--redis-server") ?? "redis-server"
    guard runs > 0, batch > 0, batch <= 1000, inflight > 0 else { fail("--runs, --batch (1...1000) and --inflight must be positive") }

    let port = freePort()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("runqueue-bench-memory-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let server = Process()
    server.executableURL = URL(fileURLWithPath: redisServer.contains("/") ? redisServer : "/usr/bin/env")
    server.arguments = (redisServer.contains("/") ? [] : [redisServer]) + [
        "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.path,
        "--daemonize", "no", "--protected-mode", "yes",
    ]
    server.standardOutput = FileHandle.nullDevice
    server.standardError = FileHandle.nullDevice
    do { try spawn(server) } catch { fail("cannot start \(redisServer): \(error)") }
    defer {
        stop(server)
        try? FileManager.default.removeItem(at: dir)
    }

    let controlLoop = try EventLoop(name: "bench-memory-control")
    defer { controlLoop.shutdown() }
    var control: RedisConnection?
    for _ in 0..<200 {
        if let c = try? await connect(controlLoop, port: port) { control = c; break }
        try await Task.sleep(for: .milliseconds(25))
    }
    guard let control else { fail("private redis-server on port \(port) did not start") }
    let version = (try await control.command("INFO", "server").string ?? "")
        .split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }?.dropFirst("redis_version:".count) ?? "?"
    let allocator = (try await control.command("INFO", "memory").string ?? "")
        .split(whereSeparator: \.isNewline).first { $0.hasPrefix("mem_allocator:") }?.dropFirst("mem_allocator:".count) ?? "?"

    let fixture = Fixture(runs: runs)
    let sampleJSON = MessageFormatV2.encode(fixture.storedMessage(0))
    let sampleV3 = MessageFormatV3.encode(fixture.storedMessage(0))
    report("Redis memory per pending run: \(runs) runs in one queue, TTL set, 29-byte run ids (\(fixture.runIDs[0]))")
    report("private redis-server \(version) (\(allocator)) on port \(port); enqueue batches of \(batch), \(inflight) in flight")
    report("V2 message \(sampleJSON.count) bytes, V3 message \(sampleV3.count) bytes")

    try await warmUp(port: port)

    func measure(_ label: String, _ load: () async throws -> Void) async throws -> Double {
        _ = try await control.command("FLUSHALL", "SYNC")
        let before = try await settledMemory(control)
        let start = ContinuousClock.now
        try await load()
        let elapsed = ContinuousClock.now - start
        let after = try await settledMemory(control)
        let keys = try await control.command("DBSIZE").int ?? -1
        let perRun = Double(after - before) / Double(runs)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        report(String(format: "%@ %7.1f bytes/run  (used_memory %d -> %d, %d keys, loaded in %.2f s)",
                     label.padding(toLength: 44, withPad: " ", startingAt: 0), perRun, before, after, keys, seconds))
        return perRun
    }

    var ours: [(MessageFormatChoice, Double)] = []
    for format in [MessageFormatChoice.v4, .v3, .v2] {
        let value = try await measure("runqueue \(format.rawValue) (QueueStore enqueue, TTL)") {
            try await loadOurs(fixture, format: format, port: port, batch: batch, inflight: inflight)
        }
        ours.append((format, value))
    }
    let reference = try await measure("baseline: reference layout, V2 JSON, TTL") {
        try await loadReference(fixture, withTTL: true, port: port)
    }
    let referenceNoTTL = try await measure("baseline: reference layout, V2 JSON, no TTL") {
        try await loadReference(fixture, withTTL: false, port: port)
    }
    let referenceV3 = try await measure("baseline: reference layout, V3 value, TTL") {
        try await loadReference(fixture, withTTL: true, compact: true, port: port)
    }
    _ = try await control.command("FLUSHALL", "SYNC")
    await close(control)

    report("")
    for (format, value) in ours {
        report(String(format: "runqueue %@ / reference-with-TTL baseline: ratio %.3f (%.0f vs %.0f bytes/run)",
                     format.rawValue, value / reference, value, reference))
    }
    report(String(format: "(reference without its TTL entry: %.0f bytes/run; reference with the V3 value: %.0f bytes/run)", referenceNoTTL, referenceV3))
    let v4 = ours.first { $0.0 == .v4 }!.1
    report(String(format: "target: v4 <= 300 bytes per pending run with a TTL: %@ (%.0f)", v4 <= 300 ? "met" : "NOT met", v4))
    if jsonOutput {
        let formats = ours.map { String(format: "\"%@\": %.1f", $0.0.rawValue, $0.1) }.joined(separator: ", ")
        let object = String(format: "{\"runs\": %d, \"redis_version\": \"%@\", \"allocator\": \"%@\", \"v2_message_bytes\": %d, \"v3_message_bytes\": %d, "
                                + "\"ours\": {%@}, \"reference_v2_ttl\": %.1f, \"reference_v2_no_ttl\": %.1f, \"reference_v3_ttl\": %.1f}",
                            runs, String(version), String(allocator), sampleJSON.count, sampleV3.count, formats, reference, referenceNoTTL, referenceV3)
        FileHandle.standardOutput.write(Data((object + "\n").utf8))
    }
}

try await main()
