// What the expiry benchmarks share: a private redis-server and a fresh
// database per run, a runqueued on them, a SubscribeExpiry subscriber that
// records when each event arrived, and the lateness line they print.
import Foundation
import RunQueueClient
import RunQueueCore
import Synchronization
import UVLoop

/// Wall-clock milliseconds, with microseconds.
public func wallMs() -> Double { Date().timeIntervalSince1970 * 1000 }

public func randomName(_ length: Int) -> String {
    String((0..<length).map { _ in "0123456789abcdefghijklmnopqrstuvwxyz".randomElement()! })
}

// MARK: the private Redis and database

public final class PrivateRedis {
    public let port = freePort()
    public let process = Process()

    public init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try spawn(process)
        for _ in 0..<200 {
            if (try? run("redis-cli", ["-p", String(port), "PING"]))?.contains("PONG") == true { return }
            usleep(25_000)
        }
        throw BenchError("redis-server on port \(port) did not answer")
    }

    public var url: String { "redis://127.0.0.1:\(port)" }

    public func version() -> String {
        let info = (try? run("redis-cli", ["-p", String(port), "INFO", "server"])) ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }
        return line.map { String($0.dropFirst("redis_version:".count)) } ?? "?"
    }

    public func stop() { BenchSupport.stop(process) }
}

public struct Database: Sendable {
    public let admin: String
    public let name = "rq_bench_expiry_" + randomName(8)

    /// A database next to the one `admin` (a postgres:// URL) names; `create()` makes it.
    public init(admin: String) { self.admin = admin }

    public var url: String { String(admin[..<(admin.lastIndex(of: "/") ?? admin.endIndex)]) + "/" + name }

    public func create() throws { try run("psql", [admin, "-qc", "CREATE DATABASE \(name)"]) }
    public func drop() { _ = try? run("psql", [admin, "-qc", "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"]) }

    public func scalar(_ sql: String) throws -> Int {
        let text = try run("psql", [url, "-tAqc", sql]).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let value = Int(text) else { throw BenchError("psql answered \"\(text)\" to \(sql)") }
        return value
    }
}

// MARK: the subscriber

/// One SubscribeExpiry subscriber recording each event with its arrival time.
/// `probe` is a copy of the iterator the task iterates; both share one driver, so the probe sees when the stream started and can cancel it. (The iterator
/// type is not Sendable; the probe is only used for those two thread-safe
/// operations.)
public final class Subscriber: @unchecked Sendable {
    public struct Sample: Sendable {
        public var runID: String
        public var cursor: UInt64
        public var receivedMs: Double
        public var expiresAtMs: Int64
    }

    public let samples = Mutex<[Sample]>([])
    public let count = Atomic<Int>(0)
    public let failure = Mutex<String?>(nil)
    private let probe: ExpirySubscription.Iterator
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// Subscribes live to the events `filter` matches and returns once the server confirmed the subscription.
    public init(port: UInt16, filter: ExpiryFilter) async throws {
        let client = RunQueueClient(RunQueueClientConfiguration(server: SocketAddress(host: "127.0.0.1", port: port)))
        probe = client.subscribeExpiry(filter: filter).makeAsyncIterator()
        task.withLock {
            $0 = Task { [self] in
                var iterator = probe
                do {
                    while let event = try await iterator.next() {
                        let now = wallMs()
                        samples.withLock {
                            $0.append(Sample(runID: event.runID, cursor: event.cursor, receivedMs: now, expiresAtMs: event.expiresAtMs))
                        }
                        count.add(1, ordering: .relaxed)
                    }
                } catch {
                    failure.withLock { $0 = "\(error)" }
                }
            }
        }
        let limit = ContinuousClock.now + .seconds(30)
        while probe.liveFromCursor == nil {
            if let error = failure.withLock({ $0 }) { throw BenchError("SubscribeExpiry failed: \(error)") }
            if ContinuousClock.now > limit { throw BenchError("SubscribeExpiry did not start within 30 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until `expected` events arrived or `deadline` passed.
    public func wait(for expected: Int, until deadline: ContinuousClock.Instant) async throws {
        while count.load(ordering: .relaxed) < expected && ContinuousClock.now < deadline && failure.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    public func cancel() async {
        probe.cancel()
        await task.withLock { $0 }?.value
    }

    /// Exactly once and in order: every run in `expected` had one event, no
    /// other event came, and cursors strictly increased.
    public func check(expected: Set<String>) -> (ok: Bool, text: String) {
        let all = samples.withLock { $0 }
        var seen: [String: Int] = [:]
        for sample in all { seen[sample.runID, default: 0] += 1 }
        let missing = expected.filter { seen[$0] == nil }.count
        let duplicated = seen.values.filter { $0 > 1 }.count
        let unexpected = seen.keys.filter { !expected.contains($0) }.count
        let ordered = zip(all, all.dropFirst()).allSatisfy { $0.cursor < $1.cursor }
        let ok = missing == 0 && duplicated == 0 && unexpected == 0 && ordered && failure.withLock({ $0 }) == nil
        let error = failure.withLock { $0 }.map { ", subscriber error: \($0)" } ?? ""
        return (ok, "\(ok ? "ok" : "FAILED"): \(all.count) events for \(expected.count) runs, \(missing) missing, \(duplicated) runs with "
                    + "more than one event, \(unexpected) unknown, cursors \(ordered ? "strictly increasing" : "NOT in order")\(error)")
    }
}

// MARK: runqueued

public func startServer(redis: PrivateRedis, database: Database, runqueued: String, settings: [String: String]) async throws -> (Process, UInt16) {
    let port = freePort()
    let server = Process()
    server.executableURL = URL(fileURLWithPath: runqueued)
    var environment = ProcessInfo.processInfo.environment
    environment.merge(["RUNQUEUE_LISTEN": "127.0.0.1:\(port)", "RUNQUEUE_REDIS_URL": redis.url, "RUNQUEUE_DATABASE_URL": database.url,
                       "RUNQUEUE_LOG_LEVEL": environment["RUNQUEUE_LOG_LEVEL"] ?? "error"]) { $1 }
    environment.merge(settings) { $1 }
    server.environment = environment
    server.standardOutput = FileHandle.nullDevice
    try spawn(server)
    await (try connectWithRetry(port: port)).close()
    return (server, port)
}

/// p50 / p90 / p99 / max of `lateness`; with `censored` samples (lower
/// bounds) each figure is marked ">=".
public func line(_ label: String, _ lateness: LatencyHistogram, censored: Int = 0) -> String {
    guard !lateness.isEmpty else { return "\(label): no samples" }
    let mark = censored > 0 ? ">=" : ""
    return String(format: "%@: p50 %@%.1f  p90 %@%.1f  p99 %@%.1f  max %@%.1f ms  (count %d)",
                  label, mark, lateness.p50, mark, lateness.p90, mark, lateness.p99, mark, lateness.max, lateness.count)
}

