// runqueue: the command-line client of runqueued.
//
// Exit codes: 0 success; 1 a call failed (the status name and message go to
// stderr); 2 bad usage (ArgumentParser reports usage errors as 64, EX_USAGE;
// they are mapped to 2 here, the convention of the other runqueue tools).
import ArgumentParser
import Foundation

func runCommand(_ arguments: [String]) async throws {
    var command = try await RunQueueCommand.asyncParseAsRoot(arguments)
    if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
}

do {
    try await runCommand(Array(CommandLine.arguments.dropFirst()))
} catch {
    let code = RunQueueCommand.exitCode(for: error)
    let message = RunQueueCommand.fullMessage(for: error)
    if code == .success {
        if !message.isEmpty { print(message) }
        exit(0)
    }
    if !message.isEmpty { Output.error(message) }
    exit(code == .validationFailure ? ExitStatus.badUsage : code.rawValue)
}
