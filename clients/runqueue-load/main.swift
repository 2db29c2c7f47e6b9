// runqueue-load: the load-test binary of runqueue.
//
// Scenarios (one subcommand each): enqueue, cycle, expiry, subscribe; see
// LoadCommand.swift. Exit codes: 0 the scenario ran (error statuses are
// counted in the report, not fatal); 1 it could not run (server unreachable,
// a method it needs refused, nothing succeeded); 2 bad usage. ArgumentParser
// reports usage errors as 64 (EX_USAGE); they are mapped to 2 here, as in
// the `runqueue` CLI.
import ArgumentParser
import Foundation

func runLoad(_ arguments: [String]) async throws {
    var command = try LoadCommand.parseAsRoot(arguments)
    if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
}

do {
    try await runLoad(Array(CommandLine.arguments.dropFirst()))
    exit(0)
} catch {
    let code = LoadCommand.exitCode(for: error)
    let message = LoadCommand.fullMessage(for: error)
    if code == .success {
        if !message.isEmpty { print(message) }
        exit(0)
    }
    if !message.isEmpty { Console.error(message) }
    exit(code == .validationFailure ? LoadExit.badUsage : code.rawValue)
}
