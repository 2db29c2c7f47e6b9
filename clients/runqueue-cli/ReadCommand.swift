import ArgumentParser
import RunQueueClient

struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Show a run's message and where the server found it.",
        discussion: """
            Example:
              runqueue read --run-id run_1 --environment-id env_1
              source=REDIS_V4 run_id=run_1 environment_id=env_1 queue=emails attempt=0 ...
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var run: RunReference

    func run() async throws {
        try await global.withClient { client in
            let answer = try await client.readMessage(runID: run.runID, environmentID: run.environmentID)
            if global.json {
                Output.json(.object([("source", .string(answer.source.name)), ("message", answer.message.map(\.json) ?? .null)]))
            } else {
                Output.line("source=\(answer.source.name) " + (answer.message?.line ?? "run_id=\(run.runID) (no message)"))
            }
        }
    }
}
