import Foundation
import RunQueueClient
import RunQueueCore
import Synchronization
import Testing
import TestSupport

/// A mixed load under repeated crashes, then an audit of every run id.
@Suite(.tags(.integration), .needsServices) struct AuditTests {
    /// What the clients saw, shared by their tasks.
    final class Ledger: Sendable {
        struct State {
            /// When each run's Ack answered acked = true.
            var ackedAt: [String: ContinuousClock.Instant] = [:]
            /// Every delivery: the run and when its Dequeue was sent.
            var deliveries: [(runID: String, sentAt: ContinuousClock.Instant)] = []
            var enqueued: Set<Int> = []
            /// Acks sent, answered or not (an ack cut by a kill may have landed).
            var acksSent = 0
        }
        let state = Mutex(State())
        /// The load stops.
        let done = Mutex(false)
        var isDone: Bool { done.withLock { $0 } }
    }

    static let total = 10_000
    /// Runs with a TTL on a worker queue nobody reads: they all expire.
    static let expiring = 2_000

    /// 10,000 runs (8,000 worked: ack 80 %, nack 15 %, 5 % left to lapse;
    /// 2,000 with ttl 2s that nobody dequeues) under 20 kill -9 of the
    /// server, 5 of Redis (which loses everything: a rebuild from
    /// PostgreSQL each time) and 3 outages of PostgreSQL (every connection
    /// to it cut, then back). Afterwards every run acked is COMPLETED and
    /// was never delivered by a Dequeue sent after its ack answered, every
    /// expiring run is EXPIRED with exactly one event, and no run is lost.
    @Test func aMixedLoadUnderServerKillsRedisKillsAndPostgreSQLOutagesLosesNothingAndDoublesNothing() async throws {
        let stack = try TestStack()
        // The server reaches PostgreSQL through a proxy the test can cut (OutageTests).
        let proxy = try TCPProxy(upstreamPort: OutageTests.postgresPort)
        defer { proxy.shutdownAll() }
        let server = ServerProcess(redisURL: stack.redisURL, databaseURL: OutageTests.url(stack.databaseURL, port: proxy.port),
                                   ["RUNQUEUE_DEFAULT_ENV_CONCURRENCY_LIMIT": "1000000", "RUNQUEUE_MAX_ATTEMPTS": "1000",
                                    "RUN_ENGINE_TTL_SYSTEM_POLL_INTERVAL_MS": "200"])
        try server.launch()
        defer { server.kill() }
        _ = try await server.connect()
        let n = Names()
        let runs = (0..<Self.total).map { i in
            i < Self.expiring ? n.run("x\(i)", env: "env\(i % 8)", worker: "nobody", ttl: "2s") : n.run("r\(i)", env: "env\(i % 8)")
        }
        var configuration = RunQueueClientConfiguration(server: server.address)
        configuration.connections = 2
        configuration.reconnectPolicy = ReconnectPolicy(initialMs: 20, maxMs: 200)
        configuration.reconnectWait = .seconds(30)
        let client = RunQueueClient(configuration)
        let ledger = Ledger()

        let producer = Task {
            for start in stride(from: 0, to: runs.count, by: 250) {
                let batch = Array(runs[start..<min(runs.count, start + 250)])
                // Retried with the same run ids until every item is recorded.
                while !ledger.isDone {
                    if let results = try? await client.enqueueBatch(batch), results.allSatisfy({ $0.status.code == .ok }) {
                        ledger.state.withLock { _ = $0.enqueued.insert(start) }
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        let workers = (0..<3).map { _ in
            Task {
                while !ledger.isDone {
                    let sentAt = ContinuousClock.now
                    guard let messages = try? await client.dequeue(workerQueue: n("wq"), maxRuns: 100, waitMs: 200, leaseMs: 2000) else {
                        try? await Task.sleep(for: .milliseconds(50))
                        continue
                    }
                    ledger.state.withLock { state in state.deliveries += messages.map { ($0.runID, sentAt) } }
                    await withTaskGroup(of: Void.self) { group in
                        for m in messages {
                            let choice = abs((m.runID + String(m.attempt)).hashValue) % 100
                            guard choice < 95 else { continue }
                            group.addTask {
                                if choice < 80 {
                                    ledger.state.withLock { $0.acksSent += 1 }
                                    if (try? await client.ack(m)) == true {
                                        ledger.state.withLock { $0.ackedAt[m.runID] = ContinuousClock.now }
                                    }
                                } else {
                                    _ = try? await client.nack(m, retryAtMs: 1)
                                }
                            }
                        }
                    }
                }
            }
        }

        // The crashes: 20 of the server, 5 of Redis among them, spread over the load.
        for round in 0..<20 {
            // Spread over the load: the next crash once acks for a 22nd more of the worked runs were sent.
            let progress = (round + 1) * (Self.total - Self.expiring) / 22
            try await waitUntil("round \(round): \(progress) acks sent", within: .seconds(300)) {
                ledger.state.withLock { $0.acksSent } >= progress
            }
            if round % 7 == 3 {
                // PostgreSQL goes away under the running server, until the server has seen it, then comes back.
                proxy.cut()
                try await waitUntil("the server sees PostgreSQL gone") {
                    do {
                        _ = try await client.getRun(runID: n("probe"))
                        return false
                    } catch {
                        return (error as? RunQueueError)?.code == .unavailable
                    }
                }
                proxy.restore()
            }
            server.kill()
            if round % 4 == 1 {
                stack.redis.kill()
                try stack.redis.start()
            }
            try server.launch()
            _ = try await server.connect()
        }

        // Drain: every worked run COMPLETED, every expiring run EXPIRED.
        try await waitUntil("every run finished in PostgreSQL", within: .seconds(600), every: .milliseconds(500)) {
            try stack.database.sql("SELECT count(*) FROM runs WHERE status IN ('COMPLETED', 'EXPIRED') AND id LIKE '\(n.prefix)%'") == String(Self.total)
        }
        ledger.done.withLock { $0 = true }
        await producer.value
        for worker in workers { await worker.value }
        await client.close()

        let seen = ledger.state.withLock { $0 }
        #expect(seen.enqueued.count == runs.count / 250)
        // Nothing lost: every run has its row, finished the right way.
        let statuses = try stack.database.sql("SELECT status || ' ' || count(*) FROM runs GROUP BY status ORDER BY status::text")
        #expect(statuses == "COMPLETED \(Self.total - Self.expiring)\nEXPIRED \(Self.expiring)", "\(statuses)")
        // Each expired run has exactly one event; no other run has one.
        #expect(try stack.database.sql("SELECT count(*) || ' ' || count(DISTINCT run_id) FROM expiry_events") == "\(Self.expiring) \(Self.expiring)")
        #expect(try stack.database.sql("SELECT count(*) FROM expiry_events e JOIN runs r ON r.id = e.run_id WHERE r.status <> 'EXPIRED'") == "0")
        // Each acked run is COMPLETED and never delivered after its ack answered.
        let completed = Set(try stack.database.sql("SELECT id FROM runs WHERE status = 'COMPLETED'").split(separator: "\n").map(String.init))
        #expect(seen.ackedAt.keys.allSatisfy { completed.contains($0) })
        let late = seen.deliveries.filter { delivery in seen.ackedAt[delivery.runID].map { delivery.sentAt > $0 } ?? false }
        #expect(late.isEmpty, "\(late.count) deliveries after the run's ack, e.g. \(late.prefix(3).map(\.runID))")
        // The expiring runs were never delivered.
        #expect(!seen.deliveries.contains { $0.runID.hasPrefix(n("x")) })
    }
}
