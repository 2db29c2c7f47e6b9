import RunQueueCore
import RunQueueStoredFormat

/// Writes a new run's message in the configured V2 or V3 format.
enum StoredMessageCodec {
    static func encode(_ run: RunDescriptor, expiresAtMs: Int64?, format: MessageFormatChoice) -> [UInt8] {
        let message = StoredMessage(
            runID: run.runID, orgID: run.orgID, projectID: run.projectID, environmentID: run.environmentID,
            environmentType: run.environmentType, queue: run.queue, concurrencyKey: run.concurrencyKey,
            taskIdentifier: run.taskIdentifier, workerQueue: run.workerQueue, timestampMs: run.timestampMs,
            attempt: 0, ttlExpiresAtMs: expiresAtMs)
        switch format {
        case .v2: return MessageFormatV2.encode(message)
        case .v3: return MessageFormatV3.encode(message)
        case .v4: return []
        }
    }
}
