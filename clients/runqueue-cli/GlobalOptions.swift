import ArgumentParser
import CommandLineSupport
import Foundation
import RunQueueClient
import RunQueueCore

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Server address, host:port with a numeric host (default: $RUNQUEUE_SERVER, else 127.0.0.1:7420).",
                               valueName: "host:port"))
    var server: String?

    @Option(help: ArgumentHelp("Token for Hello when the server requires one (default: $RUNQUEUE_TOKEN).", valueName: "token"))
    var token: String?

    @Flag(help: "Machine-readable output: one JSON object per result, one per line.")
    var json = false

    @Option(help: ArgumentHelp("Deadline of each call: 500ms, 5s, 2m; 0 = none. A dequeue's --wait-ms is added.",
                               valueName: "duration"))
    var timeout = DurationArgument(.seconds(10))

    static let defaultServer = "127.0.0.1:7420"

    var serverAddress: String {
        server ?? ProcessInfo.processInfo.environment["RUNQUEUE_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultServer
    }

    mutating func validate() throws {
        guard RunQueueClientConfiguration.isValidAddress(serverAddress) else {
            throw ValidationError("--server must be host:port with a numeric host (e.g. 127.0.0.1:7420), got \"\(serverAddress)\"")
        }
    }

    /// The client configuration of a one-shot command: one connection, no
    /// waiting for a server that is down.
    func configuration() throws -> RunQueueClientConfiguration {
        var configuration = try RunQueueClientConfiguration(server: serverAddress)
        configuration.connections = 1
        configuration.clientName = "runqueue-cli"
        configuration.token = token ?? ProcessInfo.processInfo.environment["RUNQUEUE_TOKEN"] ?? ""
        configuration.defaultTimeout = timeout.value
        if let timeout = timeout.value, timeout < configuration.connectTimeout { configuration.connectTimeout = timeout }
        configuration.reconnectWait = .zero
        return configuration
    }

    /// Runs `body` with a client; a failed call prints `error: STATUS: message`
    /// to stderr and exits 1.
    func withClient(_ body: (RunQueueClient) async throws -> Void) async throws {
        let client = RunQueueClient(try configuration())
        do {
            try await body(client)
            await client.close()
        } catch let error as RunQueueError {
            await client.close()
            Output.error("error: \(error.code.name): \(error.message)")
            throw ExitCode(ExitStatus.callFailed)
        } catch {
            await client.close()
            throw error
        }
    }
}

extension RunQueueClientConfiguration {
    static func isValidAddress(_ hostPort: String) -> Bool {
        (try? RunQueueClientConfiguration(server: hostPort)) != nil
    }
}
