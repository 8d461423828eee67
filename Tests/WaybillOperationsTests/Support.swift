import Foundation
import SagaEngine
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

/// The shape of a JSON document: one line per path with the JSON types found there (`sagas[].owner: null|string`),
/// sorted, so a test can pin the exact set of fields and their types.
func shape(_ value: JSONValue) -> String {
    var types: [String: Set<String>] = [:]
    func walk(_ value: JSONValue, _ path: String) {
        switch value {
        case .object(let members):
            types[path.isEmpty ? "." : path, default: []].insert("object")
            for (key, member) in members { walk(member, path + "." + key) }
        case .array(let elements):
            types[path, default: []].insert("array")
            for element in elements { walk(element, path + "[]") }
        default:
            types[path, default: []].insert(value.typeName)
        }
    }
    walk(value, "")
    return types.keys.sorted().map { "\($0): \(types[$0, default: []].sorted().joined(separator: "|"))" }
        .joined(separator: "\n") + "\n"
}

/// The fixture file and a read-only view of it.
struct FixtureFile {
    let directory: TemporaryDirectory
    let path: String
    let database: SagaInspector

    init() throws {
        directory = try TemporaryDirectory()
        path = try Fixture.build(in: directory)
        database = try SagaInspector(path: path)
    }

    /// What `waybill sagas show` computes for `reference` at the fixture's `now`, placed in a pool's partition when
    /// `placement` is given.
    func detail(_ reference: String, journal: Int = 5, placement: SagaDetail.Placement? = nil) throws -> SagaDetail {
        let key = try database.resolve(try SagaReference(parsing: reference))
        guard let record = try database.saga(key) else { throw OperationsError(.notFound, "\(key)") }
        return SagaDetail(
            record: record, definition: try database.definition(hash: record.row.definitionHash),
            timers: try database.timers(of: key), journal: try database.journalTail(of: key, count: journal),
            now: Fixture.now, placement: placement)
    }

    /// A filter with `limit` 50 and the given changes.
    static func filter(_ change: (inout SagaFilter) -> Void = { _ in }) -> SagaFilter {
        var filter = SagaFilter()
        filter.limit = 50
        change(&filter)
        return filter
    }
}
