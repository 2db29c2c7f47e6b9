import RunQueueCore
import Testing

@Suite struct ValidationTests {
    private static let validDescriptor = RunDescriptor(
        runID: "run_abc", orgID: "org_1", projectID: "proj_1", environmentID: "env_1",
        environmentType: .production, queue: "task/my-task", concurrencyKey: "",
        taskIdentifier: "my-task", workerQueue: "main", timestampMs: 1_700_000_000_000,
        priorityMs: 0, ttl: "10m"
    )

    private func error(_ body: () throws(ValidationError) -> Void) -> ValidationError? {
        do { try body(); return nil } catch { return error }
    }

    // MARK: identifiers

    @Test func identifierAcceptsItsWholeAlphabetUpTo128Bytes() throws {
        try Validation.identifier("azAZ09_.-", field: "run_id")
        try Validation.identifier("x", field: "run_id")
        try Validation.identifier(String(repeating: "a", count: 128), field: "run_id")
    }

    @Test func identifierRejectsEmptyTooLongAndForeignBytes() {
        let rejected = ["", String(repeating: "a", count: 129), "a/b", "a:b", "a b", "a|b", "é", "run\u{1E}1", "a\0"]
        for value in rejected {
            let e = error { () throws(ValidationError) in try Validation.identifier(value, field: "org_id") }
            #expect(e == ValidationError(field: "org_id", message: "org_id must be 1..128 bytes of [A-Za-z0-9_.-]"), "\(value.debugDescription)")
        }
    }

    @Test func queueNameAlsoAcceptsSlash() throws {
        try Validation.queueName("task/my-task")
        try Validation.queueName("/")
        try Validation.queueName(String(repeating: "/", count: 128))
        let e = error { () throws(ValidationError) in try Validation.queueName("") }
        #expect(e?.field == "queue")
        #expect(e?.message == "queue must be 1..128 bytes of [A-Za-z0-9_./-]")
        #expect(!Validation.isQueueName(String(repeating: "q", count: 129)))
        #expect(!Validation.isQueueName("a:b"))
        #expect(!Validation.isQueueName("ü"))
    }

    @Test func taskIdentifierMayBeEmptyButNotLongerThan128Bytes() throws {
        try Validation.taskIdentifier("")
        try Validation.taskIdentifier("jobs/send-email.v2")
        try Validation.taskIdentifier(String(repeating: "t", count: 128))
        for value in [String(repeating: "t", count: 129), "a b", "a:b", "ñ"] {
            let e = error { () throws(ValidationError) in try Validation.taskIdentifier(value) }
            #expect(e?.message == "task_identifier must be 0..128 bytes of [A-Za-z0-9_./-]", "\(value.debugDescription)")
        }
    }

    // MARK: concurrency keys

    @Test func concurrencyKeyAcceptsEmptyPunctuationAndMultiByteUTF8() throws {
        for value in ["", "user:42", "a:ck:b", "{}\"\\/ ~", "日本語", "emoji 🎉", "\u{A0}nbsp", "\u{A0}", "\u{2028}"] {
            try Validation.concurrencyKey(value)
        }
    }

    @Test func concurrencyKeyLengthCountsBytesNotCharacters() throws {
        // "é" is 2 bytes: 64 of them are 128 bytes, 65 are 130.
        try Validation.concurrencyKey(String(repeating: "é", count: 64))
        #expect(!Validation.isConcurrencyKey(String(repeating: "é", count: 65)))
        // "€" is 3 bytes: 42 + 2 ASCII = 128, 43 = 129 (43 characters only).
        try Validation.concurrencyKey(String(repeating: "€", count: 42) + "ab")
        #expect(!Validation.isConcurrencyKey(String(repeating: "€", count: 43)))
        // "🎉" is 4 bytes: 32 are 128 bytes, 33 are 132.
        #expect(Validation.isConcurrencyKey(String(repeating: "🎉", count: 32)))
        #expect(!Validation.isConcurrencyKey(String(repeating: "🎉", count: 33)))
        try Validation.concurrencyKey(String(repeating: "k", count: 128))
        #expect(!Validation.isConcurrencyKey(String(repeating: "k", count: 129)))
    }

    @Test func concurrencyKeyRejectsControlsPipeAndRecordSeparator() {
        let rejected = ["a|b", "|", "a\u{1E}b", "\0", "tab\t", "line\n", "\r", "\u{1F}", "del\u{7F}", "c1\u{80}", "c1\u{85}", "c1\u{9F}"]
        for value in rejected {
            let e = error { () throws(ValidationError) in try Validation.concurrencyKey(value) }
            #expect(e?.field == "concurrency_key", "\(value.debugDescription)")
            #expect(e?.message == "concurrency_key must be 0..128 bytes of UTF-8 with no control characters, no '|' and no 0x1E")
        }
        // The neighbours of the C1 block are fine: U+007E, U+00A0, U+00A1 and
        // characters whose UTF-8 has 0x80..0x9F as a continuation of another lead byte.
        for value in ["~", "\u{A0}", "\u{A1}", "\u{100}", "\u{3080}", "\u{1F389}"] {
            #expect(Validation.isConcurrencyKey(value), "\(value.debugDescription)")
        }
    }

    // MARK: environment type and numbers

    @Test func environmentTypeMustBeNamed() throws {
        for type in [EnvironmentType.development, .staging, .preview, .production] {
            try Validation.environmentType(type)
        }
        let e = error { () throws(ValidationError) in try Validation.environmentType(.unspecified) }
        #expect(e == ValidationError(field: "environment_type", message: "environment_type must be DEVELOPMENT, STAGING, PREVIEW or PRODUCTION"))
    }

    @Test func timestampMustBeNonNegativeAndAtMost15Digits() throws {
        try Validation.timestampMs(0)
        try Validation.timestampMs(999_999_999_999_999)
        for value in [Int64(-1), 1_000_000_000_000_000, Validation.maxExactInteger, .max, .min] {
            let e = error { () throws(ValidationError) in try Validation.timestampMs(value) }
            #expect(e?.field == "timestamp_ms", "\(value)")
            #expect(e?.message.hasPrefix("timestamp_ms must be") == true)
        }
    }

    @Test func priorityMustBeWithinPlusMinus2To53() throws {
        try Validation.priorityMs(0)
        try Validation.priorityMs(Validation.maxExactInteger)
        try Validation.priorityMs(-Validation.maxExactInteger)
        for value in [Validation.maxExactInteger + 1, -Validation.maxExactInteger - 1, .max, .min] {
            let e = error { () throws(ValidationError) in try Validation.priorityMs(value) }
            #expect(e?.field == "priority_ms", "\(value)")
        }
    }

    @Test func orderingScoreMustStayExactAsADouble() throws {
        #expect(try Validation.orderingScore(timestampMs: 1000, priorityMs: 300) == 700)
        #expect(try Validation.orderingScore(timestampMs: 0, priorityMs: Validation.maxExactInteger) == -Validation.maxExactInteger)
        let e = error { () throws(ValidationError) in
            _ = try Validation.orderingScore(timestampMs: 1_700_000_000_000, priorityMs: -Validation.maxExactInteger)
        }
        #expect(e?.field == "priority_ms")
        #expect(e?.message.contains("timestamp_ms - priority_ms") == true)
    }

    // MARK: descriptors

    @Test func acceptsAValidDescriptorWithAndWithoutOptionalFields() throws {
        try Validation.runDescriptor(Self.validDescriptor)
        var d = Self.validDescriptor
        d.concurrencyKey = "tenant:7"
        d.taskIdentifier = ""
        d.timestampMs = 0
        d.priorityMs = -Validation.maxExactInteger
        d.ttl = "not checked here"
        try Validation.runDescriptor(d)
    }

    @Test func namesEachDescriptorFieldInSnakeCase() {
        typealias Mutation = (inout RunDescriptor) -> Void
        let cases: [(String, Mutation)] = [
            ("run_id", { $0.runID = "" }),
            ("org_id", { $0.orgID = "o/1" }),
            ("project_id", { $0.projectID = String(repeating: "p", count: 129) }),
            ("environment_id", { $0.environmentID = "env 1" }),
            ("environment_type", { $0.environmentType = .unspecified }),
            ("queue", { $0.queue = "q:1" }),
            ("concurrency_key", { $0.concurrencyKey = "a|b" }),
            ("task_identifier", { $0.taskIdentifier = "task id" }),
            ("worker_queue", { $0.workerQueue = "" }),
            ("timestamp_ms", { $0.timestampMs = -5 }),
            ("priority_ms", { $0.priorityMs = .min }),
            ("priority_ms", { $0.timestampMs = 10; $0.priorityMs = -Validation.maxExactInteger }),
        ]
        for (field, mutate) in cases {
            var d = Self.validDescriptor
            mutate(&d)
            let e = error { () throws(ValidationError) in try Validation.runDescriptor(d) }
            #expect(e?.field == field)
            #expect(e?.message.hasPrefix(field + " ") == true, "\(String(describing: e))")
        }
    }

    @Test func reportsTheFirstBadFieldInProtoOrder() {
        var d = Self.validDescriptor
        d.workerQueue = ""
        d.orgID = ""
        let e = error { () throws(ValidationError) in try Validation.runDescriptor(d) }
        #expect(e?.field == "org_id")
    }
}
