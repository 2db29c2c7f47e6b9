// WireStrings: every string field of a request body is valid UTF-8 without
// NUL, checked on the wire bytes before protobuf-c sees them.
//
// protobuf-c hands strings over as NUL-terminated C strings: a NUL inside
// one would silently cut it ("p\0x" stored as "p"), and the conversion to
// Swift would replace ill-formed UTF-8 by U+FFFD. Both alter what the client
// sent, so such a body is refused instead, naming the field by its path
// (`enqueue.run.project_id`). The walk follows the message descriptors that
// protoc-c generated, so it knows which length-delimited fields are strings
// and which are nested messages; anything malformed is left for protobuf-c
// to reject. A valid body of ASCII strings costs one pass over its bytes
// and no allocation.
internal import CProtobufC
internal import CRunQueueProto

enum WireStrings {
    struct Failure: Error {
        /// The request's call id when it came before the bad field (0 otherwise).
        var callID: UInt64
        var message: String
    }

    /// Checks every string field of a `runqueue.v1.Request` body.
    static func checkRequest(_ body: UnsafeRawBufferPointer) throws(Failure) {
        var callID: UInt64 = 0
        try withUnsafePointer(to: runqueue__v1__request__descriptor) { (descriptor) throws(Failure) in
            try check(body, descriptor, isTop: true, parentPath: { "" }, callID: &callID)
        }
    }

    /// `parentPath` builds the enclosing field's path; it is only called to
    /// name a bad field, so a valid body costs no string building.
    private static func check(_ bytes: UnsafeRawBufferPointer, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                              isTop: Bool, parentPath: () -> String, callID: inout UInt64) throws(Failure) {
        var position = 0
        while position < bytes.count {
            guard let key = varint(bytes, &position) else { return }
            let number = key >> 3
            switch key & 7 {
            case 0:
                guard let value = varint(bytes, &position) else { return }
                if isTop && number == 1 { callID = value }
            case 1: position += 8
            case 5: position += 4
            case 2:
                guard let length = varint(bytes, &position), length <= UInt64(bytes.count - position) else { return }
                let end = position + Int(length)
                if number <= UInt64(UInt32.max),
                   let field = protobuf_c_message_descriptor_get_field(descriptor, UInt32(number)) {
                    let value = UnsafeRawBufferPointer(rebasing: bytes[position..<end])
                    func path() -> String {
                        let parent = parentPath()
                        let own = String(cString: field.pointee.name)
                        return parent.isEmpty ? own : parent + "." + own
                    }
                    switch field.pointee.type {
                    case PROTOBUF_C_TYPE_STRING:
                        switch text(value) {
                        case .valid: break
                        case .nul: throw Failure(callID: callID, message: "\(path()) holds a NUL byte; strings must be UTF-8 without NUL")
                        case .notUTF8: throw Failure(callID: callID, message: "\(path()) is not valid UTF-8")
                        }
                    case PROTOBUF_C_TYPE_MESSAGE:
                        if let nested = field.pointee.descriptor {
                            try check(value, nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self), isTop: false,
                                      parentPath: path, callID: &callID)
                        }
                    default:
                        break
                    }
                }
                position = end
            default:
                return
            }
        }
    }

    private enum Text { case valid, nul, notUTF8 }

    /// ASCII (the usual case) is checked byte by byte without allocating;
    /// anything else is validated as UTF-8.
    private static func text(_ bytes: UnsafeRawBufferPointer) -> Text {
        var ascii = true
        for byte in bytes {
            if byte == 0 { return .nul }
            if byte >= 0x80 { ascii = false }
        }
        if ascii { return .valid }
        return String(validating: bytes, as: UTF8.self) == nil ? .notUTF8 : .valid
    }

    /// A base-128 varint at `position`, advancing it; nil when truncated or longer than 10 bytes.
    private static func varint(_ bytes: UnsafeRawBufferPointer, _ position: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }
}
