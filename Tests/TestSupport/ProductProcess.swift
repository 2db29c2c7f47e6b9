import Foundation

/// One of this package's executables run as a child process by a test.
public enum ProductProcess {
    public struct Outcome: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// The executable `name`: $`environmentVariable`, else next to the test
    /// bundle (SwiftPM puts executables and the xctest bundle in one products
    /// directory, whatever the scratch path), else .build/debug.
    public static func binary(_ name: String, environmentVariable: String) -> URL {
        if let path = ProcessInfo.processInfo.environment[environmentVariable] { return URL(fileURLWithPath: path) }
        var candidates: [URL] = []
        if let executable = Bundle.main.executableURL { candidates.append(executable.deletingLastPathComponent()) }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        for directory in candidates {
            let binary = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: binary.path) { return binary }
        }
        return candidates[0].appendingPathComponent(name)
    }

    /// Runs `binary arguments...` to completion on a thread of its own: stdin
    /// from `input` (none: /dev/null), stdout and stderr into files (a child
    /// never writes to the test's own output), RUNQUEUE_SERVER and
    /// RUNQUEUE_TOKEN removed from the environment so only `environment`
    /// points it anywhere. Killed with SIGKILL after `killAfterSeconds` (a
    /// child spawned from a thread that blocks SIGTERM ignores terminate()).
    public static func run(_ binary: URL, _ arguments: [String], environment: [String: String] = [:], input: String? = nil,
                           killAfterSeconds: Double = 60) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try runBlocking(binary, arguments, environment, input, killAfterSeconds) })
            }
        }
    }

    private static func runBlocking(_ binary: URL, _ arguments: [String], _ environment: [String: String], _ input: String?,
                                    _ killAfterSeconds: Double) throws -> Outcome {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(binary.lastPathComponent)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("stdout")
        let err = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["RUNQUEUE_SERVER"] = nil
        env["RUNQUEUE_TOKEN"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let stdout = try FileHandle(forWritingTo: out)
        let stderr = try FileHandle(forWritingTo: err)
        process.standardOutput = stdout
        process.standardError = stderr
        var stdin: FileHandle?
        if let input {
            let inp = directory.appendingPathComponent("stdin")
            _ = FileManager.default.createFile(atPath: inp.path, contents: Data(input.utf8))
            stdin = try FileHandle(forReadingFrom: inp)
            process.standardInput = stdin
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        let deadline = Date().addingTimeInterval(killAfterSeconds)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try stdout.close()
        try stderr.close()
        try stdin?.close()
        return Outcome(status: process.terminationStatus,
                       stdout: String(decoding: try Data(contentsOf: out), as: UTF8.self),
                       stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }
}
