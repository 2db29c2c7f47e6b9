import ArgumentParser
import RunQueueClient

struct DequeueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dequeue",
        abstract: "Lease runs from a worker queue; prints one run per line.",
        discussion: """
            Leased runs must be acked (or nacked) before their lease lapses, or they \
            come back with the next attempt. Prints nothing on stdout when no run was available.

            Example:
              runqueue dequeue --worker-queue main --max-runs 10 --wait-ms 5000 --lease-ms 60000 --json
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The worker queue to take runs from.")
    var workerQueue: String

    @Option(help: "At most this many runs (1...1000).")
    var maxRuns: UInt32 = 1

    @Option(help: "Long poll: wait up to this many ms for a run (0...30000).")
    var waitMs: UInt32 = 0

    @Option(help: "Lease length in ms (0 = the server's default, else 1000...86400000).")
    var leaseMs: UInt32 = 0

    func run() async throws {
        try await global.withClient { client in
            let messages = try await client.dequeue(workerQueue: workerQueue, maxRuns: maxRuns, waitMs: waitMs, leaseMs: leaseMs)
            for message in messages {
                if global.json { Output.json(message.json) } else { Output.line(message.line) }
            }
            if messages.isEmpty, !global.json { Output.error("no runs available") }
        }
    }
}
