import ArgumentParser
import RunQueueCore

/// `--environment-type`: development, staging, preview or production (any
/// case, the proto name, or the number 1...4).
struct EnvironmentTypeArgument: ExpressibleByArgument, Sendable {
    let value: EnvironmentType

    init?(argument: String) {
        let text = argument.uppercased()
        if let number = Int32(text), let value = EnvironmentType(rawValue: number), value != .unspecified {
            self.value = value
            return
        }
        let aliases: [String: EnvironmentType] = ["DEV": .development, "PROD": .production, "STAGE": .staging]
        guard let value = EnvironmentType(name: text) ?? aliases[text], value != .unspecified else { return nil }
        self.value = value
    }

    static var allValueStrings: [String] { ["development", "staging", "preview", "production"] }
}

/// `--run-id` and `--environment-id`: which run a per-run command is about.
struct RunReference: ParsableArguments {
    @Option(help: "The run id.")
    var runID: String

    @Option(help: "The run's environment id.")
    var environmentID: String
}

/// `--attempt`: the optional fence of ack, nack and heartbeat.
struct FenceOption: ParsableArguments {
    @Option(help: ArgumentHelp("Only if the run is at this attempt (the `attempt` of the dequeued message); else FAILED_PRECONDITION.",
                               valueName: "n"))
    var attempt: UInt32?
}
