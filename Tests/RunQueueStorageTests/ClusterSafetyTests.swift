// ClusterSafetyTests: every Lua script runs against a Redis node with
// `cluster-enabled yes` owning all 16384 slots. Such a node rejects a script
// that touches a key outside the slot of its declared keys ("Script attempted
// to access keys that do not hash to the same slot", for scripts with a
// shebang), which QueueStore would surface as INTERNAL. So a workload that
// runs every script without an error proves that no script crosses slots;
// the deliberately cross-slot EVAL at the end proves the node would notice.
import Foundation
import RedisDriver
import RunQueueCore
import RunQueueStorage
import TestSupport
import Testing

/// A private `redis-server --cluster-enabled yes` on a free port, in its own
/// temporary directory. `stop()` kills it and removes the directory (a
/// watchdog does both if the test process dies first).
final class PrivateClusterNode: @unchecked Sendable {
    let port: UInt16
    let directory: URL
    private let process = Process()
    private let watchdog = Process()

    var url: String { "redis://127.0.0.1:\(port)" }

    /// Starts a node and waits until it answers PING. Retries on another
    /// port when the server cannot start (a port taken in between).
    static func start() async throws -> PrivateClusterNode {
        var failures: [String] = []
        for _ in 0..<5 {
            let node = try PrivateClusterNode(port: freePortPair())
            do {
                try await node.waitUntilAnswering()
                return node
            } catch {
                node.stop()
                failures.append("\(error)")
            }
        }
        throw NodeError("redis-server did not start: \(failures)")
    }

    /// A port P <= 55535 with P and P + 10000 (the cluster bus) free.
    private static func freePortPair() -> UInt16 {
        func isFree(_ port: UInt16) -> Bool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = port.bigEndian
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
        while true {
            let port = UInt16.random(in: 20_000...55_535)
            if isFree(port), isFree(port + 10_000) { return port }
        }
    }

    private init(port: UInt16) throws {
        self.port = port
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("runqueue-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "redis-server", "--port", String(port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", directory.appendingPathComponent("nodes.conf").path,
            "--dir", directory.path, "--save", "", "--appendonly", "no",
            "--logfile", directory.appendingPathComponent("redis.log").path,
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        // If this test process dies before stop() (a crash elsewhere, a
        // killed run), the watchdog kills the server and removes its directory.
        let server = process.processIdentifier
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = ["-c", """
            while kill -0 \(getpid()) 2>/dev/null && kill -0 \(server) 2>/dev/null; do sleep 0.2; done
            kill -9 \(server) 2>/dev/null; rm -rf '\(directory.path)'
            """]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
    }

    /// Waits until the server answers PING (it accepts connections on its
    /// port before it has bound the cluster bus, which can still fail).
    private func waitUntilAnswering() async throws {
        try await waitUntil("redis-server answers on \(port)") {
            guard process.isRunning else { throw NodeError("redis-server exited at start: \(log)") }
            return (try? command("PING")) == "PONG"
        }
    }

    /// Assigns every slot to this node and waits for cluster_state:ok (Redis
    /// holds a fresh master in the fail state for about 2 s after it started,
    /// its CLUSTER_WRITABLE_DELAY). Before any store connects: a store sets
    /// its shards' epochs as it starts, which needs the slots served.
    func claimAllSlots() async throws {
        let added = try command("CLUSTER ADDSLOTSRANGE 0 16383")
        guard added == "OK" else { throw NodeError("CLUSTER ADDSLOTSRANGE answered \(added)") }
        try await waitUntil("cluster_state:ok") {
            let info = try command("CLUSTER INFO")
            guard info.contains("cluster_state:ok") else { return false }
            guard info.contains("cluster_slots_assigned:16384") else { throw NodeError("slots not all assigned: \(info)") }
            return true
        }
    }

    /// One inline command on a connection of its own; returns a simple
    /// string, error or integer line, or a bulk string's text.
    private func command(_ inline: String) throws -> String {
        let socket = try RawSocket(port: port, timeoutSeconds: 2)
        try socket.send(Array((inline + "\r\n").utf8))
        var line: [UInt8] = []
        while line.suffix(2) != [13, 10] {
            guard let byte = socket.read(1) else { throw NodeError("no answer to \(inline)") }
            line += byte
        }
        let header = String(decoding: line.dropLast(2), as: UTF8.self)
        guard header.first == "$", let length = Int(header.dropFirst()) else { return String(header.dropFirst()) }
        guard length >= 0, let body = socket.read(length + 2) else { return "" }
        return String(decoding: body.dropLast(2), as: UTF8.self)
    }

    /// SIGKILL, not terminate(): the child inherits the signal mask of the
    /// spawning thread, and a Dispatch worker blocks SIGTERM.
    func stop() {
        if watchdog.isRunning {
            kill(watchdog.processIdentifier, SIGKILL)
            watchdog.waitUntilExit()
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    private var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? "(no log)"
    }

    struct NodeError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

@Suite(.tags(.integration), .needsServices) struct ClusterSafetyTests {
    @Test func everyScriptRunsOnAClusterNodeWithoutCrossingSlots() async throws {
        let node = try await PrivateClusterNode.start()
        defer { node.stop() }
        try await node.claimAllSlots()

        var config = QueueConfig()
        config.backoff = NackBackoff(maxAttempts: 2)
        let h = try await StoreHarness(config: config, redisURL: node.url)
        var v2 = config
        v2.messageFormat = .v2
        let h2 = try await StoreHarness(config: v2, redisURL: node.url, prefix: h.prefix)
        var v3 = config
        v3.messageFormat = .v3
        let h3 = try await StoreHarness(config: v3, redisURL: node.url, prefix: h.prefix)

        let info = try await h.redis.command("INFO", "server").string ?? ""
        #expect(info.contains("redis_mode:cluster"))
        let scripts = QueueScripts.shared.all
        let scriptExists = { [redis = h.redis] in
            try await redis.command(["SCRIPT", "EXISTS"].map { Array($0.utf8) } + scripts.values.map { Array($0.sha1.utf8) })
        }

        // Two environments in different shards, so one enqueue batch is two
        // script calls on two slots.
        let shardOf = { (name: String) in h.store.shards.shard(forEnvironment: h.id(name)) }
        let a = "envA"
        let b = try #require((0..<64).map { "env\($0)" }.first { shardOf($0) != shardOf(a) })
        let t = h.now

        // enqueue: V4 (priority, another task identifier, a delayed run, a
        // TTL, a concurrency key with ':'), V2 and V3.
        #expect(try await h.enqueue([
            h.run("a1", env: a, timestamp: t - 50),
            h.run("a2", env: a, ck: "t:1:ck:2", timestamp: t - 40, priority: 5),
            h.run("a3", env: a, timestamp: t + 60_000),
            h.run("b1", env: b, timestamp: t - 30, task: "other"),
        ], expiresAt: t + 3_600_000) == [true, true, true, true])
        #expect(try await h2.enqueue([h2.run("v2a", env: a, timestamp: t - 20), h2.run("v2b", env: b, ck: "x:ck:y", timestamp: t - 10)])
            == [true, true])
        #expect(try await h3.enqueue([h3.run("v3a", env: a, timestamp: t - 5), h3.run("v3b", env: b, timestamp: t - 1)]) == [true, true])
        #expect(try await h.enqueue([h.run("a1", env: a)]) == [false])

        // limits: environment and queue, set and clear.
        try await h.setLimit(env: a, .set(limit: 50, burstFactor: 2))
        try await h.setLimit(env: a, queue: "q", .set(limit: 10, burstFactor: 0))
        #expect(try await h.stats(env: a).concurrencyLimit == 100)
        #expect(try await h.stats(env: a, queue: "q").concurrencyLimit == 10)
        try await h.setLimit(env: a, queue: "q", .clear)
        try await h.setLimit(env: a, .clear)

        // stats and read.
        let s = try await h.stats(env: a)
        #expect((s.length, s.due, s.inFlight) == (5, 4, 0))
        #expect(try await h.stats(env: b, queue: "q", ck: "x:ck:y").length == 1)
        #expect(try await h.read("a2", env: a)?.source == .redisV4)
        #expect(try await h.read("v2b", env: b)?.source == .redisV2)
        #expect(try await h.read("v3a", env: a)?.source == .redisV3)
        #expect(try await h.read("a3", env: a)?.state == .delayed)

        // present (the reconciler's question): queued runs are, unknown ones are not.
        #expect(try await present(h, [h.run("a1", env: a), h.run("v2a", env: a), h.run("nope", env: a)]) == [true, true, false])

        // claim on both shards.
        #expect(h.names(try await h.claim(count: 10, env: a)) == ["a1", "a2", "v2a", "v3a"])
        #expect(h.names(try await h.claim(count: 10, env: b)) == ["b1", "v2b", "v3b"])

        // heartbeat, nack (requeue), nack (dead letter), outbox done, redrive.
        guard case .done = try await h.heartbeat("a1", env: a, fence: 0, leaseMs: 120_000) else { Issue.record("heartbeat"); return }
        guard case .done(let n1) = try await h.nack("v2a", env: a, retryAt: t) else { Issue.record("nack"); return }
        #expect(n1.attempt == 1 && !n1.deadLettered)
        #expect(h.names(try await h.claim(count: 10, env: a)) == ["v2a"])
        guard case .done(let n2) = try await h.nack("v2a", env: a, retryAt: t) else { Issue.record("nack"); return }
        #expect(n2.attempt == 2 && n2.deadLettered)
        #expect(try await h.read("v2a", env: a) == nil)
        let entries = try await h.outbox(env: a)
        #expect(entries.last?.op == .deadLettered)
        try await h.outboxDone(entries, env: a)
        #expect(try await h.outbox(env: a).isEmpty)
        #expect(try await h2.redriveEnqueue([h2.run("v2a", env: a, timestamp: t - 20)]) == [true])
        #expect(try await h.read("v2a", env: a)?.source == .redisV2)

        // release: a claimed run goes back with its attempt.
        #expect(h.names(try await h.claim(count: 10, env: a)) == ["v2a"])
        #expect(try await h.release(["v2a"], env: a) == 1)

        // pause, lapse: a short lease passes while lapses are paused (kept),
        // then after the pause is lifted (applied by the lapse script).
        #expect(h.names(try await h.claim(count: 10, env: a, leaseMs: 100)) == ["v2a"])
        h.now += 200
        try await h.pauseLapses(env: a, on: true)
        _ = try await h.lapse(env: a)
        #expect(try await h.read("v2a", env: a)?.state == .inFlight)
        try await h.pauseLapses(env: a, on: false)
        #expect(try await h.lapse(env: a) != nil)
        let lapsed = try await h.read("v2a", env: a)
        #expect(lapsed?.state == .due)
        #expect(lapsed?.message.attempt == 1)

        // ack everything in flight (leases of 60 s from t are still valid).
        for (run, env) in [("a1", a), ("a2", a), ("v3a", a), ("b1", b), ("v2b", b), ("v3b", b)] {
            guard case .done = try await h.ack(run, env: env) else { Issue.record("ack \(run)"); return }
        }
        #expect(try await h.stats(env: b).length == 0)
        #expect(try await h.stats(env: a).inFlight == 0)

        // expire: the one run never dequeued (a3, delayed, with a TTL) expires on its slot.
        let shardA = shardOf(a)
        let expiredA: Result<QueueStore.ExpireResult, QueueStoreError> = await withCheckedContinuation { done in
            h.loop.execute { h.store.expire(shard: shardA, now: t + 3_600_000, batch: 100) { done.resume(returning: $0) } }
        }
        #expect(try expiredA.get().expired == 1)

        // expiry lease: taken by one owner, refused to another, given back, then taken by the other.
        func lease(_ owner: String) async throws -> Bool {
            let taken: Result<Bool, QueueStoreError> = await withCheckedContinuation { done in
                h.loop.execute { h.store.expiryLease(shard: shardA, owner: owner, ttlMs: 60_000) { done.resume(returning: $0) } }
            }
            return try taken.get()
        }
        #expect(try await lease("one"))
        #expect(try await lease("one"))
        #expect(try await !lease("two"))
        let released: Result<Void, QueueStoreError> = await withCheckedContinuation { done in
            h.loop.execute { h.store.releaseExpiryLease(shard: shardA, owner: "one") { done.resume(returning: $0) } }
        }
        try released.get()
        #expect(try await lease("two"))

        // Every script ran on this node (started by this test with none
        // cached; the store loads each on first use), and the only error replies Redis
        // ever gave were the NOSCRIPT answers that made the store send a
        // script's source (once per script, or more when calls overlap).
        let exists = try await scriptExists()
        let missing = zip(scripts.keys, exists.array ?? []).filter { $0.1 != .int(1) }.map(\.0)
        #expect(missing.isEmpty, "scripts never run on the cluster node: \(missing)")
        let errors = try await errorStats(h.redis)
        #expect(errors.keys.sorted() == ["NOSCRIPT"], "error replies: \(errors)")

        // The node does reject cross-slot access: a script declaring a key of
        // {rq0} that touches one of {rq1} fails; the same script on its own
        // slot succeeds; declaring keys of two slots is refused up front.
        let crossSlot = "#!lua\nredis.call('SET', '{rq1}:y', '1')\nreturn 1"
        let sameSlot = "#!lua\nredis.call('SET', '{rq0}:y', '1')\nreturn 1"
        let crossSlotError = await replyError { try await h.redis.command("EVAL", crossSlot, "1", "{rq0}:x") }
        #expect(crossSlotError?.contains("do not hash to the same slot") == true, "cross-slot script answered \(String(describing: crossSlotError))")
        #expect(try await h.redis.command("EVAL", sameSlot, "1", "{rq0}:x") == .int(1))
        let declaredError = await replyError { try await h.redis.command("EVAL", "#!lua\nreturn 1", "2", "{rq0}:x", "{rq1}:y") }
        #expect(declaredError?.hasPrefix("CROSSSLOT") == true, "two declared slots answered \(String(describing: declaredError))")

        #expect(h3.close() == 0)
        #expect(h2.close() == 0)
        #expect(h.close() == 0)
    }

    /// QueueStore.present on the shard of the runs' environment (one shard).
    private func present(_ h: StoreHarness, _ runs: [RunDescriptor]) async throws -> [Bool] {
        let (store, loop) = (h.store, h.loop)
        let shard = store.shards.shard(forEnvironment: runs[0].environmentID)
        let result: Result<[Bool], QueueStoreError> = await withCheckedContinuation { continuation in
            loop.execute { store.present(shard: shard, runs: runs) { continuation.resume(returning: $0) } }
        }
        return try result.get()
    }

    /// The error reply `body` got, or nil if it succeeded or failed otherwise.
    private func replyError(_ body: () async throws -> RedisValue) async -> String? {
        do {
            _ = try await body()
            return nil
        } catch let error as RedisError where error.code == .replyError {
            return error.message
        } catch {
            return nil
        }
    }

    /// INFO errorstats as prefix -> count.
    private func errorStats(_ redis: RedisConnection) async throws -> [String: Int] {
        let text = try await redis.command("INFO", "errorstats").string ?? ""
        var out: [String: Int] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("errorstat_") {
            // errorstat_NOSCRIPT:count=11
            let body = line.dropFirst("errorstat_".count)
            guard let colon = body.firstIndex(of: ":"), let eq = body.firstIndex(of: "=") else { continue }
            out[String(body[..<colon])] = Int(body[body.index(after: eq)...])
        }
        return out
    }
}
