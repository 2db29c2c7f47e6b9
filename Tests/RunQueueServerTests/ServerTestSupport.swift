import Foundation
import RunQueueClient
import TestSupport

/// Run changes waiting in every shard's outbox (a stream entry of one
/// script call carries many runs: counted per run) and finishing marks
/// left, summed over 16 shards.
func outboxBacklog(redisPort: UInt16, shards: Int = 16) throws -> (entries: Int, finishing: Int) {
    var entries = 0, finishing = 0
    for shard in 0..<shards {
        if (Int(try redisCLI(port: redisPort, ["XLEN", "{rq\(shard)}:outbox"])) ?? 0) > 0 {
            // Raw output, one element per line: id, o, op, r, runs, a, attempts, t, time.
            let lines = try redisCLI(port: redisPort, ["XRANGE", "{rq\(shard)}:outbox", "-", "+"]).split(separator: "\n")
            for (index, line) in lines.enumerated() where line == "r" && index + 1 < lines.count {
                entries += lines[index + 1].split(separator: "\u{1E}").count
            }
        }
        finishing += Int(try redisCLI(port: redisPort, ["HLEN", "{rq\(shard)}:fin"])) ?? 0
    }
    return (entries, finishing)
}
