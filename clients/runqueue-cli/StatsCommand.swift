import ArgumentParser
import RunQueueClient

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Queue statistics of an environment, one of its queues, or one concurrency key.",
        discussion: """
            Example:
              runqueue stats --environment-id env_1 --queue emails
              length=12 due=10 in_flight=3 oldest_age_ms=5120 concurrency_limit=100
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The environment id.")
    var environmentID: String

    @Option(help: "One queue (default: the whole environment).")
    var queue = ""

    @Option(help: "One concurrency key of --queue (default: all keys).")
    var concurrencyKey = ""

    func run() async throws {
        try await global.withClient { client in
            let stats = try await client.queueStats(environmentID: environmentID, queue: queue, concurrencyKey: concurrencyKey)
            if global.json { Output.json(stats.json) } else { Output.line(stats.line) }
        }
    }
}
