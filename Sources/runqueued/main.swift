// runqueued: configuration -> wiring -> run until SIGTERM/SIGINT.
// Exit codes: 0 after a clean shutdown, 1 when the listener cannot start,
// 2 for invalid configuration.
import Foundation
import Logging
import RunQueueServer

func runServer() async -> Int32 {
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.contains("--help") || arguments.contains("-h") {
        print(ServerConfig.usage)
        return 0
    }
    let config: ServerConfig
    do {
        config = try ServerConfig.load(environment: ProcessInfo.processInfo.environment, arguments: arguments)
    } catch {
        FileHandle.standardError.write(Data("runqueued: invalid configuration: \(error.message)\n".utf8))
        return 2
    }
    let level = config.logLevel
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    let logger = Logger(label: "runqueued")
    do {
        let server = try Server(config: config, logger: logger)
        _ = try await server.start(handleSignals: true)
        let report = await server.waitUntilStopped()
        if report.leftoverHandles > 0 {
            logger.warning("handles force-closed at exit", metadata: ["count": "\(report.leftoverHandles)"])
        }
        return report.fatalError == nil ? 0 : 2
    } catch {
        logger.critical("cannot start", metadata: ["error": "\(error)"])
        return 1
    }
}

exit(await runServer())
