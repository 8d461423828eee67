import Testing
import WaybillDefinition
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

/// Workflow definitions are stored once per content hash, with the time they were first seen.
@Suite struct DefinitionStoreTests {
    @Test func definitionsAreStoredByContentHash() throws {
        let directory = try TemporaryDirectory()
        let store = try SagaStore.open(in: directory)
        let source = "name: order-fulfillment\nversion: 1\n"
        let hash = try store.saveDefinition(
            name: "order-fulfillment", version: 1, source: source, at: Timestamp(milliseconds: 10))
        #expect(hash == ContentHash.sha256Hex(Array(source.utf8)))
        let again = try store.saveDefinition(
            name: "order-fulfillment", version: 1, source: source, at: Timestamp(milliseconds: 99))
        #expect(again == hash)
        let stored = try #require(try store.definition(hash: hash))
        #expect(
            stored
                == StoredDefinition(
                    hash: hash, name: "order-fulfillment", version: 1, source: source,
                    firstSeenAt: Timestamp(milliseconds: 10)))
        #expect(try store.definition(hash: "nope") == nil)
    }
}
