import Foundation
import Testing

@testable import WaybillDefinition

/// Each file in `Fixtures/invalid/` starts with a description comment and one `# expect: LINE:COLUMN: message`
/// comment per diagnostic the loader must report, in order. The test adds the `FILE:` prefix.
enum InvalidFixtures {
    static let directory: URL? = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?
        .appendingPathComponent("invalid")

    static var names: [String] {
        guard let directory,
            let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
        else { return [] }
        return names.filter { $0.hasSuffix(".yaml") }.sorted()
    }

    static func expectations(in text: String) -> [String] {
        let prefix = "# expect: "
        return text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0.hasPrefix(prefix) }
            .map { String($0.dropFirst(prefix.count)) }
    }
}

@Suite("Invalid workflow fixtures")
struct InvalidWorkflowFixtureTests {
    @Test("there are at least 20 invalid fixtures")
    func fixtureCount() {
        #expect(InvalidFixtures.names.count >= 20)
    }

    @Test("each fixture reports exactly its expected diagnostics", arguments: InvalidFixtures.names)
    func fixture(name: String) throws {
        let directory = try #require(InvalidFixtures.directory)
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        let expected = InvalidFixtures.expectations(in: text).map { "\(name):\($0)" }
        try #require(!expected.isEmpty, "\(name) has no '# expect:' lines")
        var actual: [String] = []
        do {
            if ParticipantLimits.isLimitsFile(name) {
                // The limits file beside the workflows has a reader of its own.
                _ = try ParticipantLimitsLoader.load(yaml: text, file: name)
                Issue.record("\(name) loaded but should be invalid")
            } else {
                let definition = try WorkflowLoader.load(yaml: text, file: name)
                Issue.record("\(name) loaded as \(definition.name) but should be invalid")
            }
        } catch {
            actual = error.diagnostics.map(\.description)
        }
        #expect(actual == expected)
    }
}
