import ArgumentParser
import RunQueueClient
import RunQueueCore

struct SubscribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Stream expiry events, one per line, until interrupted.",
        discussion: """
            Starts live (events from now on), after --resume-after CURSOR, or with \
            --replay at the oldest retained event. The stream survives server restarts: \
            it reconnects and resumes after the last cursor printed, without gaps or \
            duplicates. Save the last cursor printed to resume later.

            Examples:
              runqueue subscribe --environment-id env_1 --json
              runqueue subscribe --resume-after 1041 --count 100
              cursor=1042 run_id=run_7 environment_id=env_1 queue=emails ttl=10m ...
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only events of this organization.")
    var orgID = ""

    @Option(help: "Only events of this project.")
    var projectID = ""

    @Option(help: "Only events of this environment.")
    var environmentID = ""

    @Option(help: "Only events of this queue.")
    var queue = ""

    @Option(help: ArgumentHelp("Start after this cursor.", valueName: "cursor"))
    var resumeAfter: UInt64 = 0

    @Flag(help: "Start at the oldest retained event.")
    var replay = false

    @Option(help: "Exit after this many events (default: run until interrupted).")
    var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        var configuration = try global.configuration()
        configuration.defaultTimeout = nil
        let client = RunQueueClient(configuration)
        let filter = ExpiryFilter(orgID: orgID, projectID: projectID, environmentID: environmentID, queue: queue)
        var printed = 0
        do {
            for try await event in client.subscribeExpiry(filter: filter, resumeAfter: resumeAfter, replay: replay) {
                if global.json { Output.json(event.json) } else { Output.line(event.line) }
                printed += 1
                if let count, printed >= count { break }
            }
        } catch {
            await client.close()
            Output.error("error: \(error.code.name): \(error.message)")
            throw ExitCode(ExitStatus.callFailed)
        }
        await client.close()
    }
}
