// LogicalQueueKey: trigger.dev's queue key grammar, as stored in the `queue`
// field of V2 and V3 messages.
//
//     {org:O}:proj:P:env:E:queue:Q            no concurrency key
//     {org:O}:proj:P:env:E:queue:Q:ck:C       concurrency key C (non-empty)
//
// Invariants:
// - Parsing is by POSITION, never by splitting on `:`. O, P and E are
//   identifiers ([A-Za-z0-9_.-], 1..128 bytes) and Q a queue name (also `/`),
//   so none of them contains `:` or `}` and each section ends at a fixed
//   delimiter. Everything after the FIRST `:ck:` (that is, after the first `:`
//   following Q) is the concurrency key, verbatim: a key containing `:` or even
//   `:ck:` round-trips (trigger.dev's `descriptorFromQueue` split on `:` and
//   truncated such keys).
// - `encoded` and `init(parsing:)` are exact inverses over every key whose
//   parts pass `Validation` (identifier / queue name / concurrency key); a
//   parsed key always passes them, so nothing else can be parsed.
// - `""` as concurrency key means none; `:ck:` followed by nothing is
//   rejected (it would decode to "none" and re-encode differently).
// Why keep this grammar at all: V2 and V3 are trigger.dev's formats, and a
// deployment must be able to read (and write) what trigger.dev wrote. Our
// own V4 layout and Redis keys do not depend on it.

import RunQueueCore

public struct LogicalQueueKey: Sendable, Hashable, CustomStringConvertible {
    public var orgID: String
    public var projectID: String
    public var environmentID: String
    /// The queue name.
    public var queue: String
    /// `""` = none.
    public var concurrencyKey: String

    public init(orgID: String, projectID: String, environmentID: String, queue: String, concurrencyKey: String = "") {
        self.orgID = orgID
        self.projectID = projectID
        self.environmentID = environmentID
        self.queue = queue
        self.concurrencyKey = concurrencyKey
    }

    // The section delimiters, in order.
    static let orgOpen: StaticString = "{org:"
    static let projSection: StaticString = "}:proj:"
    static let envSection: StaticString = ":env:"
    static let queueSection: StaticString = ":queue:"
    static let ckSection: StaticString = ":ck:"

    /// The number of UTF-8 bytes of `encoded`.
    public var encodedByteCount: Int {
        let fixed = Self.orgOpen.utf8CodeUnitCount + Self.projSection.utf8CodeUnitCount
            + Self.envSection.utf8CodeUnitCount + Self.queueSection.utf8CodeUnitCount
        let parts = orgID.utf8.count + projectID.utf8.count + environmentID.utf8.count + queue.utf8.count
        let ck = concurrencyKey.isEmpty ? 0 : Self.ckSection.utf8CodeUnitCount + concurrencyKey.utf8.count
        return fixed + parts + ck
    }

    /// `{org:O}:proj:P:env:E:queue:Q`, plus `:ck:C` when a concurrency key is set.
    public var encoded: String {
        String(decoding: encodedBytes, as: UTF8.self)
    }

    public var description: String { encoded }

    /// The key without its `:ck:` section (trigger.dev's "base queue").
    public var withoutConcurrencyKey: LogicalQueueKey {
        var copy = self
        copy.concurrencyKey = ""
        return copy
    }

    /// The UTF-8 bytes of `encoded`.
    public var encodedBytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(encodedByteCount)
        appendEncoded(to: &bytes)
        return bytes
    }

    /// Appends the encoded key's bytes (no intermediate String).
    public func appendEncoded(to out: inout [UInt8]) {
        appendSections(to: &out) { out, part in out.append(contentsOf: part.utf8) }
    }

    /// Appends the encoded key's bytes escaped for the inside of a JSON string.
    func appendEncodedJSONEscaped(to out: inout [UInt8]) {
        appendSections(to: &out) { out, part in MessageFormatV2.appendEscaped(part, to: &out) }
    }

    /// The one place that spells the grammar for writing.
    private func appendSections(to out: inout [UInt8], _ appendPart: (inout [UInt8], String) -> Void) {
        Self.append(Self.orgOpen, to: &out)
        appendPart(&out, orgID)
        Self.append(Self.projSection, to: &out)
        appendPart(&out, projectID)
        Self.append(Self.envSection, to: &out)
        appendPart(&out, environmentID)
        Self.append(Self.queueSection, to: &out)
        appendPart(&out, queue)
        if !concurrencyKey.isEmpty {
            Self.append(Self.ckSection, to: &out)
            appendPart(&out, concurrencyKey)
        }
    }

    static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    // MARK: Parsing

    /// Parses an encoded key; see the grammar at the top of this file.
    public init(parsing text: String) throws(MessageFormatError) {
        var text = text
        let result = text.withUTF8 { buffer in
            Result { () throws(MessageFormatError) in try LogicalQueueKey(parsing: buffer, field: "queue") }
        }
        self = try result.get()
    }

    /// Parses an encoded key given as bytes (validated as UTF-8).
    public init(parsing bytes: [UInt8]) throws(MessageFormatError) {
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(MessageFormatError) in try LogicalQueueKey(parsing: buffer, field: "queue") }
        }
        self = try result.get()
    }

    /// Parses `bytes`; `field` names the message field the key came from in errors.
    init(parsing bytes: UnsafeBufferPointer<UInt8>, field: String) throws(MessageFormatError) {
        var cursor = 0
        guard Self.literal(Self.orgOpen, at: cursor, in: bytes) else {
            throw Self.malformed(field, "must start with \"{org:\"")
        }
        cursor += Self.orgOpen.utf8CodeUnitCount
        let org = try Self.section(in: bytes, from: &cursor, byteClass: Validation.isIdentifierByte,
                                   field: field, name: "org id", terminator: Self.projSection, alphabet: "[A-Za-z0-9_.-]")
        let project = try Self.section(in: bytes, from: &cursor, byteClass: Validation.isIdentifierByte,
                                       field: field, name: "project id", terminator: Self.envSection, alphabet: "[A-Za-z0-9_.-]")
        let environment = try Self.section(in: bytes, from: &cursor, byteClass: Validation.isIdentifierByte,
                                           field: field, name: "environment id", terminator: Self.queueSection, alphabet: "[A-Za-z0-9_.-]")
        let queue = try Self.section(in: bytes, from: &cursor, byteClass: Validation.isQueueNameByte,
                                     field: field, name: "queue name", terminator: nil, alphabet: "[A-Za-z0-9_./-]")
        var concurrencyKey = ""
        if cursor < bytes.count {
            // The queue name stopped at a byte outside its alphabet: only `:ck:` may follow.
            guard Self.literal(Self.ckSection, at: cursor, in: bytes) else {
                throw Self.malformed(field, "queue name must be 1..128 bytes of [A-Za-z0-9_./-], optionally followed by \":ck:\" and a concurrency key")
            }
            cursor += Self.ckSection.utf8CodeUnitCount
            guard cursor < bytes.count else {
                throw Self.malformed(field, "has \":ck:\" but no concurrency key after it")
            }
            guard let key = String(validating: UnsafeBufferPointer(rebasing: bytes[cursor...]), as: UTF8.self) else {
                throw Self.malformed(field, "concurrency key is not valid UTF-8")
            }
            guard Validation.isConcurrencyKey(key) else {
                throw Self.malformed(field, "concurrency key must be at most 128 bytes with no control characters, no '|' and no 0x1E")
            }
            concurrencyKey = key
        }
        self.init(orgID: org, projectID: project, environmentID: environment, queue: queue, concurrencyKey: concurrencyKey)
    }

    /// Reads 1..128 bytes of `byteClass` at `cursor`, then the `terminator`
    /// (nil: the section may end anywhere; the caller inspects what follows).
    private static func section(
        in bytes: UnsafeBufferPointer<UInt8>, from cursor: inout Int, byteClass: (UInt8) -> Bool,
        field: String, name: String, terminator: StaticString?, alphabet: String
    ) throws(MessageFormatError) -> String {
        let start = cursor
        var end = start
        while end < bytes.count, byteClass(bytes[end]) { end += 1 }
        let length = end - start
        guard length >= 1, length <= Validation.maxBytes else {
            throw malformed(field, "\(name) must be 1..128 bytes of \(alphabet)")
        }
        if let terminator {
            guard literal(terminator, at: end, in: bytes) else {
                throw malformed(field, "\(name) must be 1..128 bytes of \(alphabet) followed by \"\(terminator)\"")
            }
            cursor = end + terminator.utf8CodeUnitCount
        } else {
            cursor = end
        }
        // ASCII by construction, so decoding cannot repair anything.
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    static func literal(_ literal: StaticString, at offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard offset >= 0, bytes.count - offset >= count else { return false }
        let expected = literal.utf8Start
        for i in 0..<count where bytes[offset + i] != expected[i] { return false }
        return true
    }

    private static func malformed(_ field: String, _ what: String) -> MessageFormatError {
        MessageFormatError(.malformed, field: field, "\(field) is not a logical queue key: \(what)")
    }
}
