internal import CHiredis

extension RedisValue {
    /// Copies a hiredis reply (freed by hiredis once the callback returns).
    /// A top-level error reply becomes `.replyError`.
    static func result(copying reply: UnsafePointer<redisReply>) -> Result<RedisValue, RedisError> {
        if reply.pointee.type == REDIS_REPLY_ERROR {
            return .failure(RedisError(.replyError, String(decoding: bytes(of: reply), as: UTF8.self)))
        }
        guard let value = copy(reply) else {
            return .failure(RedisError(.protocolError, "unknown reply type \(reply.pointee.type)"))
        }
        return .success(value)
    }

    /// nil for a reply type hiredis 0.14 does not produce (it only speaks RESP2).
    /// hiredis caps array nesting (7 levels), which bounds the recursion.
    private static func copy(_ reply: UnsafePointer<redisReply>) -> RedisValue? {
        switch reply.pointee.type {
        case REDIS_REPLY_STRING:
            return .bulk(bytes(of: reply))
        case REDIS_REPLY_INTEGER:
            return .int(Int64(reply.pointee.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: bytes(of: reply), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(of: reply), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            let count = reply.pointee.elements
            var elements: [RedisValue] = []
            elements.reserveCapacity(count)
            for index in 0..<count {
                guard let element = reply.pointee.element[index], let value = copy(element) else { return nil }
                elements.append(value)
            }
            return .array(elements)
        default:
            return nil
        }
    }

    private static func bytes(of reply: UnsafePointer<redisReply>) -> [UInt8] {
        guard let str = reply.pointee.str, reply.pointee.len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: str, count: reply.pointee.len))
    }
}
