// DescriptorLines: `enqueue --file`'s input, one RunDescriptor per line as a
// JSON object. Keys are the proto field names (snake_case) or their
// lowerCamelCase JSON names; an unknown key is an error (a typo would
// otherwise enqueue a run without the field). Integers may be JSON numbers or
// strings (proto3 JSON writes int64 as strings). Blank lines are skipped.
import Foundation
import RunQueueCore

enum DescriptorLines {
    struct Failure: Error {
        let message: String
    }

    /// Reads every line of `path` (`-` = stdin); fields a line leaves out come from `defaults`.
    static func read(_ path: String, defaults: RunDescriptor) throws(Failure) -> [RunDescriptor] {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw Failure(message: "cannot read \(path)")
            }
            data = contents
        }
        let name = path == "-" ? "stdin" : path
        var runs: [RunDescriptor] = []
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { continue }
            do {
                runs.append(try parse(text, defaults: defaults))
            } catch {
                throw Failure(message: "\(name) line \(index + 1): \(error.message)")
            }
        }
        if runs.isEmpty { throw Failure(message: "\(name) holds no runs") }
        return runs
    }

    /// One line.
    static func parse(_ line: String, defaults: RunDescriptor) throws(Failure) -> RunDescriptor {
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw Failure(message: "not a JSON object")
            }
            object = parsed
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(message: "not valid JSON")
        }
        var run = defaults
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            switch canonical(key) {
            case "run_id": run.runID = try string(value, key)
            case "org_id": run.orgID = try string(value, key)
            case "project_id": run.projectID = try string(value, key)
            case "environment_id": run.environmentID = try string(value, key)
            case "environment_type": run.environmentType = try environmentType(value, key)
            case "queue": run.queue = try string(value, key)
            case "concurrency_key": run.concurrencyKey = try string(value, key)
            case "task_identifier": run.taskIdentifier = try string(value, key)
            case "worker_queue": run.workerQueue = try string(value, key)
            case "timestamp_ms": run.timestampMs = try integer(value, key)
            case "priority_ms": run.priorityMs = try integer(value, key)
            case "ttl": run.ttl = try string(value, key)
            default: throw Failure(message: "unknown field \"\(key)\"")
            }
        }
        return run
    }

    /// `runId` -> `run_id`; snake_case stays.
    static func canonical(_ key: String) -> String {
        var out = ""
        for character in key {
            if character.isUppercase {
                out += "_" + character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }

    private static func isBool(_ value: Any) -> Bool {
        // JSONSerialization gives booleans as NSNumber too; tell them apart by type.
        guard let number = value as? NSNumber else { return value is Bool }
        return String(cString: number.objCType) == "c" || type(of: value) == type(of: NSNumber(value: true))
    }

    private static func string(_ value: Any, _ key: String) throws(Failure) -> String {
        guard let text = value as? String else { throw Failure(message: "\"\(key)\" must be a string") }
        return text
    }

    private static func integer(_ value: Any, _ key: String) throws(Failure) -> Int64 {
        if let text = value as? String {
            guard let number = Int64(text) else { throw Failure(message: "\"\(key)\" must be an integer, got \"\(text)\"") }
            return number
        }
        guard !isBool(value), let number = value as? NSNumber else { throw Failure(message: "\"\(key)\" must be an integer") }
        let double = number.doubleValue
        guard double.rounded() == double, let exact = Int64(exactly: number.int64Value), Double(exact) == double || abs(double) > 9e15 else {
            throw Failure(message: "\"\(key)\" must be an integer, got \(number)")
        }
        return number.int64Value
    }

    private static func environmentType(_ value: Any, _ key: String) throws(Failure) -> EnvironmentType {
        if let text = value as? String {
            guard let parsed = EnvironmentTypeArgument(argument: text) else {
                throw Failure(message: "\"\(key)\" must be development, staging, preview or production, got \"\(text)\"")
            }
            return parsed.value
        }
        guard !isBool(value), let number = value as? NSNumber, let parsed = EnvironmentType(rawValue: number.int32Value),
              parsed != .unspecified, Double(number.int32Value) == number.doubleValue
        else { throw Failure(message: "\"\(key)\" must be development, staging, preview or production") }
        return parsed
    }
}
