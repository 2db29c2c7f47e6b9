import Foundation

/// A failure of the test machinery itself (a tool that failed, a wait that ran out).
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a tool found on PATH (`/usr/bin/env arguments...`) to completion:
/// its exit status and its standard output, trimmed (standard error dropped).
public func runTool(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let stdout = Pipe()
    process.standardOutput = stdout
    process.standardError = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output.trimmingCharacters(in: .whitespacesAndNewlines))
}

/// psql against a database URL: runs `sql` and returns the unaligned, tuples-only output.
@discardableResult
public func psql(_ databaseURL: String, _ sql: String) throws -> String {
    let (status, output) = try runTool(["psql", databaseURL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
    guard status == 0 else { throw TestSupportError("psql failed (\(status)): \(sql)") }
    return output
}

/// redis-cli against a local port; returns its output.
@discardableResult
public func redisCLI(port: UInt16, _ arguments: [String]) throws -> String {
    try runTool(["redis-cli", "-p", String(port)] + arguments).output
}

/// Waits until `condition` holds, checking it every `every` (20 ms by
/// default); throws naming `what` if it still does not hold after `within`.
/// The bound is a safety net for a broken build, never a claim about speed:
/// keep it generous (60 s by default) so a slow or busy machine still passes.
public func waitUntil(_ what: @autoclosure () -> String, within: Duration = .seconds(60), every: Duration = .milliseconds(20),
                      isolation: isolated (any Actor)? = #isolation, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + within
    while true {
        if try await condition() { return }
        if ContinuousClock.now >= deadline { throw TestSupportError("timed out after \(within) waiting until \(what())") }
        try await Task.sleep(for: every)
    }
}

/// Like `waitUntil`, for a value: returns the first non-nil result of `probe`.
public func waitFor<T>(_ what: @autoclosure () -> String, within: Duration = .seconds(60), every: Duration = .milliseconds(20),
                       isolation: isolated (any Actor)? = #isolation, _ probe: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + within
    while true {
        if let value = try await probe() { return value }
        if ContinuousClock.now >= deadline { throw TestSupportError("timed out after \(within) waiting for \(what())") }
        try await Task.sleep(for: every)
    }
}

/// A psql session kept open and fed statements one at a time, to hold a
/// lock or a transaction open while the test does something else; `end()`
/// closes its input (psql ends, committing nothing left open) and waits.
public final class PsqlSession: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()

    /// `applicationName` lets the test find the session in pg_stat_activity.
    public init(_ databaseURL: String, applicationName: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", databaseURL + "?application_name=" + applicationName, "-q", "-v", "ON_ERROR_STOP=1"]
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    public func send(_ sql: String) {
        input.fileHandleForWriting.write(Data((sql + "\n").utf8))
    }

    public func end() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
