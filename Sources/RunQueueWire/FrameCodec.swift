// FrameCodec: the wire framing, sans I/O.
//
// A frame is a 4-byte unsigned big-endian body length L, then L bytes of body.
// 1 <= L <= maxFrameBytes; anything else is a protocol violation.
//
// Invariants:
// - The length is checked as soon as its 4 bytes are known and before a
//   single body byte is stored, so an oversized or empty frame costs at most
//   4 buffered bytes (the limit is enforced before buffering).
// - A frame that arrives whole inside one input chunk is handed out as a view
//   of that chunk (no copy); only a frame split across chunks is assembled in
//   `partial`, which is reserved to exactly L bytes.
// - After a violation the decoder stays failed: the caller closes the stream.
// Why: the server reads into a shared 64 KiB buffer and must not let a peer
// make it allocate more than one frame's worth per connection.

/// A framing violation: the connection must be closed after reporting it.
public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyFrame
    case frameTooLarge(length: UInt32, limit: Int)

    public var description: String {
        switch self {
        case .emptyFrame: "frame length 0 is not allowed (1..limit)"
        case .frameTooLarge(let length, let limit): "frame length \(length) exceeds the limit of \(limit) bytes"
        }
    }
}

public struct FrameDecoder: Sendable {
    public let maxFrameBytes: Int
    private var header: UInt32 = 0
    private var headerBytes = 0
    private var partial: [UInt8] = []
    private var bodyLength = 0
    private var inBody = false
    public private(set) var failure: FrameError?

    public init(maxFrameBytes: Int) {
        precondition(maxFrameBytes >= 1 && maxFrameBytes <= Int(UInt32.max), "maxFrameBytes out of range: \(maxFrameBytes)")
        self.maxFrameBytes = maxFrameBytes
    }

    /// Bytes held for an incomplete frame (header and body).
    public var bufferedBytes: Int { headerBytes + partial.count }

    /// Consumes `input`, calling `onFrame` with each complete body in order.
    /// The body view is valid only during the call. Throws on a violation;
    /// frames completed before it were delivered.
    public mutating func feed(_ input: UnsafeRawBufferPointer,
                              onFrame: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let failure { throw failure }
        var offset = 0
        let count = input.count
        while offset < count {
            if !inBody {
                // Fast path: a whole header (and maybe body) at the cursor.
                if headerBytes == 0, count - offset >= 4 {
                    header = UInt32(input[offset]) << 24 | UInt32(input[offset + 1]) << 16
                        | UInt32(input[offset + 2]) << 8 | UInt32(input[offset + 3])
                    offset += 4
                } else {
                    header = header << 8 | UInt32(input[offset])
                    headerBytes += 1
                    offset += 1
                    if headerBytes < 4 { continue }
                    headerBytes = 0
                }
                try startBody()
                let available = count - offset
                if partial.isEmpty, available >= bodyLength {
                    inBody = false
                    let body = UnsafeRawBufferPointer(rebasing: input[offset..<(offset + bodyLength)])
                    offset += bodyLength
                    header = 0
                    try onFrame(body)
                    continue
                }
                partial.reserveCapacity(bodyLength)
            }
            let take = min(bodyLength - partial.count, count - offset)
            partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset..<(offset + take)]))
            offset += take
            if partial.count == bodyLength {
                inBody = false
                header = 0
                let body = partial
                partial = []
                try body.withUnsafeBytes { try onFrame($0) }
            }
        }
    }

    private mutating func startBody() throws(FrameError) {
        if header == 0 {
            failure = .emptyFrame
            throw .emptyFrame
        }
        if header > UInt32(maxFrameBytes) {
            let error = FrameError.frameTooLarge(length: header, limit: maxFrameBytes)
            failure = error
            throw error
        }
        bodyLength = Int(header)
        inBody = true
    }
}

public enum FrameEncoder {
    /// Appends one frame (length prefix + body) to `out`.
    public static func append(body: [UInt8], to out: inout [UInt8]) {
        let length = UInt32(body.count)
        out.append(UInt8(truncatingIfNeeded: length >> 24))
        out.append(UInt8(truncatingIfNeeded: length >> 16))
        out.append(UInt8(truncatingIfNeeded: length >> 8))
        out.append(UInt8(truncatingIfNeeded: length))
        out.append(contentsOf: body)
    }

    /// One frame as a new array.
    public static func frame(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 4)
        append(body: body, to: &out)
        return out
    }
}
