import ArgumentParser
import RunQueueClient

struct RedriveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redrive",
        abstract: "Requeue a dead-lettered run with attempt 0.",
        discussion: """
            A run that is not dead-lettered fails with FAILED_PRECONDITION (exit 1).

            Example:
              runqueue redrive --run-id run_1 --environment-id env_1
              requeued=true run_id=run_1
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var run: RunReference

    func run() async throws {
        try await global.withClient { client in
            let requeued = try await client.redrive(runID: run.runID, environmentID: run.environmentID)
            if global.json {
                Output.json(.object([("run_id", .string(run.runID)), ("requeued", .bool(requeued))]))
            } else {
                Output.line(Output.fields([("requeued", String(requeued)), ("run_id", run.runID)]))
            }
        }
    }
}
