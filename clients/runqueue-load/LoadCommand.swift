import ArgumentParser
import CommandLineSupport
import Foundation
import RunQueueClient

/// `runqueue-load`: one subcommand per scenario.
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runqueue-load",
        abstract: "Load-test a runqueued server and report throughput, errors and latency percentiles.",
        discussion: """
            Scenarios: enqueue, cycle (enqueue -> dequeue -> ack), expiry (TTL lateness), \
            subscribe (expiry fan-out to many subscribers).

            Closed loop (default): --connections N connections with --window W calls in flight \
            each, as fast as the server answers. Open loop: --rate R runs per second on a fixed \
            schedule; latency is measured from each call's intended send time, so a stalled \
            server shows up in the percentiles (corrected for coordinated omission).

            Every run uses ids with a random prefix (printed in the report), so it never touches \
            other data. A progress line goes to stderr once a second; the report goes to stdout \
            (--json: one JSON object). --plot FILE writes a latency-percentile chart (SVG).

            Exit codes: 0 the scenario ran (error statuses are counted in the report), \
            1 it could not run, 2 bad usage.

            Examples:
              runqueue-load cycle --duration 30s --connections 4 --window 32
              runqueue-load cycle --rate 5000 --duration 1m --json --plot cycle.svg
              runqueue-load enqueue --batch-size 100 --count 1000000
              runqueue-load expiry --ttl 2s --rate 1000 --duration 20s
            """,
        subcommands: [EnqueueScenario.self, CycleScenario.self, ExpiryScenario.self, SubscribeScenario.self]
    )
}

enum LoadExit {
    static let couldNotRun: Int32 = 1
    static let badUsage: Int32 = 2
}

/// Options every scenario takes.
struct LoadOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Server address, host:port with a numeric host (default: $RUNQUEUE_SERVER, else 127.0.0.1:7420).",
                               valueName: "host:port"))
    var server: String?

    @Option(help: ArgumentHelp("Token for Hello when the server requires one (default: $RUNQUEUE_TOKEN).", valueName: "token"))
    var token: String?

    @Option(help: "Producer connections (the enqueueing side).")
    var connections = 2

    @Option(help: "Calls in flight per producer connection. Open loop: the most calls in flight per connection; a send that has to wait for a free slot is late, and its lateness counts in its latency.")
    var window = 16

    @Option(help: ArgumentHelp("Open loop: enqueue this many runs per second on a fixed schedule (default: closed loop, as fast as possible).",
                               valueName: "runs/s"))
    var rate: Double?

    @Option(help: ArgumentHelp("How long to produce: 500ms, 10s, 2m (default 10s unless --count is given).", valueName: "duration"))
    var duration: DurationArgument?

    @Option(help: ArgumentHelp("Enqueue this many runs, then stop (with --duration: whichever comes first).", valueName: "runs"))
    var count: Int?

    @Option(help: "Runs per enqueue call: 1 sends Enqueue, more sends EnqueueBatch (at most 1000).")
    var batchSize = 1

    @Option(help: "Environments the runs are spread over (round robin per call).")
    var environments = 4

    @Option(help: ArgumentHelp("Deadline of each call (a dequeue's --wait-ms is added).", valueName: "duration"))
    var timeout = DurationArgument(.seconds(30))

    @Option(help: ArgumentHelp("After producing, how long to wait at most for the consumers or subscribers to catch up.",
                               valueName: "duration"))
    var drainTimeout = DurationArgument(.seconds(30))

    @Flag(help: "Print the report as one JSON object on stdout (the shape is in the README).")
    var json = false

    @Option(help: ArgumentHelp("Write a latency-percentile chart (SVG) to this file.", valueName: "file"))
    var plot: String?

    @Flag(help: "No progress line on stderr.")
    var quiet = false

    static let defaultServer = "127.0.0.1:7420"

    var serverAddress: String {
        server ?? ProcessInfo.processInfo.environment["RUNQUEUE_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultServer
    }

    var tokenValue: String { token ?? ProcessInfo.processInfo.environment["RUNQUEUE_TOKEN"] ?? "" }

    /// The production phase's length: --duration, else 10 s unless --count.
    var produceFor: Duration? {
        if let value = duration?.value { return value }
        return count == nil ? .seconds(10) : nil
    }

    func validate() throws {
        guard (try? RunQueueClientConfiguration(server: serverAddress)) != nil else {
            throw ValidationError("--server must be host:port with a numeric host (e.g. 127.0.0.1:7420), got \"\(serverAddress)\"")
        }
        guard connections >= 1, connections <= 1024 else { throw ValidationError("--connections must be 1...1024") }
        guard window >= 1, window <= 100_000 else { throw ValidationError("--window must be 1...100000") }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate must be a positive number of runs per second") }
        if let duration, duration.value == nil { throw ValidationError("--duration must be more than 0") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        guard (1...1000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...1000 (the EnqueueBatch limit)") }
        guard (1...1000).contains(environments) else { throw ValidationError("--environments must be 1...1000") }
        if let plot, plot.isEmpty { throw ValidationError("--plot needs a file name") }
    }
}

/// Options of the scenarios that enqueue with a TTL and subscribe to expiry events.
struct ExpiryOptions: ParsableArguments {
    @Option(help: ArgumentHelp("SubscribeExpiry streams, each on its own connection (default: 1 for expiry, 16 for subscribe).",
                               valueName: "n"))
    var subscribers: Int?

    func validate() throws {
        if let subscribers, !(1...10_000).contains(subscribers) { throw ValidationError("--subscribers must be 1...10000") }
    }
}

struct EnqueueScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue runs (Enqueue, or EnqueueBatch with --batch-size > 1) and time the calls.",
        discussion: """
            The runs go to a worker queue nobody else reads. Afterwards they are drained \
            (Dequeue + Ack, not timed) so nothing is left behind, unless --keep.

            Examples:
              runqueue-load enqueue --duration 10s
              runqueue-load enqueue --batch-size 100 --count 500000 --connections 4 --window 8
              runqueue-load enqueue --rate 2000 --duration 30s --json
            """
    )

    @OptionGroup var options: LoadOptions

    @Option(help: ArgumentHelp("TTL of every run (a safety net: abandoned runs expire); \"\" or 0 = none.", valueName: "ttl"))
    var ttl = "10m"

    @Option(help: "Raise each test environment's concurrency limit to this for the run (restored at the end); 0 = leave the server's default.")
    var concurrencyLimit: UInt32 = 1_000_000

    @Flag(help: "Leave the enqueued runs in the queue (no drain at the end).")
    var keep = false

    func run() async throws {
        var plan = ScenarioPlan(kind: .enqueue, options: options)
        plan.ttl = ttl
        plan.concurrencyLimit = concurrencyLimit
        plan.cleanup = !keep
        try await LoadRunner.main(plan)
    }
}

struct CycleScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cycle",
        abstract: "Producers enqueue runs; consumers dequeue and ack them; reports runs/s and per-call latency.",
        discussion: """
            Producers follow --connections/--window (closed loop) or --rate (open loop). \
            Consumers always pull: --consumers connections x --consumer-window loops, each \
            Dequeue (--max-runs, long poll --wait-ms) then one Ack per run, pipelined. After \
            the production phase the consumers drain the queue (up to --drain-timeout), so \
            every run enqueued is dequeued and acked. "run_latency" is the time from a run's \
            (intended) enqueue to its ack.

            Examples:
              runqueue-load cycle --duration 30s
              runqueue-load cycle --rate 5000 --duration 1m --plot cycle.svg
              runqueue-load cycle --batch-size 100 --consumers 4 --max-runs 100 --json
            """
    )

    @OptionGroup var options: LoadOptions

    @Option(help: ArgumentHelp("Consumer connections (default: --connections).", valueName: "n"))
    var consumers: Int?

    @Option(help: "Dequeue loops per consumer connection.")
    var consumerWindow = 4

    @Option(help: "max_runs of each Dequeue (1...1000).")
    var maxRuns: UInt32 = 100

    @Option(help: "wait_ms of each Dequeue: the long poll when nothing is due (0...30000).")
    var waitMs: UInt32 = 500

    @Option(help: ArgumentHelp("TTL of every run (a safety net: abandoned runs expire); \"\" or 0 = none.", valueName: "ttl"))
    var ttl = "10m"

    @Option(help: "Raise each test environment's concurrency limit to this for the run (restored at the end); 0 = leave the server's default.")
    var concurrencyLimit: UInt32 = 1_000_000

    func validate() throws {
        if let consumers, !(1...1024).contains(consumers) { throw ValidationError("--consumers must be 1...1024") }
        guard (1...10_000).contains(consumerWindow) else { throw ValidationError("--consumer-window must be 1...10000") }
        guard (1...1000).contains(maxRuns) else { throw ValidationError("--max-runs must be 1...1000") }
        guard waitMs <= 30_000 else { throw ValidationError("--wait-ms must be 0...30000") }
    }

    func run() async throws {
        var plan = ScenarioPlan(kind: .cycle, options: options)
        plan.consumers = consumers ?? options.connections
        plan.consumerWindow = consumerWindow
        plan.maxRuns = maxRuns
        plan.waitMs = waitMs
        plan.ttl = ttl
        plan.concurrencyLimit = concurrencyLimit
        try await LoadRunner.main(plan)
    }
}

struct ExpiryScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expiry",
        abstract: "Enqueue runs with a TTL nobody dequeues; a subscriber measures how late each expiry event arrives.",
        discussion: """
            Lateness = the time the subscriber received the ExpiryEvent minus the run's \
            expires_at_ms (both wall clocks: run it on the server's host, or with synchronized \
            clocks). "expiry_delivery" is received minus expired_at_ms (the server's own \
            processing to the client). The subscribers start before the first run is enqueued \
            and stop when every expected event arrived or --drain-timeout after the last deadline.

            Needs a server that implements SubscribeExpiry: against one that answers \
            UNIMPLEMENTED, it says so and exits 1.

            Examples:
              runqueue-load expiry --ttl 1s --duration 10s
              runqueue-load expiry --ttl 5s --rate 2000 --duration 1m --plot expiry.svg
            """
    )

    @OptionGroup var options: LoadOptions
    @OptionGroup var expiry: ExpiryOptions

    @Option(help: ArgumentHelp("TTL of every run.", valueName: "ttl"))
    var ttl = "1s"

    func validate() throws {
        try validateTTL(ttl)
    }

    func run() async throws {
        var plan = ScenarioPlan(kind: .expiry, options: options)
        plan.subscribers = expiry.subscribers ?? 1
        plan.ttl = ttl
        try await LoadRunner.main(plan)
    }
}

struct SubscribeScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Many SubscribeExpiry subscribers receive every expiry event; measures fan-out and lateness.",
        discussion: """
            Like `expiry` with --subscribers streams (each on its own connection): every \
            subscriber should receive every event; the report gives events delivered per \
            second, the missing ones, and the lateness of every delivery.

            Needs a server that implements SubscribeExpiry: against one that answers \
            UNIMPLEMENTED, it says so and exits 1.

            Examples:
              runqueue-load subscribe --subscribers 50 --ttl 1s --rate 500 --duration 20s
            """
    )

    @OptionGroup var options: LoadOptions
    @OptionGroup var expiry: ExpiryOptions

    @Option(help: ArgumentHelp("TTL of every run.", valueName: "ttl"))
    var ttl = "1s"

    func validate() throws {
        try validateTTL(ttl)
    }

    func run() async throws {
        var plan = ScenarioPlan(kind: .subscribe, options: options)
        plan.subscribers = expiry.subscribers ?? 16
        plan.ttl = ttl
        try await LoadRunner.main(plan)
    }
}

/// The expiry scenarios need a real TTL (the server checks the syntax).
private func validateTTL(_ ttl: String) throws {
    let trimmed = ttl.trimmingCharacters(in: .whitespaces)
    if trimmed.isEmpty || trimmed == "0" || trimmed == "0s" {
        throw ValidationError("--ttl must be a TTL such as 1s or 500ms: the scenario measures expiry")
    }
}
