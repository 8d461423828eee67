import Foundation
import SagaEngine
import WaybillDefinition

/// The compact binary form of a saga's state (the `sagas.state` column).
///
/// Why not `Codable`: Foundation's `JSONEncoder` takes about 350 µs to encode one six-step order saga on Linux (and
/// `JSONDecoder` 600 µs to read it back), and even a custom binary `Encoder` driven by the synthesized conformances
/// spends 130 µs in existential containers and generic metadata lookups. That alone would cap a worker near
/// 3,000 transitions per second. This codec writes the engine's types field by field instead.
///
/// Layout (protobuf-like, self-describing so unknown fields can be skipped):
/// the magic `W`, `S` and a format version byte, then one message. A message is a run of
/// `(varint field number ≥ 1, tagged value)` pairs ended by field number 0; an absent optional is simply not written.
/// A tagged value is a ``Tag`` byte and its payload. Arrays end with a ``Tag/end`` byte. JSON arrays and objects start
/// with their element count (so the reader sizes them once); object members are `(varint key length, UTF-8 key,
/// JSON value)`, in the order the dictionary iterates them, which differs between processes: equal sagas can encode
/// to different bytes, so compare decoded values.
///
/// Evolution: a reader skips field numbers it does not know and leaves fields it does not find at their defaults,
/// so adding a field is backward and forward compatible. The field numbers are the `…Field` enums below; never
/// renumber or reuse one. `StateCodecCoverageTests` fails when the engine grows a stored property this file does not
/// write, and `GoldenStateTests` when bytes an earlier binary wrote stop decoding to the same saga.
enum StateCodec {
    static let magic: [UInt8] = [0x57, 0x53]
    static let formatVersion: UInt8 = 1

    /// The type byte before each value. Stored like the field numbers: never renumber or reuse one.
    enum Tag: UInt8 {
        case end = 0
        case falseValue = 2
        case trueValue = 3
        case int = 4  // zigzag varint
        case double = 6  // 8 bytes, little-endian bit pattern
        case string = 7  // varint length, UTF-8
        case array = 9  // values, then .end
        case message = 10  // (field number, value) pairs, then field number 0
        case jsonNull = 11
        case jsonNumber = 12  // a JSON number that is not a small exact integer: 8 bytes
        case jsonInteger = 13  // a JSON number holding an exact integer below 2^53: zigzag varint
        case jsonArray = 14  // varint count, JSON values
        case jsonObject = 15  // varint count, (varint key length, key, JSON value) entries
    }

    /// Encodes `instance` in the state format.
    static func encode(_ instance: SagaInstance) -> [UInt8] {
        write(instance).bytes
    }

    private static func write(_ instance: SagaInstance) -> StateWriter {
        var writer = StateWriter()
        writer.append(contentsOf: magic)
        writer.append(formatVersion)
        writer.instance(instance)
        return writer
    }

    /// Decodes bytes made by ``encode(_:)``.
    static func decode(_ bytes: [UInt8]) throws(StateCodecError) -> SagaInstance {
        guard bytes.count >= 3, bytes[0] == magic[0], bytes[1] == magic[1] else {
            throw StateCodecError("not a Waybill saga state (bad magic bytes)")
        }
        guard bytes[2] == formatVersion else {
            throw StateCodecError(
                "saga state format \(bytes[2]) is newer than this binary, which reads format \(formatVersion)",
                code: .unsupportedStateFormat)
        }
        return try bytes.withUnsafeBufferPointer { (buffer) throws(StateCodecError) -> SagaInstance in
            var reader = StateReader(buffer: buffer, offset: 3)
            let instance = try reader.instance()
            guard reader.offset == buffer.count else {
                throw StateCodecError("\(buffer.count - reader.offset) stray bytes after the saga state")
            }
            return instance
        }
    }
}

// MARK: - Field numbers

/// The field numbers of one record type of the state format.
///
/// A number is part of the stored format from the moment a binary that writes it ships: it is never renumbered and
/// never reused for another field, not even after its field is removed (keep the case, renamed `retired…`, so the
/// number stays taken). A new field takes the next unused number of its record.
protocol StateField: RawRepresentable where RawValue == UInt64 {}

extension StateCodec {
    /// The fields of a ``SagaInstance``.
    enum InstanceField: UInt64, StateField {
        case workflow = 1
        case id = 2
        case version = 3
        case definitionHash = 4
        case status = 5
        case input = 6
        /// An array of ``StepField`` messages.
        case steps = 7
        case cursor = 8
        /// An array of ``BranchRefField`` messages.
        case completions = 9
        /// A ``CompensationField`` message; absent when no compensation runs.
        case compensation = 10
        case pivotPassed = 11
        /// A ``FailureField`` message; absent without a failure.
        case failure = 12
        case startedAt = 13
        case updatedAt = 14
        case sequence = 15
        /// A ``TraceField`` message; absent for a saga without a trace (every saga stored before traces).
        case trace = 16
    }

    /// The fields of a ``SagaTrace``.
    enum TraceField: UInt64, StateField {
        case traceParent = 1
        case traceState = 2
    }

    /// The fields of a ``BranchRef``.
    enum BranchRefField: UInt64, StateField {
        case step = 1
        case branch = 2
    }

    /// The fields of a ``CompensationPlan``.
    enum CompensationField: UInt64, StateField {
        /// A ``PurposeField`` message.
        case purpose = 1
        /// An array of ``BranchRefField`` messages.
        case queue = 2
    }

    /// The fields of a ``CompensationPlan/Purpose``.
    enum PurposeField: UInt64, StateField {
        /// A ``PurposeKind`` name.
        case kind = 1
        /// Only for `reallocate`.
        case splitStep = 2
        /// Only for `reallocate`.
        case excludedWarehouses = 3
    }

    /// The stored names of the ``CompensationPlan/Purpose`` cases.
    enum PurposeKind: String {
        case abort
        case reallocate
        /// An operator's reset; its step is stored in the `splitStep` field.
        case reset
    }

    /// The fields of a ``SagaFailure``.
    enum FailureField: UInt64, StateField {
        case step = 1
        /// Absent unless the failure is one `for_each` branch's.
        case branch = 2
        /// A ``StepErrorField`` message.
        case error = 3
        case at = 4
    }

    /// The fields of a ``StepState``.
    enum StepField: UInt64, StateField {
        case status = 1
        /// An array of ``BranchField`` messages.
        case branches = 2
        case output = 3
        case round = 4
        case reallocations = 5
        case excludedWarehouses = 6
        case startedAt = 7
        case finishedAt = 8
        /// An array of ``RetiredField`` messages; absent when no earlier round sent anything.
        case retired = 9
    }

    /// The fields of a ``RetiredBranch``.
    enum RetiredField: UInt64, StateField {
        case index = 1
        /// A ``BranchField`` message.
        case state = 2
    }

    /// The fields of a ``BranchState``. `round` and `unansweredAttempts` came after the others, hence their numbers.
    enum BranchField: UInt64, StateField {
        case item = 1
        case status = 2
        case attempt = 3
        case compensationAttempt = 4
        /// A ``PendingCommandField`` message.
        case pending = 5
        /// A ``TimerField`` message.
        case timer = 6
        case output = 7
        /// A ``StepErrorField`` message.
        case lastError = 8
        case startedAt = 9
        case finishedAt = 10
        case round = 11
        /// Written only when above 0, so a branch without an unanswered attempt keeps the bytes of the binaries that
        /// came before the field (and they read a state that has it, skipping the field).
        case unansweredAttempts = 12
    }

    /// The fields of a ``PendingCommand``.
    enum PendingCommandField: UInt64, StateField {
        case messageId = 1
        case routingKey = 2
        case kind = 3
        case attempt = 4
        case sentAt = 5
    }

    /// The fields of a ``SagaTimer``.
    enum TimerField: UInt64, StateField {
        case id = 1
        case kind = 2
        case dueAt = 3
    }

    /// The fields of a ``StepError``.
    enum StepErrorField: UInt64, StateField {
        case code = 1
        case message = 2
        case retryable = 3
    }
}

/// A damaged or unsupported state blob. The store reports it as ``SagaStoreError/Code/corruptState``.
struct StateCodecError: Error, CustomStringConvertible {
    /// ``SagaStoreError/Code/damagedState`` or ``SagaStoreError/Code/unsupportedStateFormat``.
    var code: SagaStoreError.Code
    /// What is wrong with the bytes, never their content.
    var message: String

    init(_ message: String, code: SagaStoreError.Code = .damagedState) {
        self.code = code
        self.message = message
    }

    /// `code: message`.
    var description: String { "\(code): \(message)" }
}

// MARK: - Writing

/// Appends the state format to a raw buffer it owns (about twice as fast as appending to an `Array`, which checks
/// uniqueness on every byte). Non-copyable, so the buffer has exactly one owner and is freed exactly once.
struct StateWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 4096) {
        self.capacity = max(16, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The bytes written so far.
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(extra) }
    }

    private mutating func grow(_ extra: Int) {
        let newCapacity = max(capacity * 2, count + extra)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        if count == capacity { grow(1) }
        base[count] = byte
        count += 1
    }

    mutating func append(contentsOf buffer: UnsafeBufferPointer<UInt8>) {
        guard let source = buffer.baseAddress, !buffer.isEmpty else { return }
        reserve(buffer.count)
        (base + count).update(from: source, count: buffer.count)
        count += buffer.count
    }

    mutating func append(contentsOf bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        reserve(10)
        var value = value
        while value >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: value) | 0x80
            count += 1
            value >>= 7
        }
        base[count] = UInt8(value)
        count += 1
    }

    mutating func field<F: StateField>(_ field: F) { varint(field.rawValue) }

    mutating func int<F: StateField>(_ field: F, _ value: Int64) {
        self.field(field)
        append(StateCodec.Tag.int.rawValue)
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func int<F: StateField>(_ field: F, _ value: Int) { int(field, Int64(value)) }

    mutating func bool<F: StateField>(_ field: F, _ value: Bool) {
        self.field(field)
        append(value ? StateCodec.Tag.trueValue.rawValue : StateCodec.Tag.falseValue.rawValue)
    }

    mutating func rawString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            append(contentsOf: utf8)
        }
    }

    mutating func string(_ value: String) {
        append(StateCodec.Tag.string.rawValue)
        rawString(value)
    }

    mutating func string<F: StateField>(_ field: F, _ value: String) {
        self.field(field)
        string(value)
    }

    mutating func timestamp<F: StateField>(_ field: F, _ value: Timestamp?) {
        if let value { int(field, value.milliseconds) }
    }

    mutating func beginMessage<F: StateField>(_ field: F) {
        self.field(field)
        append(StateCodec.Tag.message.rawValue)
    }

    mutating func endMessage() { append(0) }

    mutating func strings<F: StateField>(_ field: F, _ values: [String]) {
        self.field(field)
        append(StateCodec.Tag.array.rawValue)
        for value in values { string(value) }
        append(StateCodec.Tag.end.rawValue)
    }

    mutating func json<F: StateField>(_ field: F, _ value: JSONValue?) {
        guard let value else { return }
        self.field(field)
        json(value)
    }

    mutating func json(_ value: JSONValue) {
        switch value {
        case .null: append(StateCodec.Tag.jsonNull.rawValue)
        case .bool(let flag): append(flag ? StateCodec.Tag.trueValue.rawValue : StateCodec.Tag.falseValue.rawValue)
        case .number(let number):
            if number.rounded() == number, abs(number) < 9.0e15, !(number == 0 && number.sign == .minus) {
                append(StateCodec.Tag.jsonInteger.rawValue)
                let integer = Int64(number)
                varint(UInt64(bitPattern: (integer << 1) ^ (integer >> 63)))
            } else {
                append(StateCodec.Tag.jsonNumber.rawValue)
                var bits = number.bitPattern.littleEndian
                withUnsafeBytes(of: &bits) { append(contentsOf: $0.bindMemory(to: UInt8.self)) }
            }
        case .string(let text): string(text)
        case .array(let elements):
            append(StateCodec.Tag.jsonArray.rawValue)
            varint(UInt64(elements.count))
            for element in elements { json(element) }
        case .object(let members):
            append(StateCodec.Tag.jsonObject.rawValue)
            varint(UInt64(members.count))
            for (key, member) in members {
                rawString(key)
                json(member)
            }
        }
    }

    // The records. Their field numbers are the `StateCodec.…Field` enums: never renumber or reuse one.

    mutating func instance(_ value: SagaInstance) {
        typealias Field = StateCodec.InstanceField
        append(StateCodec.Tag.message.rawValue)
        string(Field.workflow, value.key.workflow)
        string(Field.id, value.key.id)
        int(Field.version, value.version)
        string(Field.definitionHash, value.definitionHash)
        string(Field.status, value.status.rawValue)
        json(Field.input, value.input)
        field(Field.steps)
        append(StateCodec.Tag.array.rawValue)
        for step in value.steps { stepState(step) }
        append(StateCodec.Tag.end.rawValue)
        int(Field.cursor, value.cursor)
        field(Field.completions)
        branchRefs(value.completions)
        if let compensation = value.compensation {
            field(Field.compensation)
            compensationPlan(compensation)
        }
        bool(Field.pivotPassed, value.pivotPassed)
        if let failure = value.failure {
            field(Field.failure)
            sagaFailure(failure)
        }
        timestamp(Field.startedAt, value.startedAt)
        timestamp(Field.updatedAt, value.updatedAt)
        int(Field.sequence, value.sequence)
        if let trace = value.trace {
            field(Field.trace)
            append(StateCodec.Tag.message.rawValue)
            string(StateCodec.TraceField.traceParent, trace.traceParent)
            if let state = trace.traceState { string(StateCodec.TraceField.traceState, state) }
            endMessage()
        }
        endMessage()
    }

    mutating func compensationPlan(_ value: CompensationPlan) {
        typealias Field = StateCodec.CompensationField
        typealias PurposeField = StateCodec.PurposeField
        append(StateCodec.Tag.message.rawValue)
        beginMessage(Field.purpose)
        switch value.purpose {
        case .abort:
            string(PurposeField.kind, StateCodec.PurposeKind.abort.rawValue)
        case .reallocate(let splitStep, let excludedWarehouses):
            string(PurposeField.kind, StateCodec.PurposeKind.reallocate.rawValue)
            int(PurposeField.splitStep, splitStep)
            strings(PurposeField.excludedWarehouses, excludedWarehouses)
        case .reset(let step):
            string(PurposeField.kind, StateCodec.PurposeKind.reset.rawValue)
            int(PurposeField.splitStep, step)
        }
        endMessage()
        field(Field.queue)
        branchRefs(value.queue)
        endMessage()
    }

    mutating func sagaFailure(_ value: SagaFailure) {
        typealias Field = StateCodec.FailureField
        append(StateCodec.Tag.message.rawValue)
        string(Field.step, value.step)
        if let branch = value.branch { int(Field.branch, branch) }
        field(Field.error)
        stepError(value.error)
        timestamp(Field.at, value.at)
        endMessage()
    }

    mutating func branchRefs(_ refs: [BranchRef]) {
        typealias Field = StateCodec.BranchRefField
        append(StateCodec.Tag.array.rawValue)
        for ref in refs {
            append(StateCodec.Tag.message.rawValue)
            int(Field.step, ref.step)
            int(Field.branch, ref.branch)
            endMessage()
        }
        append(StateCodec.Tag.end.rawValue)
    }

    mutating func stepState(_ value: StepState) {
        typealias Field = StateCodec.StepField
        append(StateCodec.Tag.message.rawValue)
        string(Field.status, value.status.rawValue)
        field(Field.branches)
        append(StateCodec.Tag.array.rawValue)
        for branch in value.branches { branchState(branch) }
        append(StateCodec.Tag.end.rawValue)
        json(Field.output, value.output)
        int(Field.round, value.round)
        int(Field.reallocations, value.reallocations)
        strings(Field.excludedWarehouses, value.excludedWarehouses)
        timestamp(Field.startedAt, value.startedAt)
        timestamp(Field.finishedAt, value.finishedAt)
        if !value.retired.isEmpty {
            field(Field.retired)
            append(StateCodec.Tag.array.rawValue)
            for retired in value.retired {
                append(StateCodec.Tag.message.rawValue)
                int(StateCodec.RetiredField.index, retired.index)
                field(StateCodec.RetiredField.state)
                branchState(retired.state)
                endMessage()
            }
            append(StateCodec.Tag.end.rawValue)
        }
        endMessage()
    }

    mutating func branchState(_ value: BranchState) {
        typealias Field = StateCodec.BranchField
        append(StateCodec.Tag.message.rawValue)
        json(Field.item, value.item)
        string(Field.status, value.status.rawValue)
        int(Field.attempt, value.attempt)
        int(Field.compensationAttempt, value.compensationAttempt)
        int(Field.round, value.round)
        if let pending = value.pending {
            field(Field.pending)
            pendingCommand(pending)
        }
        if let timer = value.timer {
            field(Field.timer)
            sagaTimer(timer)
        }
        json(Field.output, value.output)
        if let error = value.lastError {
            field(Field.lastError)
            stepError(error)
        }
        timestamp(Field.startedAt, value.startedAt)
        timestamp(Field.finishedAt, value.finishedAt)
        if value.unansweredAttempts > 0 { int(Field.unansweredAttempts, value.unansweredAttempts) }
        endMessage()
    }

    mutating func pendingCommand(_ value: PendingCommand) {
        typealias Field = StateCodec.PendingCommandField
        append(StateCodec.Tag.message.rawValue)
        string(Field.messageId, value.messageId)
        string(Field.routingKey, value.routingKey)
        string(Field.kind, value.kind.rawValue)
        int(Field.attempt, value.attempt)
        timestamp(Field.sentAt, value.sentAt)
        endMessage()
    }

    mutating func sagaTimer(_ value: SagaTimer) {
        typealias Field = StateCodec.TimerField
        append(StateCodec.Tag.message.rawValue)
        string(Field.id, value.id)
        string(Field.kind, value.kind.rawValue)
        timestamp(Field.dueAt, value.dueAt)
        endMessage()
    }

    mutating func stepError(_ value: StepError) {
        typealias Field = StateCodec.StepErrorField
        append(StateCodec.Tag.message.rawValue)
        string(Field.code, value.code)
        string(Field.message, value.message)
        bool(Field.retryable, value.retryable)
        endMessage()
    }
}

// MARK: - Reading

/// Reads the state format. Every read is bounds-checked; damaged input throws, it never traps.
struct StateReader {
    let buffer: UnsafeBufferPointer<UInt8>
    var offset: Int

    private func damaged(_ what: String) -> StateCodecError {
        StateCodecError("damaged saga state at byte \(offset): \(what)")
    }

    mutating func byte() throws(StateCodecError) -> UInt8 {
        guard offset < buffer.count else { throw damaged("unexpected end") }
        defer { offset += 1 }
        return buffer[offset]
    }

    mutating func varint() throws(StateCodecError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try byte()
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            guard shift < 64 else { throw damaged("varint too long") }
        }
    }

    mutating func tag() throws(StateCodecError) -> StateCodec.Tag {
        let raw = try byte()
        guard let tag = StateCodec.Tag(rawValue: raw) else { throw damaged("unknown tag \(raw)") }
        return tag
    }

    mutating func expect(_ expected: StateCodec.Tag) throws(StateCodecError) {
        let found = try tag()
        guard found == expected else { throw damaged("expected \(expected), found \(found)") }
    }

    mutating func int64() throws(StateCodecError) -> Int64 {
        try expect(.int)
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    mutating func int() throws(StateCodecError) -> Int {
        let value = try int64()
        guard let result = Int(exactly: value) else { throw damaged("\(value) does not fit Int") }
        return result
    }

    mutating func timestamp() throws(StateCodecError) -> Timestamp {
        Timestamp(milliseconds: try int64())
    }

    mutating func bool() throws(StateCodecError) -> Bool {
        switch try tag() {
        case .trueValue: return true
        case .falseValue: return false
        case let other: throw damaged("expected a boolean, found \(other)")
        }
    }

    mutating func rawString() throws(StateCodecError) -> String {
        let length = try varint()
        guard length <= UInt64(buffer.count - offset) else { throw damaged("string runs past the end") }
        let end = offset + Int(length)
        let text = String(decoding: UnsafeBufferPointer(rebasing: buffer[offset..<end]), as: UTF8.self)
        offset = end
        return text
    }

    mutating func string() throws(StateCodecError) -> String {
        try expect(.string)
        return try rawString()
    }

    mutating func enumeration<T: RawRepresentable>(_ type: T.Type) throws(StateCodecError) -> T
    where T.RawValue == String {
        let raw = try string()
        guard let value = T(rawValue: raw) else { throw damaged("unknown \(T.self) '\(raw)'") }
        return value
    }

    mutating func strings() throws(StateCodecError) -> [String] {
        try expect(.array)
        var values: [String] = []
        while try peekEnd() == false { values.append(try string()) }
        return values
    }

    /// Consumes an `.end` byte if one is next.
    mutating func peekEnd() throws(StateCodecError) -> Bool {
        guard offset < buffer.count else { throw damaged("unexpected end") }
        if buffer[offset] == StateCodec.Tag.end.rawValue {
            offset += 1
            return true
        }
        return false
    }

    /// Reads the next field number of a message; `nil` at its end.
    mutating func nextField() throws(StateCodecError) -> UInt64? {
        let number = try varint()
        return number == 0 ? nil : number
    }

    /// Skips one tagged value (a field this binary does not know).
    mutating func skipValue() throws(StateCodecError) {
        switch try tag() {
        case .end: throw damaged("unexpected end tag")
        case .falseValue, .trueValue, .jsonNull: return
        case .int, .jsonInteger: _ = try varint()
        case .double, .jsonNumber:
            guard offset + 8 <= buffer.count else { throw damaged("number runs past the end") }
            offset += 8
        case .string: _ = try rawString()
        case .array:
            while try peekEnd() == false { try skipValue() }
        case .message:
            while try nextField() != nil { try skipValue() }
        case .jsonArray:
            for _ in 0..<(try count()) { try skipValue() }
        case .jsonObject:
            for _ in 0..<(try count()) {
                _ = try rawString()
                try skipValue()
            }
        }
    }

    /// An element count; each element takes at least one byte, which bounds it.
    private mutating func count() throws(StateCodecError) -> Int {
        let count = try varint()
        guard count <= UInt64(buffer.count - offset) else { throw damaged("count \(count) runs past the end") }
        return Int(count)
    }

    mutating func json() throws(StateCodecError) -> JSONValue {
        switch try tag() {
        case .jsonNull: return .null
        case .trueValue: return .bool(true)
        case .falseValue: return .bool(false)
        case .jsonInteger:
            let raw = try varint()
            return .number(Double(Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))))
        case .jsonNumber:
            guard offset + 8 <= buffer.count else { throw damaged("number runs past the end") }
            var bits: UInt64 = 0
            for index in 0..<8 { bits |= UInt64(buffer[offset + index]) << (8 * UInt64(index)) }
            offset += 8
            return .number(Double(bitPattern: UInt64(littleEndian: bits)))
        case .string: return .string(try rawString())
        case .jsonArray:
            let count = try count()
            var elements: [JSONValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count { elements.append(try json()) }
            return .array(elements)
        case .jsonObject:
            let count = try count()
            var members: [String: JSONValue] = Dictionary(minimumCapacity: count)
            for _ in 0..<count {
                let key = try rawString()
                members[key] = try json()
            }
            return .object(members)
        case let other: throw damaged("expected a JSON value, found \(other)")
        }
    }

    // The records. A field number this binary does not know is skipped; a field not found keeps its blank value.

    /// The instance fields without which a blob is not a saga (every other field has a sensible blank).
    private static let requiredInstanceFields: UInt64 = [
        StateCodec.InstanceField.workflow, .id, .version, .definitionHash, .status,
    ].reduce(0) { $0 | 1 << $1.rawValue }

    mutating func instance() throws(StateCodecError) -> SagaInstance {
        typealias Field = StateCodec.InstanceField
        try expect(.message)
        let zero = Timestamp(milliseconds: 0)
        var instance = SagaInstance(
            key: SagaKey(workflow: "", id: ""), version: 0, definitionHash: "", status: .running, input: .null,
            steps: [], cursor: 0, completions: [], compensation: nil, pivotPassed: false, failure: nil,
            startedAt: zero, updatedAt: zero, sequence: 0)
        var seen: UInt64 = 0
        while let number = try nextField() {
            if number < 64 { seen |= 1 << number }
            switch Field(rawValue: number) {
            case .workflow: instance.key.workflow = try string()
            case .id: instance.key.id = try string()
            case .version: instance.version = try int()
            case .definitionHash: instance.definitionHash = try string()
            case .status: instance.status = try enumeration(SagaStatus.self)
            case .input: instance.input = try json()
            case .steps:
                try expect(.array)
                while try peekEnd() == false { instance.steps.append(try stepState()) }
            case .cursor: instance.cursor = try int()
            case .completions: instance.completions = try branchRefs()
            case .compensation: instance.compensation = try compensationPlan()
            case .pivotPassed: instance.pivotPassed = try bool()
            case .failure: instance.failure = try sagaFailure()
            case .startedAt: instance.startedAt = try timestamp()
            case .updatedAt: instance.updatedAt = try timestamp()
            case .sequence: instance.sequence = try int()
            case .trace: instance.trace = try sagaTrace()
            case nil: try skipValue()
            }
        }
        guard seen & Self.requiredInstanceFields == Self.requiredInstanceFields else {
            throw damaged("the saga key, version, definition or status is missing")
        }
        return instance
    }

    mutating func sagaTrace() throws(StateCodecError) -> SagaTrace {
        typealias Field = StateCodec.TraceField
        try expect(.message)
        var trace = SagaTrace(traceParent: "")
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .traceParent: trace.traceParent = try string()
            case .traceState: trace.traceState = try string()
            case nil: try skipValue()
            }
        }
        return trace
    }

    mutating func branchRefs() throws(StateCodecError) -> [BranchRef] {
        typealias Field = StateCodec.BranchRefField
        try expect(.array)
        var refs: [BranchRef] = []
        while try peekEnd() == false {
            try expect(.message)
            var ref = BranchRef(step: 0, branch: 0)
            while let number = try nextField() {
                switch Field(rawValue: number) {
                case .step: ref.step = try int()
                case .branch: ref.branch = try int()
                case nil: try skipValue()
                }
            }
            refs.append(ref)
        }
        return refs
    }

    mutating func compensationPlan() throws(StateCodecError) -> CompensationPlan {
        typealias Field = StateCodec.CompensationField
        try expect(.message)
        var plan = CompensationPlan(purpose: .abort, queue: [])
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .purpose: plan.purpose = try purpose()
            case .queue: plan.queue = try branchRefs()
            case nil: try skipValue()
            }
        }
        return plan
    }

    mutating func purpose() throws(StateCodecError) -> CompensationPlan.Purpose {
        typealias Field = StateCodec.PurposeField
        try expect(.message)
        var kind = ""
        var splitStep = 0
        var excluded: [String] = []
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .kind: kind = try string()
            case .splitStep: splitStep = try int()
            case .excludedWarehouses: excluded = try strings()
            case nil: try skipValue()
            }
        }
        switch StateCodec.PurposeKind(rawValue: kind) {
        case .abort: return .abort
        case .reallocate: return .reallocate(splitStep: splitStep, excludedWarehouses: excluded)
        case .reset: return .reset(step: splitStep)
        case nil: throw damaged("unknown compensation purpose '\(kind)'")
        }
    }

    mutating func sagaFailure() throws(StateCodecError) -> SagaFailure {
        typealias Field = StateCodec.FailureField
        try expect(.message)
        var failure = SagaFailure(
            step: "", branch: nil, error: StepError(code: "", message: "", retryable: false),
            at: Timestamp(milliseconds: 0))
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .step: failure.step = try string()
            case .branch: failure.branch = try int()
            case .error: failure.error = try stepError()
            case .at: failure.at = try timestamp()
            case nil: try skipValue()
            }
        }
        return failure
    }

    mutating func stepError() throws(StateCodecError) -> StepError {
        typealias Field = StateCodec.StepErrorField
        try expect(.message)
        var error = StepError(code: "", message: "", retryable: false)
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .code: error.code = try string()
            case .message: error.message = try string()
            case .retryable: error.retryable = try bool()
            case nil: try skipValue()
            }
        }
        return error
    }

    mutating func stepState() throws(StateCodecError) -> StepState {
        typealias Field = StateCodec.StepField
        try expect(.message)
        var step = StepState()
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .status: step.status = try enumeration(StepState.Status.self)
            case .branches:
                try expect(.array)
                while try peekEnd() == false { step.branches.append(try branchState()) }
            case .output: step.output = try json()
            case .round: step.round = try int()
            case .reallocations: step.reallocations = try int()
            case .excludedWarehouses: step.excludedWarehouses = try strings()
            case .startedAt: step.startedAt = try timestamp()
            case .finishedAt: step.finishedAt = try timestamp()
            case .retired:
                try expect(.array)
                while try peekEnd() == false { step.retired.append(try retiredBranch()) }
            case nil: try skipValue()
            }
        }
        return step
    }

    mutating func retiredBranch() throws(StateCodecError) -> RetiredBranch {
        typealias Field = StateCodec.RetiredField
        try expect(.message)
        var retired = RetiredBranch(index: 0, state: BranchState(item: nil, round: 0))
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .index: retired.index = try int()
            case .state: retired.state = try branchState()
            case nil: try skipValue()
            }
        }
        return retired
    }

    mutating func branchState() throws(StateCodecError) -> BranchState {
        typealias Field = StateCodec.BranchField
        try expect(.message)
        var branch = BranchState(item: nil, round: 0)
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .item: branch.item = try json()
            case .status: branch.status = try enumeration(BranchState.Status.self)
            case .attempt: branch.attempt = try int()
            case .compensationAttempt: branch.compensationAttempt = try int()
            case .pending: branch.pending = try pendingCommand()
            case .timer: branch.timer = try sagaTimer()
            case .output: branch.output = try json()
            case .lastError: branch.lastError = try stepError()
            case .startedAt: branch.startedAt = try timestamp()
            case .finishedAt: branch.finishedAt = try timestamp()
            case .round: branch.round = try int()
            case .unansweredAttempts: branch.unansweredAttempts = try int()
            case nil: try skipValue()
            }
        }
        return branch
    }

    mutating func pendingCommand() throws(StateCodecError) -> PendingCommand {
        typealias Field = StateCodec.PendingCommandField
        try expect(.message)
        var pending = PendingCommand(
            messageId: "", routingKey: "", kind: .do, attempt: 0, sentAt: Timestamp(milliseconds: 0))
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .messageId: pending.messageId = try string()
            case .routingKey: pending.routingKey = try string()
            case .kind: pending.kind = try enumeration(CommandKind.self)
            case .attempt: pending.attempt = try int()
            case .sentAt: pending.sentAt = try timestamp()
            case nil: try skipValue()
            }
        }
        return pending
    }

    mutating func sagaTimer() throws(StateCodecError) -> SagaTimer {
        typealias Field = StateCodec.TimerField
        try expect(.message)
        var timer = SagaTimer(id: "", kind: .retry, dueAt: Timestamp(milliseconds: 0))
        while let number = try nextField() {
            switch Field(rawValue: number) {
            case .id: timer.id = try string()
            case .kind: timer.kind = try enumeration(SagaTimer.Kind.self)
            case .dueAt: timer.dueAt = try timestamp()
            case nil: try skipValue()
            }
        }
        return timer
    }
}
