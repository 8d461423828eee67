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
/// JSON value)`.
///
/// Evolution: a reader skips field numbers it does not know and leaves fields it does not find at their defaults,
/// so adding a field is backward and forward compatible. Never reuse a field number. `StateCodecCoverageTests`
/// fails when the engine grows a stored property this file does not write.
enum StateCodec {
    static let magic: [UInt8] = [0x57, 0x53]
    static let formatVersion: UInt8 = 1

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

    /// Encodes `instance` in the state format, as `Data` for binding.
    static func encodeData(_ instance: SagaInstance) -> Data {
        write(instance).data
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

/// A damaged or unsupported state blob. The store reports it as ``SagaStoreError/Code/corruptState``.
struct StateCodecError: Error, CustomStringConvertible {
    /// ``SagaStoreError/Code/damagedState``, ``SagaStoreError/Code/unsupportedStateFormat`` or
    /// ``SagaStoreError/Code/engineTypeChanged``.
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

    /// The bytes written so far, as `Data` (one copy).
    var data: Data { Data(bytes: base, count: count) }

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

    mutating func field(_ number: UInt64) { varint(number) }

    mutating func int(_ number: UInt64, _ value: Int64) {
        field(number)
        append(StateCodec.Tag.int.rawValue)
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func int(_ number: UInt64, _ value: Int) { int(number, Int64(value)) }

    mutating func bool(_ number: UInt64, _ value: Bool) {
        field(number)
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

    mutating func string(_ number: UInt64, _ value: String) {
        field(number)
        string(value)
    }

    mutating func timestamp(_ number: UInt64, _ value: Timestamp?) {
        if let value { int(number, value.milliseconds) }
    }

    mutating func beginMessage(_ number: UInt64) {
        field(number)
        append(StateCodec.Tag.message.rawValue)
    }

    mutating func endMessage() { append(0) }

    mutating func strings(_ number: UInt64, _ values: [String]) {
        field(number)
        append(StateCodec.Tag.array.rawValue)
        for value in values { string(value) }
        append(StateCodec.Tag.end.rawValue)
    }

    mutating func json(_ number: UInt64, _ value: JSONValue?) {
        guard let value else { return }
        field(number)
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

    // Field numbers below are part of the stored format: never renumber or reuse one.

    mutating func instance(_ value: SagaInstance) {
        append(StateCodec.Tag.message.rawValue)
        string(1, value.key.workflow)
        string(2, value.key.id)
        int(3, value.version)
        string(4, value.definitionHash)
        string(5, value.status.rawValue)
        json(6, value.input)
        field(7)
        append(StateCodec.Tag.array.rawValue)
        for step in value.steps { stepState(step) }
        append(StateCodec.Tag.end.rawValue)
        int(8, value.cursor)
        field(9)
        branchRefs(value.completions)
        if let compensation = value.compensation {
            beginMessage(10)
            beginMessage(1)
            switch compensation.purpose {
            case .abort:
                string(1, "abort")
            case .reallocate(let splitStep, let excludedWarehouses):
                string(1, "reallocate")
                int(2, splitStep)
                strings(3, excludedWarehouses)
            }
            endMessage()
            field(2)
            branchRefs(compensation.queue)
            endMessage()
        }
        bool(11, value.pivotPassed)
        if let failure = value.failure {
            beginMessage(12)
            string(1, failure.step)
            if let branch = failure.branch { int(2, branch) }
            field(3)
            stepError(failure.error)
            timestamp(4, failure.at)
            endMessage()
        }
        timestamp(13, value.startedAt)
        timestamp(14, value.updatedAt)
        int(15, value.sequence)
        endMessage()
    }

    mutating func branchRefs(_ refs: [BranchRef]) {
        append(StateCodec.Tag.array.rawValue)
        for ref in refs {
            append(StateCodec.Tag.message.rawValue)
            int(1, ref.step)
            int(2, ref.branch)
            endMessage()
        }
        append(StateCodec.Tag.end.rawValue)
    }

    mutating func stepState(_ value: StepState) {
        append(StateCodec.Tag.message.rawValue)
        string(1, value.status.rawValue)
        field(2)
        append(StateCodec.Tag.array.rawValue)
        for branch in value.branches { branchState(branch) }
        append(StateCodec.Tag.end.rawValue)
        json(3, value.output)
        int(4, value.round)
        int(5, value.reallocations)
        strings(6, value.excludedWarehouses)
        timestamp(7, value.startedAt)
        timestamp(8, value.finishedAt)
        endMessage()
    }

    mutating func branchState(_ value: BranchState) {
        append(StateCodec.Tag.message.rawValue)
        json(1, value.item)
        string(2, value.status.rawValue)
        int(3, value.attempt)
        int(4, value.compensationAttempt)
        int(11, value.round)
        if let pending = value.pending {
            beginMessage(5)
            string(1, pending.messageId)
            string(2, pending.routingKey)
            string(3, pending.kind.rawValue)
            int(4, pending.attempt)
            timestamp(5, pending.sentAt)
            endMessage()
        }
        if let timer = value.timer {
            beginMessage(6)
            string(1, timer.id)
            string(2, timer.kind.rawValue)
            timestamp(3, timer.dueAt)
            endMessage()
        }
        json(7, value.output)
        if let error = value.lastError {
            field(8)
            stepError(error)
        }
        timestamp(9, value.startedAt)
        timestamp(10, value.finishedAt)
        endMessage()
    }

    mutating func stepError(_ value: StepError) {
        append(StateCodec.Tag.message.rawValue)
        string(1, value.code)
        string(2, value.message)
        bool(3, value.retryable)
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

    mutating func instance() throws(StateCodecError) -> SagaInstance {
        try expect(.message)
        var instance = try StateTemplates.shared().instance
        var seen: UInt32 = 0
        while let number = try nextField() {
            if number < 32 { seen |= 1 << UInt32(number) }
            switch number {
            case 1: instance.key.workflow = try string()
            case 2: instance.key.id = try string()
            case 3: instance.version = try int()
            case 4: instance.definitionHash = try string()
            case 5: instance.status = try enumeration(SagaStatus.self)
            case 6: instance.input = try json()
            case 7:
                try expect(.array)
                while try peekEnd() == false { instance.steps.append(try stepState()) }
            case 8: instance.cursor = try int()
            case 9: instance.completions = try branchRefs()
            case 10: instance.compensation = try compensationPlan()
            case 11: instance.pivotPassed = try bool()
            case 12: instance.failure = try sagaFailure()
            case 13: instance.startedAt = try timestamp()
            case 14: instance.updatedAt = try timestamp()
            case 15: instance.sequence = try int()
            default: try skipValue()
            }
        }
        let required: UInt32 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5)
        guard seen & required == required else {
            throw damaged("the saga key, version, definition or status is missing")
        }
        return instance
    }

    mutating func branchRefs() throws(StateCodecError) -> [BranchRef] {
        try expect(.array)
        var refs: [BranchRef] = []
        while try peekEnd() == false {
            try expect(.message)
            var ref = BranchRef(step: 0, branch: 0)
            while let number = try nextField() {
                switch number {
                case 1: ref.step = try int()
                case 2: ref.branch = try int()
                default: try skipValue()
                }
            }
            refs.append(ref)
        }
        return refs
    }

    mutating func compensationPlan() throws(StateCodecError) -> CompensationPlan {
        try expect(.message)
        var plan = try StateTemplates.shared().compensation
        while let number = try nextField() {
            switch number {
            case 1:
                try expect(.message)
                var kind = ""
                var splitStep = 0
                var excluded: [String] = []
                while let purposeField = try nextField() {
                    switch purposeField {
                    case 1: kind = try string()
                    case 2: splitStep = try int()
                    case 3: excluded = try strings()
                    default: try skipValue()
                    }
                }
                switch kind {
                case "abort": plan.purpose = .abort
                case "reallocate": plan.purpose = .reallocate(splitStep: splitStep, excludedWarehouses: excluded)
                default: throw damaged("unknown compensation purpose '\(kind)'")
                }
            case 2: plan.queue = try branchRefs()
            default: try skipValue()
            }
        }
        return plan
    }

    mutating func sagaFailure() throws(StateCodecError) -> SagaFailure {
        try expect(.message)
        var failure = try StateTemplates.shared().failure
        while let number = try nextField() {
            switch number {
            case 1: failure.step = try string()
            case 2: failure.branch = try int()
            case 3: failure.error = try stepError()
            case 4: failure.at = try timestamp()
            default: try skipValue()
            }
        }
        return failure
    }

    mutating func stepError() throws(StateCodecError) -> StepError {
        try expect(.message)
        var error = StepError(code: "", message: "", retryable: false)
        while let number = try nextField() {
            switch number {
            case 1: error.code = try string()
            case 2: error.message = try string()
            case 3: error.retryable = try bool()
            default: try skipValue()
            }
        }
        return error
    }

    mutating func stepState() throws(StateCodecError) -> StepState {
        try expect(.message)
        var step = StepState()
        while let number = try nextField() {
            switch number {
            case 1: step.status = try enumeration(StepState.Status.self)
            case 2:
                try expect(.array)
                while try peekEnd() == false { step.branches.append(try branchState()) }
            case 3: step.output = try json()
            case 4: step.round = try int()
            case 5: step.reallocations = try int()
            case 6: step.excludedWarehouses = try strings()
            case 7: step.startedAt = try timestamp()
            case 8: step.finishedAt = try timestamp()
            default: try skipValue()
            }
        }
        return step
    }

    mutating func branchState() throws(StateCodecError) -> BranchState {
        try expect(.message)
        var branch = BranchState(item: nil, round: 0)
        while let number = try nextField() {
            switch number {
            case 1: branch.item = try json()
            case 2: branch.status = try enumeration(BranchState.Status.self)
            case 3: branch.attempt = try int()
            case 4: branch.compensationAttempt = try int()
            case 5: branch.pending = try pendingCommand()
            case 6: branch.timer = try sagaTimer()
            case 7: branch.output = try json()
            case 8: branch.lastError = try stepError()
            case 9: branch.startedAt = try timestamp()
            case 10: branch.finishedAt = try timestamp()
            case 11: branch.round = try int()
            default: try skipValue()
            }
        }
        return branch
    }

    mutating func pendingCommand() throws(StateCodecError) -> PendingCommand {
        try expect(.message)
        var pending = try StateTemplates.shared().pending
        while let number = try nextField() {
            switch number {
            case 1: pending.messageId = try string()
            case 2: pending.routingKey = try string()
            case 3: pending.kind = try enumeration(CommandKind.self)
            case 4: pending.attempt = try int()
            case 5: pending.sentAt = try timestamp()
            default: try skipValue()
            }
        }
        return pending
    }

    mutating func sagaTimer() throws(StateCodecError) -> SagaTimer {
        try expect(.message)
        var timer = try StateTemplates.shared().timer
        while let number = try nextField() {
            switch number {
            case 1: timer.id = try string()
            case 2: timer.kind = try enumeration(SagaTimer.Kind.self)
            case 3: timer.dueAt = try timestamp()
            default: try skipValue()
            }
        }
        return timer
    }
}

/// Blank values of the engine types that have no public initializer, made once through their `Decodable`
/// conformance; the reader copies one and sets every field it finds.
struct StateTemplates: Sendable {
    var instance: SagaInstance
    var compensation: CompensationPlan
    var failure: SagaFailure
    var pending: PendingCommand
    var timer: SagaTimer

    private static let made: Result<StateTemplates, StateCodecError> = {
        let zero = #"{"milliseconds":0}"#
        let error = #"{"code":"","message":"","retryable":false}"#
        func make<T: Decodable>(_ type: T.Type, _ json: String) throws(StateCodecError) -> T {
            do {
                return try JSONDecoder().decode(T.self, from: Data(json.utf8))
            } catch {
                throw StateCodecError(
                    "cannot build a blank \(T.self) (the engine type changed; update SagaStore's StateCodec): \(error)",
                    code: .engineTypeChanged)
            }
        }
        do throws(StateCodecError) {
            return .success(
                StateTemplates(
                    instance: try make(
                        SagaInstance.self,
                        #"{"key":{"workflow":"","id":""},"version":0,"definitionHash":"","status":"running","#
                            + #""input":null,"steps":[],"cursor":0,"completions":[],"pivotPassed":false,"#
                            + #""startedAt":\#(zero),"updatedAt":\#(zero),"sequence":0}"#),
                    compensation: try make(CompensationPlan.self, #"{"purpose":{"abort":{}},"queue":[]}"#),
                    failure: try make(SagaFailure.self, #"{"step":"","error":\#(error),"at":\#(zero)}"#),
                    pending: try make(
                        PendingCommand.self,
                        #"{"messageId":"","routingKey":"","kind":"do","attempt":0,"sentAt":\#(zero)}"#),
                    timer: try make(SagaTimer.self, #"{"id":"","kind":"retry","dueAt":\#(zero)}"#)))
        } catch {
            return .failure(error)
        }
    }()

    static func shared() throws(StateCodecError) -> StateTemplates {
        try made.get()
    }
}
