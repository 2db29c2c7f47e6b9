/// A stored message (V2 JSON, V3 compact) or a logical queue key that does not
/// decode. Decoding is strict: a bad value is this error, never a
/// zero, an empty string or NaN. The storage layer reports it as an internal
/// data error for the run; it never reaches a peer as a request error.
public struct MessageFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// Neither `v3:` nor a JSON object: no format claims the bytes.
        case unknownFormat
        /// The bytes break the format's grammar: JSON syntax, V3 field count,
        /// the queue key's section layout.
        case malformed
        /// The V2 `version` is neither "2" nor "1".
        case unsupportedVersion
        /// A required field is absent (or, for V3, the caller did not supply it).
        case missingField
        /// A field is present but has the wrong type or a value outside its rules.
        case invalidField
        /// Two fields that must agree do not (the queue key against `orgId`,
        /// the stored `runId` against the key it was read from...).
        case mismatch
    }

    public let code: Code
    /// The field at fault, spelled as in the format (`timestamp`, `runId`,
    /// `concurrencyKey`); nil when the fault is not one field's (framing).
    public let field: String?
    /// A sentence that starts with the field name when there is one.
    public let message: String

    public init(_ code: Code, field: String?, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String { "message format \(code.rawValue): \(message)" }
}
