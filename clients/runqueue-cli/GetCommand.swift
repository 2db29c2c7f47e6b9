import ArgumentParser
import RunQueueClient

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show a run's record from PostgreSQL: status, attempts, TTL and timestamps.",
        discussion: """
            Example:
              runqueue get --run-id run_1 --json
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The run id.")
    var runID: String

    func run() async throws {
        try await global.withClient { client in
            let record = try await client.getRun(runID: runID)
            if global.json { Output.json(record.json) } else { Output.line(record.line) }
        }
    }
}
