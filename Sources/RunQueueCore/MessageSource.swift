/// Where `ReadMessage` found a run (`runqueue.v1.MessageSource`).
public enum MessageSource: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case unspecified = 0
    case redisV2 = 1
    case redisV3 = 2
    case postgres = 3
    /// Our lean default Redis format.
    case redisV4 = 4

    /// The proto enum name, e.g. `"REDIS_V4"` or `"MESSAGE_SOURCE_UNSPECIFIED"`.
    public var name: String {
        switch self {
        case .unspecified: "MESSAGE_SOURCE_UNSPECIFIED"
        case .redisV2: "REDIS_V2"
        case .redisV3: "REDIS_V3"
        case .postgres: "POSTGRES"
        case .redisV4: "REDIS_V4"
        }
    }

    /// Parses a proto enum name; exact, case-sensitive.
    public init?(name: String) {
        guard let value = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = value
    }

    /// A number received on the wire; unknown numbers (proto3 enums are open) map
    /// to `.unspecified`.
    public init(wireValue: Int32) {
        self = MessageSource(rawValue: wireValue) ?? .unspecified
    }

    public var description: String { name }
}
