import DequeModule
import Foundation
@testable import PostgresDriver
import Testing

@Suite struct PostgresConfigTests {
    @Test func parsesAFullURL() throws {
        let config = try PostgresConfig(url: "postgres://app:s%40cret@10.1.2.3:6543/runs%2Fdb?application_name=rq&connect_timeout=2&query_timeout_ms=1500")
        #expect(config.host == "10.1.2.3")
        #expect(config.port == 6543)
        #expect(config.user == "app")
        #expect(config.password == "s@cret")
        #expect(config.database == "runs/db")
        #expect(config.connectTimeoutMs == 2000)
        #expect(config.queryTimeoutMs == 1500)
        #expect(config.parameters == ["application_name": "rq"])
        #expect(config.literalAddress == "10.1.2.3")
        #expect(!config.description.contains("s@cret"))
        let keywords = Dictionary(uniqueKeysWithValues: config.connectionParameters(address: "10.1.2.3"))
        #expect(keywords["hostaddr"] == "10.1.2.3")
        #expect(keywords["dbname"] == "runs/db")
        #expect(keywords["application_name"] == "rq")
        #expect(keywords["gssencmode"] == "disable")
        #expect(keywords["options"] == "-c plan_cache_mode=force_custom_plan")
    }

    @Test func keepsTheCallersOptionsAfterTheSessionDefaults() throws {
        let config = try PostgresConfig(url: "postgres://u@127.0.0.1/db?options=-c%20plan_cache_mode%3Dauto%20-c%20work_mem%3D8MB")
        let keywords = Dictionary(uniqueKeysWithValues: config.connectionParameters(address: "127.0.0.1"))
        #expect(keywords["options"] == "-c plan_cache_mode=force_custom_plan -c plan_cache_mode=auto -c work_mem=8MB")
    }

    @Test func mapsLocalhostAndIPv6WithoutALookup() throws {
        let local = try PostgresConfig(url: "postgresql://postgres@localhost/postgres")
        #expect(local.literalAddress == "127.0.0.1")
        #expect(local.port == 5432)
        let v6 = try PostgresConfig(url: "postgres://u@[::1]:5491/db")
        #expect(v6.host == "::1")
        #expect(v6.port == 5491)
        #expect(v6.literalAddress == "::1")
        let named = try PostgresConfig(url: "postgres://u@db.internal:5432/db")
        #expect(named.literalAddress == nil)
    }

    @Test(arguments: [
        "mysql://u@127.0.0.1/db",
        "postgres://u@127.0.0.1:0/db",
        "postgres://u@127.0.0.1:99999/db",
        "postgres://u@[::1/db",
        "postgres://u@a,b/db",
        "postgres://u@127.0.0.1/db?no_such_option=1",
        "postgres://u@127.0.0.1/db?hostaddr=1.2.3.4",
        "postgres://u@127.0.0.1/db?query_timeout_ms=soon",
    ])
    func rejectsMalformedURLs(url: String) {
        #expect(throws: PostgresError.self) { try PostgresConfig(url: url) }
    }

    @Test func encodesParameters() throws {
        #expect(String(decoding: PostgresBindable.arrayLiteral(["a", "b\"c", nil, "d\\e", "é"]), as: UTF8.self) == #"{"a","b\"c",NULL,"d\\e","é"}"#)
        #expect(PostgresBindable.int64Array([1, nil, -3]).encoded.bytes == Array(#"{"1",NULL,"-3"}"#.utf8))
        #expect(PostgresBindable.double(.infinity).encoded.bytes == Array("Infinity".utf8))
        #expect(PostgresBindable.bytea([0, 1]).encoded.binary)
        #expect(throws: PostgresError.self) { try EncodedStatement(PostgresStatement("SELECT $1", ["a\u{0}b"])) }
        let statement = try EncodedStatement(PostgresStatement("SELECT $1, $2, $3", [nil, "x", .bytea([])]))
        #expect(statement.offsets == [-1, 0, 2])
        #expect(statement.formats == [0, 0, 1])
    }

    @Test func rowsReadByNameAndType() {
        let result = PostgresResult(columns: ["id", "ok", "blob", "none"], rows: [["42", "t", "\\x00ff10", nil]],
                                    affectedRows: 1, commandTag: "SELECT 1")
        let row = result[0]
        #expect(row.int("id") == 42)
        #expect(row.bool("ok") == true)
        #expect(row.bytes("blob") == [0, 255, 16])
        #expect(row["none"] == nil)
        #expect(row["missing"] == nil)
        #expect(result.scalar == "42")
        #expect(result.count == 1)
    }

    @Test func takingFromAQueueKeepsTheOrderOfWhatIsTakenAndWhatStays() {
        var queue = Deque(0..<5000)
        var popped: [Int] = []
        for _ in 0..<3000 { popped.append(queue.popFirst()!) }
        queue.append(contentsOf: 5000..<6000)
        let removed = queue.take { $0 % 2 == 0 }
        #expect(popped == Array(0..<3000))
        #expect(removed == Array(stride(from: 3000, to: 6000, by: 2)))
        #expect(queue.takeAll() == Array(stride(from: 3001, to: 6000, by: 2)))
        #expect(queue.isEmpty)
    }

    @Test func quotesIdentifiersAndLiterals() {
        #expect(PostgresConnection.quoteIdentifier(#"a"b"#) == #""a""b""#)
        #expect(PostgresConnection.quoteLiteral("it's") == "'it''s'")
    }
}
