import Foundation
import RunQueueCore
import Synchronization
import Testing
import TestSupport

/// The `runqueue-load` executable as a process: short scenarios against an
/// in-process server (and, for the expiry scenario, a scripted one that
/// streams expiry events), their JSON reports and charts, and the exit codes.
/// Serialized: one in-process server at a time, so the scenarios do not load
/// each other's server (they all share the test Redis and PostgreSQL).
@Suite(.serialized, .tags(.integration), .needsServices) struct LoadTests {
    typealias Outcome = ProductProcess.Outcome

    /// The runqueue-load binary: $RUNQUEUE_LOAD_BIN, else next to the test bundle, else .build/debug.
    static var binary: URL { ProductProcess.binary("runqueue-load", environmentVariable: "RUNQUEUE_LOAD_BIN") }

    /// Runs `runqueue-load arguments...` to completion (killed after `killAfterSeconds`).
    static func run(_ arguments: [String], environment: [String: String] = [:], killAfterSeconds: Double = 60) async throws -> Outcome {
        let binary = Self.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path),
                     "runqueue-load not built at \(binary.path) (swift build --build-tests builds it; or set RUNQUEUE_LOAD_BIN)")
        return try await ProductProcess.run(binary, arguments, environment: environment, killAfterSeconds: killAfterSeconds)
    }

    static func number(_ object: [String: Any]?, _ key: String) -> Double? {
        (object?[key] as? NSNumber)?.doubleValue
    }

    /// A call's (or measure's) entry has every percentile, in order.
    static func expectPercentiles(_ entry: [String: Any]?, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let latency = entry?["latency_ms"] as? [String: Any]
        let values = ["min", "p50", "p90", "p99", "p99.9", "max"].map { number(latency, $0) }
        #expect(!values.contains(nil), "\(name): latency_ms lacks a percentile: \(String(describing: latency))", sourceLocation: sourceLocation)
        let present = values.compactMap { $0 }
        #expect(present == present.sorted(), "\(name): percentiles out of order: \(present)", sourceLocation: sourceLocation)
        #expect(number(latency, "mean") != nil, sourceLocation: sourceLocation)
    }

    @Test func aClosedLoopCycleReportsEveryRunEnqueuedDequeuedAndAckedAndPlotsIt() async throws {
        let test = try await TestServer.ready()
        let plot = FileManager.default.temporaryDirectory.appendingPathComponent("runqueue-load-\(UUID().uuidString).svg")
        defer { try? FileManager.default.removeItem(at: plot) }
        let outcome = try await Self.run(["cycle", "--server", test.hostPort, "--duration", "2s", "--connections", "2", "--window", "4",
                                          "--consumers", "2", "--drain-timeout", "10s", "--json", "--plot", plot.path],
                                         killAfterSeconds: 40)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let report = try outcome.report()
        #expect(report["scenario"] as? String == "cycle")
        #expect(report["mode"] as? String == "closed-loop")
        #expect((report["prefix"] as? String)?.isEmpty == false)
        #expect(Self.number(report["throughput"] as? [String: Any], "runs_per_s") ?? 0 > 0)
        let runs = try #require(report["runs"] as? [String: Any])
        let errors = report["errors"] as? [String: Any] ?? [:]
        let enqueued = try #require(Self.number(runs, "enqueued"))
        #expect(enqueued > 0)
        // The scenario drains: every run enqueued was dequeued once and acked.
        #expect(Self.number(runs, "dequeued") == enqueued, "\(runs) \(errors)")
        #expect(Self.number(runs, "acked") == enqueued, "\(runs) \(errors)")
        #expect(Self.number(runs, "left") == 0, "\(runs) \(errors)")
        #expect(Self.number(runs, "enqueue_failed") == 0, "\(runs) \(errors)")
        #expect(Self.number(report, "error_count") == 0, "\(errors)")
        let calls = try #require(report["calls"] as? [String: Any])
        #expect(Set(calls.keys) == ["Enqueue", "Dequeue", "Ack"])
        for (name, entry) in calls { Self.expectPercentiles(entry as? [String: Any], name) }
        #expect(Self.number(calls["Enqueue"] as? [String: Any], "ok") == enqueued)
        #expect(Self.number(calls["Ack"] as? [String: Any], "ok") == enqueued)
        #expect(Self.number(calls["Dequeue"] as? [String: Any], "runs") == enqueued)
        let measures = try #require(report["measures"] as? [String: Any])
        Self.expectPercentiles(measures["run_latency"] as? [String: Any], "run_latency")
        #expect(Self.number(measures["run_latency"] as? [String: Any], "count") == enqueued)
        // Progress lines on stderr, once a second.
        #expect(outcome.stderr.contains("producing] Enqueue "), "\(outcome.stderr)")

        let svg = try String(contentsOf: plot, encoding: .utf8)
        #expect(svg.hasPrefix("<svg"))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("<polyline"))
        for name in ["Enqueue", "Dequeue", "Ack", "run_latency", ">0%<", ">90%<", ">99%<"] {
            #expect(svg.contains(name), "\(name) not in the chart")
        }
        _ = await test.server.stop()  // its shutdown hygiene is the server tests' business
    }

    @Test func anOpenLoopCycleSendsOnScheduleAndDrains() async throws {
        let test = try await TestServer.ready()
        let outcome = try await Self.run(["cycle", "--server", test.hostPort, "--rate", "200", "--duration", "1s", "--drain-timeout", "10s",
                                          "--json", "--quiet"],
                                         killAfterSeconds: 40)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stderr.isEmpty, "--quiet: \(outcome.stderr)")
        let report = try outcome.report()
        #expect(report["mode"] as? String == "open-loop")
        #expect(Self.number(report["config"] as? [String: Any], "rate") == 200)
        let runs = try #require(report["runs"] as? [String: Any])
        let errors = report["errors"] as? [String: Any] ?? [:]
        // 200 runs/s for 1 s: sends scheduled at 0, 5, ..., 995 ms.
        #expect(Self.number(runs, "enqueued") == 200, "\(runs) \(errors)")
        #expect(Self.number(runs, "dequeued") == 200, "\(runs) \(errors)")
        #expect(Self.number(runs, "acked") == 200, "\(runs) \(errors)")
        #expect(Self.number(runs, "left") == 0, "\(runs) \(errors)")
        #expect(Self.number(report, "error_count") == 0, "\(errors)")
        let calls = try #require(report["calls"] as? [String: Any])
        Self.expectPercentiles(calls["Enqueue"] as? [String: Any], "Enqueue")
        _ = await test.server.stop()
    }

    @Test func theEnqueueScenarioBatchesAndCleansUp() async throws {
        let test = try await TestServer.ready()
        let outcome = try await Self.run(["enqueue", "--server", test.hostPort, "--batch-size", "50", "--count", "500",
                                          "--connections", "1", "--window", "2", "--json"], killAfterSeconds: 40)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let report = try outcome.report()
        let runs = try #require(report["runs"] as? [String: Any])
        #expect(Self.number(runs, "enqueued") == 500, "\(runs)")
        #expect(Self.number(runs, "cleaned_up") == 500, "\(runs)")
        #expect(Self.number(runs, "left") == 0, "\(runs)")
        let batch = try #require((report["calls"] as? [String: Any])?["EnqueueBatch"] as? [String: Any])
        #expect(Self.number(batch, "ok") == 10)
        #expect(Self.number(batch, "runs") == 500)
        Self.expectPercentiles(batch, "EnqueueBatch")

        // The human report: a table row per call.
        let text = try await Self.run(["enqueue", "--server", test.hostPort, "--count", "20", "--quiet"], killAfterSeconds: 40)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("runs: 20 enqueued"), "\(text.stdout)")
        #expect(text.stdout.contains("p99.9"))
        #expect(text.stdout.split(separator: "\n").contains { $0.hasPrefix("Enqueue ") })
        _ = await test.server.stop()
    }

    @Test func theExpiryScenarioRunsOrSaysTheServerCannotStreamExpiryEvents() async throws {
        let test = try await TestServer.ready()
        let outcome = try await Self.run(["expiry", "--server", test.hostPort, "--ttl", "1s", "--duration", "500ms", "--rate", "20",
                                          "--json", "--drain-timeout", "3s"], killAfterSeconds: 40)
        if outcome.status == 1 {
            // runqueued before the expiry stream.
            #expect(outcome.stderr.contains("SubscribeExpiry: UNIMPLEMENTED"), "\(outcome.stderr)")
            #expect(outcome.stdout.isEmpty)
        } else {
            // The server's own expiry tests check that every event arrives;
            // here the scenario runs and its report parses.
            #expect(outcome.status == 0, "\(outcome.stderr)")
            let report = try outcome.report()
            let runs = try #require(report["runs"] as? [String: Any])
            #expect(Self.number(runs, "expiring") == 10, "\(runs)")
            #expect(Self.number(runs, "events") ?? 0 <= 10, "\(runs)")
            let lateness = (report["measures"] as? [String: Any])?["expiry_lateness"] as? [String: Any]
            #expect(Self.number(lateness, "count") == Self.number(runs, "events"))
            if Self.number(runs, "events") ?? 0 > 0 { Self.expectPercentiles(lateness, "expiry_lateness") }
        }
        _ = await test.server.stop()
    }

    @Test func theExpiryScenarioMeasuresLatenessFromAStreamOfEvents() async throws {
        let fake = try FakeServer()
        let hub = ExpiryHub()
        let serving = Task { await hub.serve(fake) }
        defer { serving.cancel() }
        let outcome = try await Self.run(["expiry", "--server", fake.hostPort, "--ttl", "1s", "--rate", "50", "--duration", "1s",
                                          "--connections", "1", "--subscribers", "2", "--json", "--quiet"], killAfterSeconds: 30)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let report = try outcome.report()
        let runs = try #require(report["runs"] as? [String: Any])
        #expect(Self.number(runs, "enqueued") == 50)
        #expect(Self.number(runs, "expiring") == 50)
        #expect(Self.number(runs, "events") == 100)  // every event to both subscribers
        #expect(Self.number(runs, "missing_events") == 0)
        let measures = try #require(report["measures"] as? [String: Any])
        let lateness = try #require(measures["expiry_lateness"] as? [String: Any])
        Self.expectPercentiles(lateness, "expiry_lateness")
        #expect(Self.number(lateness, "count") == 100)
        // The fake sends each event ExpiryHub.delayMs after its deadline, or
        // later on a busy machine, never sooner; the upper bound only rules
        // out a figure in the wrong unit.
        let p50 = try #require(Self.number(lateness["latency_ms"] as? [String: Any], "p50"))
        #expect(p50 >= Double(ExpiryHub.delayMs) - 5 && p50 < 10_000, "lateness p50 \(p50)")
        let calls = try #require(report["calls"] as? [String: Any])
        #expect(Self.number(calls["SubscribeExpiry"] as? [String: Any], "ok") == 2)
    }

    @Test(arguments: [
        ["cycle", "--batch-size", "0"],
        ["cycle", "--rate", "-5"],
        ["cycle", "--duration", "soon"],
        ["enqueue", "--count", "0"],
        ["cycle", "--max-runs", "2000"],
        ["expiry", "--ttl", "0"],
        ["cycle", "--server", "localhost"],
        ["cycle", "--no-such-flag"],
        ["no-such-scenario"],
    ])
    func badUsageExits2(_ arguments: [String]) async throws {
        let outcome = try await Self.run(arguments, environment: ["RUNQUEUE_SERVER": "127.0.0.1:\(TestServices.unusedPort())"])
        #expect(outcome.status == 2, "\(arguments): \(outcome.stderr)")
        #expect(!outcome.stderr.isEmpty)
        #expect(outcome.stdout.isEmpty)
    }

    @Test func anUnreachableServerExits1() async throws {
        let outcome = try await Self.run(["cycle", "--duration", "1s"],
                                         environment: ["RUNQUEUE_SERVER": "127.0.0.1:\(TestServices.unusedPort())"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("UNAVAILABLE"), "\(outcome.stderr)")
        #expect(outcome.stdout.isEmpty)
    }
}

/// A scripted server for the expiry scenario: answers Hello, Ping and
/// Enqueue (a deadline 300 ms out whatever the TTL), opens SubscribeExpiry
/// streams, and sends every subscriber an ExpiryEvent `delayMs` after each
/// run's deadline.
actor ExpiryHub {
    static let ttlMs: Int64 = 300
    static let delayMs: Int64 = 20

    private var streams: [(FakeConnection, UInt64)] = []
    private var cursor: UInt64 = 0

    nonisolated func serve(_ fake: FakeServer) async {
        await withTaskGroup(of: Void.self) { group in
            while !Task.isCancelled, let connection = try? await fake.accept() {
                group.addTask { await self.serve(connection) }
            }
            group.cancelAll()
        }
    }

    nonisolated private func serve(_ connection: FakeConnection) async {
        while !Task.isCancelled, let request = try? await connection.readRequest() {
            switch request.call {
            case .hello?:
                await send(connection, Response(callID: request.callID, result: .hello(
                    HelloResponse(serverVersion: "fake", maxFrameBytes: 1 << 20, shardCount: 1))))
            case .ping(let ping)?:
                await send(connection, Response(callID: request.callID, result: .ping(PingResponse(payload: ping.payload))))
            case .enqueue(let enqueue)?:
                let deadline = Self.nowMs() + Self.ttlMs
                await send(connection, Response(callID: request.callID, result: .enqueue(EnqueueResponse(created: true, expiresAtMs: deadline))))
                let run = enqueue.run
                Task {
                    try? await Task.sleep(for: .milliseconds(Self.ttlMs + Self.delayMs))
                    await self.expire(run, deadline: deadline)
                }
            case .subscribeExpiry?:
                await subscribe(connection, request.callID)
            case .cancel?:
                connection.close()
                return
            default:
                await send(connection, Response.error(callID: request.callID, .unimplemented, "not in this fake"))
            }
        }
    }

    private func send(_ connection: FakeConnection, _ response: Response) {
        try? connection.send(response)
    }

    private func subscribe(_ connection: FakeConnection, _ callID: UInt64) {
        streams.append((connection, callID))
        try? connection.send(Response(callID: callID, result: .subscribeExpiry(SubscribeExpiryResponse(liveFromCursor: cursor))))
    }

    private func expire(_ run: RunDescriptor, deadline: Int64) {
        cursor += 1
        let event = ExpiryEvent(cursor: cursor, runID: run.runID, orgID: run.orgID, projectID: run.projectID,
                                environmentID: run.environmentID, environmentType: run.environmentType, queue: run.queue,
                                taskIdentifier: run.taskIdentifier, ttl: run.ttl, expiresAtMs: deadline, expiredAtMs: Self.nowMs())
        for (connection, callID) in streams {
            try? connection.send(Response(callID: callID, result: .expiryEvent(event)))
        }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
