import Foundation
import RunQueueClient
import RunQueueCore
import TestSupport
import Testing

/// Expects `body` to throw a RunQueueError with `code`; returns it.
@discardableResult
func expectError<T>(_ code: StatusCode, _ body: () async throws -> T,
                    sourceLocation: SourceLocation = #_sourceLocation) async -> RunQueueError? {
    do {
        _ = try await body()
        Issue.record("expected \(code.name), the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RunQueueError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RunQueueError \(code.name), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
