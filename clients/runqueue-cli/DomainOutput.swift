// How RunQueueCore values print: as JSON objects keyed by the proto field
// names (snake_case), and as `key=value` lines for people.
import CommandLineSupport
import RunQueueCore

extension RunMessage {
    var json: OrderedJSON {
        .object([
            ("run_id", .string(runID)), ("org_id", .string(orgID)), ("project_id", .string(projectID)),
            ("environment_id", .string(environmentID)), ("environment_type", .string(environmentType.name)),
            ("queue", .string(queue)), ("concurrency_key", .string(concurrencyKey)),
            ("task_identifier", .string(taskIdentifier)), ("worker_queue", .string(workerQueue)),
            ("timestamp_ms", .int(timestampMs)), ("attempt", .uint(UInt64(attempt))),
            ("lease_expires_at_ms", .int(leaseExpiresAtMs)),
        ])
    }

    var line: String {
        Output.fields([
            ("run_id", runID), ("environment_id", environmentID), ("queue", queue), ("attempt", String(attempt)),
            ("task", taskIdentifier), ("concurrency_key", concurrencyKey), ("worker_queue", workerQueue),
            ("timestamp", Output.time(timestampMs)), ("lease_expires_at", Output.time(leaseExpiresAtMs)),
        ].filter { !($0.0 == "concurrency_key" && $0.1.isEmpty) })
    }
}

extension RunRecord {
    var json: OrderedJSON {
        .object([
            ("run_id", .string(runID)), ("org_id", .string(orgID)), ("project_id", .string(projectID)),
            ("environment_id", .string(environmentID)), ("environment_type", .string(environmentType.name)),
            ("queue", .string(queue)), ("concurrency_key", .string(concurrencyKey)),
            ("task_identifier", .string(taskIdentifier)), ("worker_queue", .string(workerQueue)),
            ("timestamp_ms", .int(timestampMs)), ("attempt", .uint(UInt64(attempt))),
            ("lease_expires_at_ms", .int(leaseExpiresAtMs)), ("status", .string(status.name)), ("ttl", .string(ttl)),
            ("expires_at_ms", .int(expiresAtMs)), ("created_at_ms", .int(createdAtMs)), ("updated_at_ms", .int(updatedAtMs)),
            ("completed_at_ms", .int(completedAtMs)), ("expired_at_ms", .int(expiredAtMs)),
        ])
    }

    var line: String {
        Output.fields([
            ("run_id", runID), ("status", status.name), ("environment_id", environmentID), ("queue", queue),
            ("attempt", String(attempt)), ("task", taskIdentifier), ("worker_queue", workerQueue),
            ("ttl", ttl.isEmpty ? "-" : ttl), ("expires_at", Output.time(expiresAtMs)),
            ("created_at", Output.time(createdAtMs)), ("updated_at", Output.time(updatedAtMs)),
            ("completed_at", Output.time(completedAtMs)), ("expired_at", Output.time(expiredAtMs)),
        ])
    }
}

extension ExpiryEvent {
    var json: OrderedJSON {
        .object([
            ("cursor", .uint(cursor)), ("run_id", .string(runID)), ("org_id", .string(orgID)),
            ("project_id", .string(projectID)), ("environment_id", .string(environmentID)),
            ("environment_type", .string(environmentType.name)), ("queue", .string(queue)),
            ("concurrency_key", .string(concurrencyKey)), ("task_identifier", .string(taskIdentifier)),
            ("ttl", .string(ttl)), ("expires_at_ms", .int(expiresAtMs)), ("expired_at_ms", .int(expiredAtMs)),
        ])
    }

    var line: String {
        Output.fields([
            ("cursor", String(cursor)), ("run_id", runID), ("environment_id", environmentID), ("queue", queue),
            ("task", taskIdentifier), ("ttl", ttl), ("expires_at", Output.time(expiresAtMs)),
            ("expired_at", Output.time(expiredAtMs)),
        ])
    }
}

extension QueueStatsResponse {
    var json: OrderedJSON {
        .object([
            ("length", .uint(length)), ("due", .uint(due)), ("in_flight", .uint(inFlight)),
            ("oldest_age_ms", .int(oldestAgeMs)), ("concurrency_limit", .uint(UInt64(concurrencyLimit))),
        ])
    }

    var line: String {
        Output.fields([
            ("length", String(length)), ("due", String(due)), ("in_flight", String(inFlight)),
            ("oldest_age_ms", String(oldestAgeMs)), ("concurrency_limit", String(concurrencyLimit)),
        ])
    }
}
