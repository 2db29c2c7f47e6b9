import Foundation
import Testing

extension Tag {
    /// A suite that needs the real services: Redis and PostgreSQL (the shared
    /// ones of `scripts/services` or processes of its own), or runqueued.
    @Tag public static var integration: Self
}

extension Trait where Self == ConditionTrait {
    /// Skips an integration suite when RUNQUEUE_TEST_UNIT_ONLY=1 (`make test-unit`).
    public static var needsServices: Self {
        .enabled(if: ProcessInfo.processInfo.environment["RUNQUEUE_TEST_UNIT_ONLY"] != "1",
                 "RUNQUEUE_TEST_UNIT_ONLY=1: integration suites are skipped")
    }
}
