/// The kind of environment a run belongs to (`runqueue.v1.EnvironmentType`).
public enum EnvironmentType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case unspecified = 0
    case development = 1
    case staging = 2
    case preview = 3
    case production = 4

    /// The proto enum name, e.g. `"DEVELOPMENT"` or `"ENVIRONMENT_TYPE_UNSPECIFIED"`.
    public var name: String {
        switch self {
        case .unspecified: "ENVIRONMENT_TYPE_UNSPECIFIED"
        case .development: "DEVELOPMENT"
        case .staging: "STAGING"
        case .preview: "PREVIEW"
        case .production: "PRODUCTION"
        }
    }

    /// Parses a proto enum name; exact, case-sensitive.
    public init?(name: String) {
        guard let value = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = value
    }

    /// A number received on the wire. proto3 enums are open, so a peer may send a
    /// number this build does not know; it maps to `.unspecified` rather than failing
    /// the whole message.
    public init(wireValue: Int32) {
        self = EnvironmentType(rawValue: wireValue) ?? .unspecified
    }

    public var description: String { name }
}
