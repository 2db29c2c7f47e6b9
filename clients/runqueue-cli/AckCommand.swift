import ArgumentParser
import RunQueueClient

struct AckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ack",
        abstract: "Mark a leased run as done.",
        discussion: """
            Prints whether the run was acked; a run that was not in flight is not an \
            error (acked=false, exit 0).

            Example:
              runqueue ack --run-id run_1 --environment-id env_1 --attempt 0
              acked=true run_id=run_1
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var run: RunReference
    @OptionGroup var fence: FenceOption

    func run() async throws {
        try await global.withClient { client in
            let acked = try await client.ack(runID: run.runID, environmentID: run.environmentID, attempt: fence.attempt)
            if global.json {
                Output.json(.object([("run_id", .string(run.runID)), ("acked", .bool(acked))]))
            } else {
                Output.line(Output.fields([("acked", String(acked)), ("run_id", run.runID)]))
            }
        }
    }
}
