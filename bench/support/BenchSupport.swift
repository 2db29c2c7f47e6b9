// BenchSupport: what the benchmark programs share: child processes
// (started with a clean signal mask, stopped with SIGTERM then SIGKILL), free
// ports, running a tool for its output, CPU readings from /proc, and
// connecting to a runqueued that is starting up.
import Foundation
import RunQueueClient
import RunQueueCore
import UVLoop

/// Prints a line at once (stdout is block-buffered when piped, e.g. `make bench | tee`).
public func say(_ line: String = "") {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Prints `message` to stderr after the program's name and exits 1.
public func fail(_ message: String) -> Never {
    let program = CommandLine.arguments.first.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "bench"
    FileHandle.standardError.write(Data("\(program): \(message)\n".utf8))
    exit(1)
}

/// A positive integer option, `fallback` when absent; anything else fails.
public func intOption(_ name: String, _ fallback: Int) -> Int {
    guard let text = option(name) else { return fallback }
    guard let value = Int(text), value > 0 else { fail("\(name) must be a positive integer, got \"\(text)\"") }
    return value
}

public func option(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

/// Starts `process` with an empty signal mask. Foundation's Process spawns the
/// child from the calling thread and the child inherits that thread's mask;
/// Swift concurrency runs us on libdispatch worker threads, which block
/// SIGTERM and most other signals, so a child started plainly ignores
/// `terminate()` (redis-server and runqueued then never exit). The mask is
/// cleared only around the spawn and restored at once.
public func spawn(_ process: Process) throws {
    var empty = sigset_t()
    var saved = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &saved)
    defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
    try process.run()
}

/// SIGTERM, then SIGKILL if the process is still there after `graceSeconds`.
public func stop(_ process: Process, graceSeconds: Double = 10) {
    guard process.isRunning else { return }
    process.terminate()
    let deadline = Date().addingTimeInterval(graceSeconds)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

public func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: addr.sin_port)
}

/// Runs a program to completion and returns its standard output.
@discardableResult
public func run(_ program: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError("\(program) \(arguments.prefix(4).joined(separator: " ")) exited with \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}

public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// CPU seconds (user + system) of a process from /proc.
public func processCPU(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command name: state is field 3, utime 14, stime 15 (1-based) -> indexes 11, 12 here.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Busy and total CPU seconds of the whole machine (all cores) from /proc/stat.
public func machineCPU() -> (busy: Double, total: Double) {
    guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return (0, 0) }
    let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard ticks.count >= 5 else { return (0, 0) }
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total = ticks.prefix(8).reduce(0, +)
    let busy = total - ticks[3] - ticks[4]
    let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (busy / hz, total / hz)
}

public func selfCPU() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// A connection to runqueued once it serves: Ping answers before the stores
/// are up, so this waits until a lookup reaches Redis and PostgreSQL
/// (NOT_FOUND for a run that does not exist; migrations done).
public func connectWithRetry(port: UInt16) async throws -> RunQueueConnection {
    for _ in 0..<600 {
        if let connection = try? await RunQueueConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port)) {
            do throws(RunQueueError) {
                _ = try await connection.call(.getRun(GetRunRequest(runID: "readiness-probe")))
                return connection
            } catch {
                if error.code == .notFound { return connection }
                await connection.close()
            }
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw BenchError("runqueued on port \(port) did not reach Redis and PostgreSQL within 30 s")
}

