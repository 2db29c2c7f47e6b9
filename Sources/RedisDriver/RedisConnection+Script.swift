// Lua scripts: EVALSHA with the SHA-1 computed locally, EVAL once on NOSCRIPT.
//
// NOSCRIPT means the server does not have the script (first use, restart,
// SCRIPT FLUSH) and did not run it, so retrying is safe. The retry is EVAL
// with the source rather than SCRIPT LOAD + EVALSHA: it needs no
// coordination between many calls that get NOSCRIPT at the same time (each
// retries on its own, in one round trip), and EVAL caches the script, so later
// calls hit EVALSHA again.

extension RedisConnection {
    /// Runs `script` with EVALSHA; on NOSCRIPT retries once with EVAL.
    /// `completion` runs exactly once, as for `send`.
    public func evalScript(_ script: RedisScript, keys: [[UInt8]], args: [[UInt8]],
                           _ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        let tail = [Array(String(keys.count).utf8)] + keys + args
        send([Array("EVALSHA".utf8), script.sha1Bytes] + tail) { [weak self] result in
            guard case .failure(let error) = result, error.replyErrorPrefix == "NOSCRIPT", let self else {
                completion(result)
                return
            }
            self.send([Array("EVAL".utf8), script.sourceBytes] + tail, completion)
        }
    }

    /// `evalScript` with UTF-8 string keys and arguments.
    public func evalScript(_ script: RedisScript, keys: [String] = [], args: [String] = [],
                           _ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        evalScript(script, keys: keys.map { Array($0.utf8) }, args: args.map { Array($0.utf8) }, completion)
    }

    /// SCRIPT LOAD, checking that Redis names the script with our SHA-1
    /// (`.protocolError` otherwise). Optional: `evalScript` loads on demand;
    /// use it to fail fast at startup on a script that does not compile.
    public func loadScript(_ script: RedisScript, _ completion: @escaping (Result<Void, RedisError>) -> Void) {
        send([Array("SCRIPT".utf8), Array("LOAD".utf8), script.sourceBytes]) { result in
            switch result {
            case .success(let value) where value.string == script.sha1:
                completion(.success(()))
            case .success(let value):
                completion(.failure(RedisError(.protocolError, "SCRIPT LOAD returned \(value), expected \(script.sha1)")))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }
}
