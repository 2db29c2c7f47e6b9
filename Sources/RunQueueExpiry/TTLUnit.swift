/// A unit of a TTL group. `h` and `hr` are the same unit.
enum TTLUnit: Hashable, Sendable {
    case week, day, hour, minute, second

    init?(symbol: String) {
        switch symbol {
        case "w": self = .week
        case "d": self = .day
        case "h", "hr": self = .hour
        case "m": self = .minute
        case "s": self = .second
        default: return nil
        }
    }

    /// The canonical symbol (`h` for hours).
    var symbol: String {
        switch self {
        case .week: "w"
        case .day: "d"
        case .hour: "h"
        case .minute: "m"
        case .second: "s"
        }
    }

    var milliseconds: Int64 {
        switch self {
        case .week: 604_800_000
        case .day: 86_400_000
        case .hour: 3_600_000
        case .minute: 60_000
        case .second: 1000
        }
    }

    /// Largest first, the order `TTL.description` writes them in.
    static let descending: [TTLUnit] = [.week, .day, .hour, .minute, .second]
}
