import Foundation
import RunQueueCore
import Testing
import TestSupport

/// The `runqueue` executable as a process: exit codes, --json output, help.
extension ProductProcess.Outcome {
    /// stdout's lines parsed as JSON objects (the CLI's --json output).
    func jsonLines() throws -> [[String: Any]] {
        try stdout.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try #require(object as? [String: Any], "not a JSON object: \(line)")
        }
    }

    /// stdout as one JSON object (runqueue-load's --json report).
    func report() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try #require(object as? [String: Any], "not a JSON object: \(stdout)")
    }
}

@Suite(.tags(.integration), .needsServices) struct CLITests {
    typealias Outcome = ProductProcess.Outcome

    /// The runqueue binary: $RUNQUEUE_CLI_BIN, else next to the test bundle, else .build/debug.
    static var binary: URL { ProductProcess.binary("runqueue", environmentVariable: "RUNQUEUE_CLI_BIN") }

    /// Runs `runqueue arguments...` to completion (stdin from `input`, if any).
    static func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil,
                    killAfterSeconds: Double = 60) async throws -> Outcome {
        let binary = Self.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path),
                     "runqueue not built at \(binary.path) (swift build --build-tests builds it; or set RUNQUEUE_CLI_BIN)")
        return try await ProductProcess.run(binary, arguments, environment: environment, input: input, killAfterSeconds: killAfterSeconds)
    }

    static func descriptorFlags(_ n: Names, _ id: String, ttl: String? = nil) -> [String] {
        var flags = ["--run-id", n(id), "--org-id", n("org"), "--project-id", n("proj"), "--environment-id", n("env"),
                     "--environment-type", "production", "--queue", "q", "--worker-queue", n("wq"), "--task-identifier", "task"]
        if let ttl { flags += ["--ttl", ttl] }
        return flags
    }

    @Test func aRunGoesThroughTheCLIWithJSONOutput() async throws {
        let test = try await TestServer.ready()
        let server = ["--server", test.hostPort]
        let n = Names()

        let ping = try await Self.run(["ping", "--json"] + server)
        #expect(ping.status == 0, "\(ping.stderr)")
        let pong = try #require(try ping.jsonLines().first)
        #expect((pong["server_version"] as? String)?.hasPrefix("runqueued") == true)
        #expect(pong["rtt_ms"] is NSNumber)

        let enqueue = try await Self.run(["enqueue", "--json"] + server + Self.descriptorFlags(n, "a", ttl: "1h"))
        #expect(enqueue.status == 0, "\(enqueue.stderr)")
        let created = try #require(try enqueue.jsonLines().first)
        #expect(created["run_id"] as? String == n("a"))
        #expect(created["status"] as? String == "OK")
        #expect(created["created"] as? Bool == true)
        #expect(((created["expires_at_ms"] as? NSNumber)?.int64Value ?? 0) > nowMs())

        let stats = try await Self.run(["stats", "--json", "--environment-id", n("env")] + server)
        #expect(stats.status == 0)
        #expect((try stats.jsonLines().first?["length"] as? NSNumber)?.intValue == 1)

        let dequeue = try await Self.run(["dequeue", "--json", "--worker-queue", n("wq"), "--max-runs", "5"] + server)
        #expect(dequeue.status == 0, "\(dequeue.stderr)")
        let messages = try dequeue.jsonLines()
        #expect(messages.count == 1)
        #expect(messages.first?["run_id"] as? String == n("a"))
        #expect(messages.first?["environment_type"] as? String == "PRODUCTION")
        #expect((messages.first?["attempt"] as? NSNumber)?.intValue == 0)

        let read = try await Self.run(["read", "--json", "--run-id", n("a"), "--environment-id", n("env")] + server)
        #expect(read.status == 0)
        #expect(try read.jsonLines().first?["source"] as? String == "REDIS_V4")

        let heartbeat = try await Self.run(["heartbeat", "--json", "--run-id", n("a"), "--environment-id", n("env"),
                                            "--lease-ms", "60000", "--attempt", "0"] + server)
        #expect(heartbeat.status == 0, "\(heartbeat.stderr)")

        let ack = try await Self.run(["ack", "--json", "--run-id", n("a"), "--environment-id", n("env"), "--attempt", "0"] + server)
        #expect(ack.status == 0)
        #expect(try ack.jsonLines().first?["acked"] as? Bool == true)

        // Human output: one key=value line.
        let again = try await Self.run(["ack", "--run-id", n("a"), "--environment-id", n("env")] + server)
        #expect(again.status == 0)
        #expect(again.stdout == "acked=false run_id=\(n("a"))\n")
        #expect(await test.server.stop() == 0)
    }

    @Test func nackLimitsAndRedriveWorkFromTheCLI() async throws {
        let test = try await TestServer.ready { config in
            config.queue.backoff = NackBackoff(factor: 2, minMs: 1000, maxMs: 1000, maxAttempts: 1)
        }
        let server = ["--server", test.hostPort]
        let n = Names()
        let limit = try await Self.run(["limits", "set", "--json", "--environment-id", n("env"), "--queue", "q", "--limit", "3"] + server)
        #expect(limit.status == 0, "\(limit.stderr)")
        #expect((try limit.jsonLines().first?["limit"] as? NSNumber)?.intValue == 3)
        let stats = try await Self.run(["stats", "--json", "--environment-id", n("env"), "--queue", "q"] + server)
        #expect((try stats.jsonLines().first?["concurrency_limit"] as? NSNumber)?.intValue == 3)
        let clear = try await Self.run(["limits", "clear", "--environment-id", n("env"), "--queue", "q"] + server)
        #expect(clear.status == 0)

        #expect(try await Self.run(["enqueue"] + server + Self.descriptorFlags(n, "a")).status == 0)
        #expect(try await Self.run(["dequeue", "--worker-queue", n("wq")] + server).status == 0)
        let nack = try await Self.run(["nack", "--json", "--run-id", n("a"), "--environment-id", n("env")] + server)
        #expect(nack.status == 0, "\(nack.stderr)")
        #expect(try nack.jsonLines().first?["dead_lettered"] as? Bool == true)
        let redrive = try await Self.run(["redrive", "--json", "--run-id", n("a"), "--environment-id", n("env")] + server)
        #expect(try redrive.jsonLines().first?["requeued"] as? Bool == true)
        let notDead = try await Self.run(["redrive", "--run-id", n("a"), "--environment-id", n("env")] + server)
        #expect(notDead.status == 1)
        #expect(notDead.stderr.hasPrefix("error: FAILED_PRECONDITION: "))
        #expect(await test.server.stop() == 0)
    }

    @Test func enqueueFromAJSONLinesFileReportsEachRun() async throws {
        let test = try await TestServer.ready()
        let n = Names()
        let lines = [
            #"{"run_id":"\#(n("f1"))","queue":"q","ttl":"30m"}"#,
            "",
            #"{"runId":"\#(n("f2"))","queue":"q","timestampMs":"1700000000000"}"#,
            #"{"run_id":"\#(n("f3"))","queue":"has space"}"#,
        ].joined(separator: "\n")
        let defaults = ["--org-id", n("org"), "--project-id", n("proj"), "--environment-id", n("env"),
                        "--environment-type", "production", "--worker-queue", n("wq")]
        let outcome = try await Self.run(["enqueue", "--file", "-", "--json", "--server", test.hostPort] + defaults, input: lines)
        #expect(outcome.status == 1)
        let results = try outcome.jsonLines()
        #expect(results.map { $0["run_id"] as? String } == [n("f1"), n("f2"), n("f3")])
        #expect(results.map { $0["status"] as? String } == ["OK", "OK", "INVALID_ARGUMENT"])
        #expect(outcome.stderr.contains("error: run_id \(n("f3")): INVALID_ARGUMENT: "))

        let bad = try await Self.run(["enqueue", "--file", "-", "--server", test.hostPort] + defaults,
                                     input: #"{"run_id":"x","queue":"q","colour":"red"}"#)
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("line 1: unknown field \"colour\""))
        #expect(await test.server.stop() == 0)
    }

    @Test func aCallErrorExits1WithTheStatusNameOnStderr() async throws {
        let test = try await TestServer.ready()
        let n = Names()
        let outcome = try await Self.run(["enqueue", "--server", test.hostPort] + Self.descriptorFlags(n, "a", ttl: "10 m"))
        #expect(outcome.status == 1)
        #expect(outcome.stdout.isEmpty)
        #expect(outcome.stderr.hasPrefix("error: INVALID_ARGUMENT: "), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("ttl"))

        let get = try await Self.run(["get", "--run-id", "r1", "--server", test.hostPort])
        #expect(get.status == 1)
        #expect(get.stderr.hasPrefix("error: NOT_FOUND: ") || get.stderr.hasPrefix("error: UNIMPLEMENTED: "), "\(get.stderr)")
        let repair = try await Self.run(["repair", "--redis-url", "redis://127.0.0.1:\(TestServices.unusedPort())",
                                         "--database-url", "postgres://postgres@127.0.0.1:\(TestServices.unusedPort())/postgres"])
        #expect(repair.status == 1 && repair.stderr.hasPrefix("error: UNAVAILABLE: "), "\(repair.stderr)")
        #expect(await test.server.stop() == 0)
    }

    @Test func subscribePrintsExpiryEventsAsJSONLines() async throws {
        let test = try await TestServer.ready()
        let n = Names()
        let enqueue = try await Self.run(["enqueue", "--server", test.hostPort] + Self.descriptorFlags(n, "a", ttl: "1s"))
        #expect(enqueue.status == 0)
        let outcome = try await Self.run(["subscribe", "--json", "--replay", "--count", "1", "--environment-id", n("env"),
                                          "--server", test.hostPort], killAfterSeconds: 20)
        if outcome.status == 1 {
            // A server from before the expiry stream.
            #expect(outcome.stderr.hasPrefix("error: UNIMPLEMENTED: "), "\(outcome.stderr)")
        } else {
            #expect(outcome.status == 0, "\(outcome.stderr)")
            let events = try outcome.jsonLines()
            #expect(events.count == 1)
            #expect(events.first?["run_id"] as? String == n("a"))
            #expect(((events.first?["cursor"] as? NSNumber)?.uint64Value ?? 0) > 0)
        }
        #expect(await test.server.stop() == 0)
    }

    @Test func anUnreachableServerExits1WithUnavailable() async throws {
        let outcome = try await Self.run(["ping"], environment: ["RUNQUEUE_SERVER": "127.0.0.1:\(TestServices.unusedPort())"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.hasPrefix("error: UNAVAILABLE: cannot connect to 127.0.0.1:"), "\(outcome.stderr)")
    }

    @Test func theServerAddressComesFromTheEnvironment() async throws {
        let test = try await TestServer.ready()
        let outcome = try await Self.run(["ping"], environment: ["RUNQUEUE_SERVER": test.hostPort])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.hasPrefix("pong from \(test.hostPort) "))
        #expect(await test.server.stop() == 0)
    }

    @Test(arguments: [
        ["ack", "--environment-id", "e"],                        // missing --run-id
        ["enqueue", "--run-id", "r"],                           // missing descriptor fields
        ["enqueue", "--file", "x.jsonl", "--batch-size", "0"],
        ["dequeue", "--worker-queue", "w", "--max-runs", "many"],
        ["ping", "--timeout", "soon"],
        ["ping", "--server", "localhost"],
        ["ping", "--no-such-flag"],
        ["enqueue", "--run-id", "r", "--environment-type", "moon"],
        ["limits", "set", "--environment-id", "e", "--queue", "q", "--limit", "1", "--burst-factor", "2"],
        ["no-such-command"],
    ])
    func badUsageExits2(_ arguments: [String]) async throws {
        let outcome = try await Self.run(arguments, environment: ["RUNQUEUE_SERVER": "127.0.0.1:\(TestServices.unusedPort())"])
        #expect(outcome.status == 2, "\(arguments): \(outcome.stderr)")
        #expect(!outcome.stderr.isEmpty)
        #expect(outcome.stdout.isEmpty)
    }

    @Test(arguments: ["ping", "enqueue", "dequeue", "ack", "nack", "heartbeat", "read", "get", "stats",
                      "limits", "limits set", "limits clear", "redrive", "subscribe", "repair"])
    func everySubcommandsHelpShowsAnExample(_ command: String) async throws {
        let outcome = try await Self.run(command.split(separator: " ").map(String.init) + ["--help"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout.contains("Example"), "\(command) --help has no example")
        #expect(outcome.stdout.contains("runqueue \(command)"))
    }
}
