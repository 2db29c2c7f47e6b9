// ClaimDecoder: turns what the claim and read scripts return into RunMessages,
// reading whichever stored format each run was written in (dual read):
// a V2/V3 message when the run has one, else the V4 lane record plus the
// run's side value. A side value's attempt always wins over the attempt
// inside a V2/V3 message: failures write the side value, never the message.
import RedisDriver
import RunQueueCore
import RunQueueStoredFormat

enum ClaimDecoder {
    struct ShapeError: Error, CustomStringConvertible {
        let description: String
    }

    static func decode(_ value: RedisValue, leaseDeadlineMs: Int64) throws -> QueueStore.ClaimResult {
        guard let parts = value.array, parts.count == 3, let wake = parts[0].int,
              let laneList = parts[1].array, let runs = parts[2].array, laneList.count % 2 == 0, runs.count % 6 == 0 else {
            throw ShapeError(description: "\(value)")
        }
        // A claim returns each lane once and many runs per lane: parse it once.
        var lanes: [(lane: V4Layout.Lane, record: V4Layout.LaneRecord)] = []
        lanes.reserveCapacity(laneList.count / 2)
        for i in stride(from: 0, to: laneList.count, by: 2) {
            lanes.append((try V4Layout.Lane(parsing: laneList[i].string ?? ""),
                          try V4Layout.LaneRecord(parsing: laneList[i + 1].string ?? "")))
        }
        var messages: [RunMessage] = []
        messages.reserveCapacity(runs.count / 6)
        for i in stride(from: 0, to: runs.count, by: 6) {
            guard let runID = runs[i].string, let laneIndex = runs[i + 1].int, laneIndex >= 1, Int(laneIndex) <= lanes.count,
                  let timestamp = runs[i + 2].int else {
                throw ShapeError(description: "run entry \(i / 6)")
            }
            let lane = lanes[Int(laneIndex) - 1]
            let (message, _) = try runMessage(
                runID: runID, lane: lane.lane, record: lane.record, timestampMs: timestamp,
                side: runs[i + 4].string ?? "", stored: runs[i + 5].bytes ?? [], leaseExpiresAtMs: leaseDeadlineMs)
            messages.append(message)
        }
        return QueueStore.ClaimResult(epochMatched: true, messages: messages, nextWakeMs: wake >= 0 ? wake : nil)
    }

    /// Builds the RunMessage of one run from its lane, side value and stored message.
    static func runMessage(runID: String, lane: V4Layout.Lane, record: V4Layout.LaneRecord, timestampMs: Int64, side: String,
                           stored: [UInt8], leaseExpiresAtMs: Int64) throws -> (RunMessage, MessageSource) {
        let sideValue = try V4Layout.SideValue(parsing: side)
        let task = sideValue.taskIdentifier ?? record.taskIdentifier
        if !stored.isEmpty {
            var (message, format) = try StoredMessage.decode(stored, runID: runID, taskIdentifier: task)
            if !side.isEmpty { message.attempt = sideValue.attempt }
            return (message.runMessage(leaseExpiresAtMs: leaseExpiresAtMs), format.messageSource)
        }
        let message = RunMessage(
            runID: runID, orgID: record.orgID, projectID: record.projectID, environmentID: lane.environmentID,
            environmentType: record.environmentType, queue: lane.queue, concurrencyKey: lane.concurrencyKey,
            taskIdentifier: task, workerQueue: lane.workerQueue, timestampMs: timestampMs,
            attempt: sideValue.attempt, leaseExpiresAtMs: leaseExpiresAtMs)
        return (message, .redisV4)
    }

    /// The read script's answer: {state, L, record, score, attempt, deadline, side, message, ttl}.
    static func decodeRead(runID: String, parts p: [RedisValue]) throws -> QueueStore.FoundRun? {
        guard let stateText = p[0].string, let state = QueueStore.RunState(rawValue: stateText),
              let laneID = p[1].string, let record = p[2].string else {
            throw ShapeError(description: "\(p)")
        }
        let score = p[3].int ?? Int64(p[3].string.flatMap(Double.init) ?? 0)
        let side = p[6].string ?? ""
        let sideValue = try V4Layout.SideValue(parsing: side)
        let timestamp: Int64
        switch state {
        case .inFlight: timestamp = score
        case .due: timestamp = sideValue.timestampMs ?? (score + sideValue.priorityMs)
        case .delayed: timestamp = sideValue.timestampMs ?? score
        }
        let lease = state == .inFlight ? (p[5].int ?? 0) : 0
        let (message, source) = try runMessage(runID: runID, lane: try V4Layout.Lane(parsing: laneID),
                                               record: try V4Layout.LaneRecord(parsing: record), timestampMs: timestamp,
                                               side: side, stored: p[7].bytes ?? [], leaseExpiresAtMs: lease)
        let ttl = p[8].int ?? Int64(p[8].string.flatMap(Double.init) ?? -1)
        return QueueStore.FoundRun(state: state, message: message, source: source, expiresAtMs: ttl >= 0 ? ttl : nil)
    }
}
