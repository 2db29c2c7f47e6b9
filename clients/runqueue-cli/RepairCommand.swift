import ArgumentParser

struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Reconcile Redis with PostgreSQL (not available yet).",
        discussion: """
            The server has no repair method yet (protocol v1); this command says so and \
            exits 1. It will take an environment and report what it fixed.

            Example:
              runqueue repair --environment-id env_1
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The environment to repair.")
    var environmentID: String?

    func run() async throws {
        Output.error("error: UNIMPLEMENTED: repair is not available yet: the server has no repair method in protocol v1")
        throw ExitCode(ExitStatus.callFailed)
    }
}
