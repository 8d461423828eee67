import Foundation
import Testing

@testable import SagaEngine
@testable import SagaStore

/// The sections of `GoldenStates/state-format-1.hex`: state bytes written by an earlier binary, which every later
/// binary must read back unchanged.
enum GoldenStateFile {
    static let name = "state-format-1.hex"

    struct Damaged: Error, CustomStringConvertible {
        var description: String
    }

    /// The bytes of each section, by name, in file order.
    static func sections() throws -> [(name: String, bytes: [UInt8])] {
        let directory = try #require(Bundle.module.url(forResource: "GoldenStates", withExtension: nil))
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        var sections: [(name: String, bytes: [UInt8])] = []
        for (index, line) in text.split(separator: "\n").enumerated() where !line.hasPrefix("#") {
            if line.hasPrefix("["), line.hasSuffix("]") {
                sections.append((String(line.dropFirst().dropLast()), []))
                continue
            }
            guard !sections.isEmpty, line.count.isMultiple(of: 2) else {
                throw Damaged(description: "\(name):\(index + 1): expected a [section] or whole hex bytes")
            }
            var rest = line[...]
            while !rest.isEmpty {
                guard let byte = UInt8(rest.prefix(2), radix: 16) else {
                    throw Damaged(description: "\(name):\(index + 1): '\(rest.prefix(2))' is not a hex byte")
                }
                sections[sections.count - 1].bytes.append(byte)
                rest = rest.dropFirst(2)
            }
        }
        return sections
    }
}

@Suite struct GoldenStateTests {
    @Test func everyExpectedSagaHasItsFrozenBytes() throws {
        let names = try GoldenStateFile.sections().map(\.name)
        #expect(names == GoldenStates.all.map(\.name))
    }

    @Test(arguments: GoldenStates.all.map(\.name))
    func frozenBytesDecodeToTheExpectedSaga(name: String) throws {
        let bytes = try #require(try GoldenStateFile.sections().first { $0.name == name }?.bytes)
        let expected = try #require(GoldenStates.all.first { $0.name == name }?.instance)
        let decoded = try SagaStateFormat.decode(bytes)
        Self.expectSameFields(decoded, expected, name)
        #expect(decoded == expected)
    }

    /// Writing what was read gives the frozen bytes again, up to the order of JSON object members (a Swift
    /// dictionary's iteration order differs from process to process, and the format leaves it free).
    @Test(arguments: GoldenStates.all.map(\.name))
    func reencodingGivesTheFrozenBytes(name: String) throws {
        let bytes = try #require(try GoldenStateFile.sections().first { $0.name == name }?.bytes)
        let reencoded = SagaStateFormat.encode(try SagaStateFormat.decode(bytes))
        #expect(reencoded.count == bytes.count)
        #expect(try CanonicalState.sortingObjectMembers(reencoded) == CanonicalState.sortingObjectMembers(bytes))
    }

    static func expectSameFields(_ decoded: SagaInstance, _ expected: SagaInstance, _ name: String) {
        #expect(decoded.key == expected.key, "\(name): key")
        #expect(decoded.version == expected.version, "\(name): version")
        #expect(decoded.definitionHash == expected.definitionHash, "\(name): definitionHash")
        #expect(decoded.status == expected.status, "\(name): status")
        #expect(decoded.input == expected.input, "\(name): input")
        #expect(decoded.cursor == expected.cursor, "\(name): cursor")
        #expect(decoded.completions == expected.completions, "\(name): completions")
        #expect(decoded.compensation?.purpose == expected.compensation?.purpose, "\(name): compensation.purpose")
        #expect(decoded.compensation?.queue == expected.compensation?.queue, "\(name): compensation.queue")
        #expect(decoded.pivotPassed == expected.pivotPassed, "\(name): pivotPassed")
        #expect(decoded.failure?.step == expected.failure?.step, "\(name): failure.step")
        #expect(decoded.failure?.branch == expected.failure?.branch, "\(name): failure.branch")
        #expect(decoded.failure?.error == expected.failure?.error, "\(name): failure.error")
        #expect(decoded.failure?.at == expected.failure?.at, "\(name): failure.at")
        #expect(decoded.startedAt == expected.startedAt, "\(name): startedAt")
        #expect(decoded.updatedAt == expected.updatedAt, "\(name): updatedAt")
        #expect(decoded.sequence == expected.sequence, "\(name): sequence")
        #expect(decoded.steps.count == expected.steps.count, "\(name): steps.count")
        for (index, (step, want)) in zip(decoded.steps, expected.steps).enumerated() {
            let label = "\(name): steps[\(index)]"
            #expect(step.status == want.status, "\(label).status")
            #expect(step.output == want.output, "\(label).output")
            #expect(step.round == want.round, "\(label).round")
            #expect(step.reallocations == want.reallocations, "\(label).reallocations")
            #expect(step.excludedWarehouses == want.excludedWarehouses, "\(label).excludedWarehouses")
            #expect(step.startedAt == want.startedAt, "\(label).startedAt")
            #expect(step.finishedAt == want.finishedAt, "\(label).finishedAt")
            #expect(step.branches.count == want.branches.count, "\(label).branches.count")
            for (branchIndex, (branch, wantBranch)) in zip(step.branches, want.branches).enumerated() {
                expectSameFields(branch, wantBranch, "\(label).branches[\(branchIndex)]")
            }
        }
    }

    static func expectSameFields(_ branch: BranchState, _ want: BranchState, _ label: String) {
        #expect(branch.item == want.item, "\(label).item")
        #expect(branch.status == want.status, "\(label).status")
        #expect(branch.round == want.round, "\(label).round")
        #expect(branch.attempt == want.attempt, "\(label).attempt")
        #expect(branch.compensationAttempt == want.compensationAttempt, "\(label).compensationAttempt")
        #expect(branch.pending?.messageId == want.pending?.messageId, "\(label).pending.messageId")
        #expect(branch.pending?.routingKey == want.pending?.routingKey, "\(label).pending.routingKey")
        #expect(branch.pending?.kind == want.pending?.kind, "\(label).pending.kind")
        #expect(branch.pending?.attempt == want.pending?.attempt, "\(label).pending.attempt")
        #expect(branch.pending?.sentAt == want.pending?.sentAt, "\(label).pending.sentAt")
        #expect(branch.timer?.id == want.timer?.id, "\(label).timer.id")
        #expect(branch.timer?.kind == want.timer?.kind, "\(label).timer.kind")
        #expect(branch.timer?.dueAt == want.timer?.dueAt, "\(label).timer.dueAt")
        #expect(branch.output == want.output, "\(label).output")
        #expect(branch.lastError?.code == want.lastError?.code, "\(label).lastError.code")
        #expect(branch.lastError?.message == want.lastError?.message, "\(label).lastError.message")
        #expect(branch.lastError?.retryable == want.lastError?.retryable, "\(label).lastError.retryable")
        #expect(branch.unansweredAttempts == want.unansweredAttempts, "\(label).unansweredAttempts")
        #expect(branch.startedAt == want.startedAt, "\(label).startedAt")
        #expect(branch.finishedAt == want.finishedAt, "\(label).finishedAt")
    }
}

/// Rewrites state bytes with every JSON object's members sorted by key, so two encodings of the same saga compare
/// equal whatever order their dictionaries iterated in. Written against the byte layout documented on `StateCodec`,
/// independently of its reader, so it checks the codec rather than repeating it.
struct CanonicalState {
    private let bytes: [UInt8]
    private var offset = 0

    struct Damaged: Error {}

    static func sortingObjectMembers(_ bytes: [UInt8]) throws -> [UInt8] {
        guard bytes.count >= 3 else { throw Damaged() }
        var walker = CanonicalState(bytes: bytes, offset: 3)
        let body = try walker.value()
        guard walker.offset == bytes.count else { throw Damaged() }
        return Array(bytes[0..<3]) + body
    }

    private init(bytes: [UInt8], offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw Damaged() }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    private mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw Damaged() }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A varint, as its value and its bytes.
    private mutating func varint() throws -> (value: Int, bytes: [UInt8]) {
        var value = 0
        var shift = 0
        var raw: [UInt8] = []
        while true {
            let byte = try byte()
            raw.append(byte)
            value |= Int(byte & 0x7F) << shift
            if byte < 0x80 { return (value, raw) }
            shift += 7
            guard shift < 63 else { throw Damaged() }
        }
    }

    /// One tagged value, canonicalised.
    private mutating func value() throws -> [UInt8] {
        let tag = try byte()
        var out: [UInt8] = [tag]
        switch tag {
        case 2, 3, 11: break  // false, true, JSON null
        case 4, 13: out += try varint().bytes  // int, JSON integer
        case 6, 12: out += try take(8)  // double, JSON number
        case 7:  // string
            let length = try varint()
            out += length.bytes + (try take(length.value))
        case 9:  // array: values, then an end byte
            while offset < bytes.count, bytes[offset] != 0 { out += try value() }
            out.append(try byte())
        case 10:  // message: (field number, value) pairs, then field number 0
            while true {
                let field = try varint()
                out += field.bytes
                if field.value == 0 { break }
                out += try value()
            }
        case 14:  // JSON array: count, values
            let count = try varint()
            out += count.bytes
            for _ in 0..<count.value { out += try value() }
        case 15:  // JSON object: count, (key length, key, value) members — sorted here
            let count = try varint()
            out += count.bytes
            var members: [(key: [UInt8], bytes: [UInt8])] = []
            for _ in 0..<count.value {
                let length = try varint()
                let key = Array(try take(length.value))
                members.append((key, length.bytes + key + (try value())))
            }
            for member in members.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) { out += member.bytes }
        default:
            throw Damaged()
        }
        return out
    }
}
