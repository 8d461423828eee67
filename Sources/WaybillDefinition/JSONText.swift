import CodedError

/// The JSON text form of ``JSONValue``: a UTF-8 parser and a compact serializer with sorted keys, so the same
/// value always has the same bytes (message bodies, stored state, journal entries).
///
/// Decoding is strict RFC 8259 and never uses Foundation:
/// - Any value may stand at the top level; only space, tab, line feed and carriage return count as whitespace,
///   and anything but whitespace after the value is ``JSONTextError/Code/trailingData``. A byte order mark is
///   rejected like any other unexpected byte.
/// - Strings must be valid UTF-8 with control characters escaped; `\uXXXX` escapes must pair surrogates.
/// - Numbers follow the grammar exactly (no leading zeros, `+`, `.5`, `1.`, `NaN` or `Infinity`). A number whose
///   magnitude is too large for a `Double` is ``JSONTextError/Code/invalidNumber``; one too small becomes zero.
/// - When an object repeats a key, the **last** member wins. Keys are Swift strings, so two keys that differ
///   only in Unicode normalization (`"é"` and `"e\u0301"`) are the same key as well.
/// - Arrays and objects nest at most ``maximumDepth`` deep. The parser itself does not recurse, so its stack use
///   is constant; the limit keeps hostile input from building a value too deep for the code that walks values
///   recursively afterwards (equality, hashing, encoding, deinitialization).
///
/// Encoding writes no whitespace, sorts object keys by Swift's `String` ordering, and prints numbers so that
/// ``decode(_:)-(some Collection<UInt8>)`` gives back the same `Double`; see ``encodeBytes(_:)``.
public enum JSONText {
    /// The deepest nesting of arrays and objects that decoding accepts (512: `[[1]]` is 2 deep); one level more
    /// is ``JSONTextError/Code/tooDeep``. Encoding has no limit, so a deeper value encodes but does not decode.
    public static let maximumDepth = 512

    /// Parses one JSON document from UTF-8 `bytes` (an `[UInt8]`, an `ArraySlice`, a `String.UTF8View`, ...).
    ///
    /// Contiguous collections are read in place; any other collection is copied once. The error's offset
    /// counts bytes from the collection's first element, not from its `startIndex`.
    public static func decode(_ bytes: some Collection<UInt8>) throws(JSONTextError) -> JSONValue {
        if let result = bytes.withContiguousStorageIfAvailable({ decode(buffer: $0) }) {
            return try result.get()
        }
        return try Array(bytes).withUnsafeBufferPointer { decode(buffer: $0) }.get()
    }

    /// Parses one JSON document from `text`; the error's offset counts UTF-8 bytes, not characters.
    public static func decode(_ text: String) throws(JSONTextError) -> JSONValue {
        var text = text
        return try text.withUTF8 { decode(buffer: $0) }.get()
    }

    /// Serializes `value` compactly, object keys sorted; see ``encodeBytes(_:)``.
    public static func encode(_ value: JSONValue) -> String {
        String(decoding: encodeBytes(value), as: UTF8.self)
    }

    /// A flat object of strings (AMQP headers, say) as ``encode(_:)`` writes it, without building the value.
    public static func encode(strings members: [String: String]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(2 + 48 * members.count)
        writeObject(members, into: &bytes) { text, bytes in writeString(text, into: &bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Serializes `value` compactly into UTF-8 bytes, object keys sorted.
    ///
    /// Integral numbers below 2^53 in magnitude print as plain integers (`-0.0` as `-0`); other finite numbers
    /// print in Swift's shortest form that reads back as the same `Double` (`0.1`, `1e+300`). NaN and the
    /// infinities have no JSON form and encode as `null`, so only they fail to round-trip. Control characters,
    /// `"` and `\` in strings are escaped; everything else, `/` and non-ASCII included, is written as is.
    public static func encodeBytes(_ value: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        write(value, into: &bytes)
        return bytes
    }

    private static func decode(buffer: UnsafeBufferPointer<UInt8>) -> Result<JSONValue, JSONTextError> {
        var parser = JSONParser(bytes: buffer)
        return Result { () throws(JSONTextError) in try parser.parseDocument() }
    }
}

/// Why a JSON document could not be decoded, and where.
///
/// The message names what the parser expected and shows at most the one byte it found, never more of the
/// document, so the error can be logged even when the document carries order data.
public struct JSONTextError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem; the raw values (`json.<snake_case>`) are stable and safe to store or match on.
    public typealias Code = ErrorCode<JSONTextErrorDomain>

    /// The kind of problem.
    public let code: Code
    /// The zero-based byte offset of the problem: the offending byte, or the document's length when it ended
    /// too early.
    public let offset: Int
    /// What went wrong, without the offset, e.g. `expected ',' or '}' after object member, found 'x'`.
    public let message: String

    /// `code: message at byte N`, e.g. `json.unexpected_character: expected ':' after object key, found '=' at byte
    /// 17`.
    public var description: String { "\(code): \(message) at byte \(offset)" }

    init(_ code: Code, at offset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }
}

/// The JSON decoder's error family: the domain of ``JSONTextError/Code``, whose codes are `json.<snake_case>`.
public enum JSONTextErrorDomain: ErrorDomain {}

/// The JSON decoder's codes: the raw values (`json.<snake_case>`) are stable.
extension ErrorCode where Domain == JSONTextErrorDomain {
    /// The document ended where more was required (an unclosed string, array or object, or nothing at all).
    public static let unexpectedEnd = Self(rawValue: "json.unexpected_end")
    /// A byte that cannot stand where it was found, such as a missing `,` or a raw control character in a
    /// string.
    public static let unexpectedCharacter = Self(rawValue: "json.unexpected_character")
    /// A number that breaks the grammar (leading zero, missing digits, `+`, `.5`) or exceeds `Double`.
    public static let invalidNumber = Self(rawValue: "json.invalid_number")
    /// A backslash escape that JSON does not define, or a `\u` escape without four hex digits; the offset is
    /// that of the wrong byte after the backslash.
    public static let invalidEscape = Self(rawValue: "json.invalid_escape")
    /// Bytes that are not valid UTF-8, or a `\u` escape that leaves a surrogate unpaired; the offset is that
    /// of the first byte of the bad UTF-8 sequence or of the backslash of the bad escape.
    public static let invalidUnicode = Self(rawValue: "json.invalid_unicode")
    /// Arrays and objects nested deeper than ``JSONText/maximumDepth``.
    public static let tooDeep = Self(rawValue: "json.too_deep")
    /// Something other than whitespace after the complete top-level value.
    public static let trailingData = Self(rawValue: "json.trailing_data")
}

// MARK: - Decoding

/// A parser over one contiguous UTF-8 buffer, alive only inside `JSONText.decode`.
///
/// Nesting is tracked on heap stacks rather than by recursion, so the call stack stays the same size however
/// deep the document goes; ``JSONText/maximumDepth`` bounds memory and protects the recursive code that later
/// walks the value (equality, hashing, encoding, deinitialization).
private struct JSONParser {
    /// An array or object that has been opened and not yet closed.
    enum Container {
        /// An array whose elements so far are `elementStack[base...]`.
        case array(base: Int)
        /// An object whose members so far are `memberStack[base...]`; the last one holds the key whose value is
        /// being read, with `null` in its place until the value is complete.
        case object(base: Int)
    }

    let bytes: UnsafeBufferPointer<UInt8>
    /// The next byte to read.
    var offset = 0
    /// The open arrays and objects, innermost last.
    var containers: [Container] = []
    /// The members of every open object, innermost last; each object takes its own off the top when it
    /// closes, so its dictionary is allocated once at its final size.
    var memberStack: [(String, JSONValue)] = []
    /// The elements of every open array, innermost last, for the same reason.
    var elementStack: [JSONValue] = []
    /// Reused to assemble strings that contain escapes.
    var scratch: [UInt8] = []

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(JSONTextError) -> JSONValue {
        skipWhitespace()
        while true {
            // Read one value, or open a container and read its first value.
            var value: JSONValue
            guard offset < bytes.count else { throw unexpected(expectedValue()) }
            switch bytes[offset] {
            case UInt8(ascii: "\""): value = .string(try parseString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): value = .number(try parseNumber())
            case UInt8(ascii: "{"):
                try enterContainer()
                guard offset >= bytes.count || bytes[offset] != UInt8(ascii: "}") else {
                    offset += 1
                    value = .object([:])
                    break
                }
                containers.append(.object(base: memberStack.count))
                memberStack.append((try parseKey(afterComma: false), .null))
                continue
            case UInt8(ascii: "["):
                try enterContainer()
                guard offset >= bytes.count || bytes[offset] != UInt8(ascii: "]") else {
                    offset += 1
                    value = .array([])
                    break
                }
                containers.append(.array(base: elementStack.count))
                continue
            case UInt8(ascii: "t"):
                try parseLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try parseLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try parseLiteral("null")
                value = .null
            case UInt8(ascii: "+"), UInt8(ascii: "."):
                throw JSONTextError(.invalidNumber, at: offset, "a number must start with '-' or a digit")
            default:
                throw unexpected(expectedValue())
            }

            // Hand the value to its container; close every container that ends here.
            while true {
                skipWhitespace()
                guard let container = containers.last else {
                    guard offset == bytes.count else {
                        throw JSONTextError(
                            .trailingData, at: offset,
                            "expected end of input after the top-level value, found \(Self.describe(bytes[offset]))")
                    }
                    return value
                }
                let next: UInt8? = offset < bytes.count ? bytes[offset] : nil
                switch container {
                case .array(let base):
                    elementStack.append(value)
                    if next == UInt8(ascii: ",") {
                        offset += 1
                        skipWhitespace()
                        if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") {
                            throw unexpected("expected a value after ','")
                        }
                    } else if next == UInt8(ascii: "]") {
                        offset += 1
                        value = .array(Array(elementStack[base...]))
                        elementStack.removeSubrange(base...)
                        containers.removeLast()
                        continue
                    } else {
                        throw unexpected("expected ',' or ']' after array element")
                    }
                case .object(let base):
                    memberStack[memberStack.count - 1].1 = value
                    if next == UInt8(ascii: ",") {
                        offset += 1
                        skipWhitespace()
                        memberStack.append((try parseKey(afterComma: true), .null))
                    } else if next == UInt8(ascii: "}") {
                        offset += 1
                        // Duplicate keys: the last member wins.
                        value = .object(Dictionary(memberStack[base...], uniquingKeysWith: { _, last in last }))
                        memberStack.removeSubrange(base...)
                        containers.removeLast()
                        continue
                    } else {
                        throw unexpected("expected ',' or '}' after object member")
                    }
                }
                break
            }
        }
    }

    /// Steps over the `[` or `{` at `offset` and the whitespace after it, refusing to go deeper than the limit.
    mutating func enterContainer() throws(JSONTextError) {
        guard containers.count < JSONText.maximumDepth else {
            throw JSONTextError(
                .tooDeep, at: offset, "arrays and objects nest deeper than \(JSONText.maximumDepth) levels")
        }
        offset += 1
        skipWhitespace()
    }

    /// Reads an object key at `offset`, the `:` after it and the whitespace around that.
    mutating func parseKey(afterComma: Bool) throws(JSONTextError) -> String {
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else {
            throw unexpected(afterComma ? "expected a string key after ','" : "expected a string key or '}'")
        }
        let key = try parseString()
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else {
            throw unexpected("expected ':' after object key")
        }
        offset += 1
        skipWhitespace()
        return key
    }

    /// What the error says is missing where a value should start.
    func expectedValue() -> String {
        guard case .array(let base) = containers.last else { return "expected a value" }
        return elementStack.count == base ? "expected a value or ']'" : "expected a value after ','"
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): offset += 1
            default: return
            }
        }
    }

    /// Reads the literal `true`, `false` or `null` whose first byte is at `offset`.
    mutating func parseLiteral(_ literal: StaticString) throws(JSONTextError) {
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for byte in expected {
            guard offset < bytes.count, bytes[offset] == byte else { throw unexpected("expected '\(literal)'") }
            offset += 1
        }
    }

    // MARK: Strings

    /// Parses the string whose opening quote is at `offset`.
    mutating func parseString() throws(JSONTextError) -> String {
        let start = offset + 1
        var index = start
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                offset = index + 1
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            } else if byte == UInt8(ascii: "\\") {
                return try parseEscapedString(from: start, firstEscape: index)
            } else if byte < 0x80 {
                guard byte >= 0x20 else { throw Self.controlCharacter(byte, at: index) }
                index += 1
            } else {
                index = try endOfUTF8Sequence(at: index)
            }
        }
        throw JSONTextError(.unexpectedEnd, at: bytes.count, "unterminated string starting at byte \(offset)")
    }

    /// Finishes a string that contains escapes, assembling its bytes in `scratch`.
    mutating func parseEscapedString(from start: Int, firstEscape: Int) throws(JSONTextError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<firstEscape]))
        var index = firstEscape
        var runStart = firstEscape
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                offset = index + 1
                return String(decoding: scratch, as: UTF8.self)
            } else if byte == UInt8(ascii: "\\") {
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                index = try decodeEscape(at: index)
                runStart = index
            } else if byte < 0x80 {
                guard byte >= 0x20 else { throw Self.controlCharacter(byte, at: index) }
                index += 1
            } else {
                index = try endOfUTF8Sequence(at: index)
            }
        }
        throw JSONTextError(.unexpectedEnd, at: bytes.count, "unterminated string starting at byte \(start - 1)")
    }

    /// Appends the character of the escape whose backslash is at `index` to `scratch`; returns the index after it.
    ///
    /// A bad escape letter or hex digit is reported at that byte; an unpaired surrogate at the backslash of
    /// its `\u` escape.
    mutating func decodeEscape(at index: Int) throws(JSONTextError) -> Int {
        guard index + 1 < bytes.count else {
            throw JSONTextError(.unexpectedEnd, at: bytes.count, "unterminated escape sequence in string")
        }
        let decoded: UInt8
        switch bytes[index + 1] {
        case UInt8(ascii: "\""): decoded = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): decoded = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): decoded = UInt8(ascii: "/")
        case UInt8(ascii: "b"): decoded = 0x08
        case UInt8(ascii: "f"): decoded = 0x0C
        case UInt8(ascii: "n"): decoded = 0x0A
        case UInt8(ascii: "r"): decoded = 0x0D
        case UInt8(ascii: "t"): decoded = 0x09
        case UInt8(ascii: "u"): return try decodeUnicodeEscape(at: index)
        default:
            throw JSONTextError(
                .invalidEscape, at: index + 1,
                "invalid escape: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\', found "
                    + Self.describe(bytes[index + 1]))
        }
        scratch.append(decoded)
        return index + 2
    }

    /// Decodes `\uXXXX`, or a surrogate pair `\uXXXX\uXXXX`, whose backslash is at `index`.
    mutating func decodeUnicodeEscape(at index: Int) throws(JSONTextError) -> Int {
        let unit = try hexQuad(at: index + 2)
        let scalar: UInt32
        let next: Int
        switch unit {
        case 0xD800...0xDBFF:
            let lowEscapeStart = bytes[(index + 6)...].prefix(2)
            guard lowEscapeStart.elementsEqual("\\u".utf8) else {
                if ("\\u".utf8).starts(with: lowEscapeStart) {
                    throw JSONTextError(.unexpectedEnd, at: bytes.count, "unterminated string after high surrogate")
                }
                throw JSONTextError(
                    .invalidUnicode, at: index, "high surrogate escape is not followed by a low surrogate escape")
            }
            let low = try hexQuad(at: index + 8)
            guard (0xDC00...0xDFFF).contains(low) else {
                throw JSONTextError(
                    .invalidUnicode, at: index + 6,
                    "expected a low surrogate escape (\\uDC00-\\uDFFF) after high surrogate")
            }
            scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            next = index + 12
        case 0xDC00...0xDFFF:
            throw JSONTextError(.invalidUnicode, at: index, "low surrogate escape without a high surrogate before it")
        default:
            scalar = unit
            next = index + 6
        }
        appendUTF8(scalar)
        return next
    }

    /// Reads the four hex digits starting at `index`.
    func hexQuad(at index: Int) throws(JSONTextError) -> UInt32 {
        var value: UInt32 = 0
        for position in index..<index + 4 {
            guard position < bytes.count else {
                throw JSONTextError(.unexpectedEnd, at: bytes.count, "unterminated \\u escape in string")
            }
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte &- UInt8(ascii: "A") &+ 10
            default:
                throw JSONTextError(
                    .invalidEscape, at: position, "expected a hex digit in \\u escape, found \(Self.describe(byte))")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Appends a Unicode scalar value (never a surrogate) to `scratch` as UTF-8.
    mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case ..<0x80:
            scratch.append(UInt8(truncatingIfNeeded: scalar))
        case ..<0x800:
            scratch.append(0xC0 | UInt8(truncatingIfNeeded: scalar >> 6))
            scratch.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        case ..<0x10000:
            scratch.append(0xE0 | UInt8(truncatingIfNeeded: scalar >> 12))
            scratch.append(0x80 | UInt8(truncatingIfNeeded: scalar >> 6 & 0x3F))
            scratch.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        default:
            scratch.append(0xF0 | UInt8(truncatingIfNeeded: scalar >> 18))
            scratch.append(0x80 | UInt8(truncatingIfNeeded: scalar >> 12 & 0x3F))
            scratch.append(0x80 | UInt8(truncatingIfNeeded: scalar >> 6 & 0x3F))
            scratch.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        }
    }

    /// Checks the multi-byte UTF-8 sequence whose lead byte is at `index` and returns the index after it.
    ///
    /// Rejects stray continuation bytes, overlong forms, encoded surrogates and values above U+10FFFF,
    /// reporting the sequence's first byte.
    func endOfUTF8Sequence(at index: Int) throws(JSONTextError) -> Int {
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch bytes[index] {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            secondRange = 0x80...0x9F
        case 0xF0:
            length = 4
            secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            secondRange = 0x80...0x8F
        default:
            throw JSONTextError(
                .invalidUnicode, at: index, "invalid UTF-8: byte \(Self.hex(bytes[index])) cannot start a character")
        }
        guard index + length <= bytes.count, secondRange.contains(bytes[index + 1]),
            length < 3 || bytes[index + 2] & 0xC0 == 0x80,
            length < 4 || bytes[index + 3] & 0xC0 == 0x80
        else {
            throw JSONTextError(.invalidUnicode, at: index, "invalid or truncated UTF-8 sequence")
        }
        return index + length
    }

    // MARK: Numbers

    /// Parses the number whose first byte (`-` or a digit) is at `offset`.
    ///
    /// Integers of up to 19 significant digits, and decimals whose digits fit in 2^53 with a power of ten up
    /// to 22, are computed exactly with one correctly rounded multiplication or division (Clinger's fast
    /// path); anything else goes through the standard library's correctly rounded `Double(String)`.
    mutating func parseNumber() throws(JSONTextError) -> Double {
        let start = offset
        var index = offset
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }

        var significand: UInt64 = 0
        var significantDigits = 0
        var decimalExponent = 0

        guard index < bytes.count else {
            throw JSONTextError(.unexpectedEnd, at: bytes.count, "expected a digit after '-'")
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, Self.isDigit(bytes[index]) {
                throw JSONTextError(.invalidNumber, at: index, "leading zeros are not allowed in a number")
            }
        } else if Self.isDigit(bytes[index]) {
            while index < bytes.count, Self.isDigit(bytes[index]) {
                significand = significand &* 10 &+ UInt64(bytes[index] &- UInt8(ascii: "0"))
                significantDigits += 1
                index += 1
            }
        } else {
            throw JSONTextError(
                .invalidNumber, at: index, "expected a digit after '-', found \(Self.describe(bytes[index]))")
        }

        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            index = try requireDigit(at: index, after: "'.'")
            while index < bytes.count, Self.isDigit(bytes[index]) {
                significand = significand &* 10 &+ UInt64(bytes[index] &- UInt8(ascii: "0"))
                if significand != 0 { significantDigits += 1 }
                decimalExponent -= 1
                index += 1
            }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            var exponentNegative = false
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            index = try requireDigit(at: index, after: "exponent")
            var exponent = 0
            while index < bytes.count, Self.isDigit(bytes[index]) {
                // Saturate: anything this large is out of range or zero, which the slow path decides.
                if exponent < 100_000 { exponent = exponent * 10 + Int(bytes[index] &- UInt8(ascii: "0")) }
                index += 1
            }
            decimalExponent += exponentNegative ? -exponent : exponent
        }
        offset = index

        // 19 digits always fit in a UInt64, so `significand` is exact when this holds.
        if significantDigits <= 19 {
            if decimalExponent == 0 {
                // Converting an exact integer to `Double` rounds correctly.
                let magnitude = Double(significand)
                return negative ? -magnitude : magnitude
            } else if significand <= 1 << 53, (-22...22).contains(decimalExponent) {
                let power = Self.powersOfTen[Int(decimalExponent.magnitude)]
                let magnitude = decimalExponent < 0 ? Double(significand) / power : Double(significand) * power
                return negative ? -magnitude : magnitude
            }
        }
        return try parseNumberSlowly(from: start, to: index)
    }

    /// Converts the already validated number text in `start..<end` with the standard library.
    func parseNumberSlowly(from start: Int, to end: Int) throws(JSONTextError) -> Double {
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw JSONTextError(.invalidNumber, at: start, "number is too large for a 64-bit floating point value")
        }
        return value
    }

    /// Returns `index` when a digit is there, otherwise throws the matching error.
    func requireDigit(at index: Int, after what: String) throws(JSONTextError) -> Int {
        guard index < bytes.count else {
            throw JSONTextError(.unexpectedEnd, at: bytes.count, "expected a digit after \(what)")
        }
        guard Self.isDigit(bytes[index]) else {
            throw JSONTextError(
                .invalidNumber, at: index, "expected a digit after \(what), found \(Self.describe(bytes[index]))")
        }
        return index
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }

    /// 10^0 through 10^22, every one exactly representable as a `Double`.
    static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    // MARK: Errors

    /// The error for a missing `expected` thing at `offset`: the end of input, or the byte found there.
    @inline(never)
    func unexpected(_ expected: String) -> JSONTextError {
        guard offset < bytes.count else {
            return JSONTextError(.unexpectedEnd, at: bytes.count, "\(expected), found end of input")
        }
        return JSONTextError(.unexpectedCharacter, at: offset, "\(expected), found \(Self.describe(bytes[offset]))")
    }

    @inline(never)
    static func controlCharacter(_ byte: UInt8, at index: Int) -> JSONTextError {
        JSONTextError(
            .unexpectedCharacter, at: index,
            "control character \(hex(byte)) must be escaped in a string (e.g. \\n, \\t or \\u00XX)")
    }

    /// Shows one byte of the document: quoted when it is printable ASCII, otherwise in hex.
    static func describe(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte \(hex(byte))"
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return "0x" + String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]], as: UTF8.self)
    }
}

// MARK: - Encoding

extension JSONText {
    /// Appends `value`; recursion is one small frame per nesting level (containers are written by the helpers
    /// below, so their locals are not on every level's frame).
    static func write(_ value: JSONValue, into bytes: inout [UInt8]) {
        switch value {
        case .null: bytes.append(contentsOf: "null".utf8)
        case .bool(let flag): bytes.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let number): writeNumber(number, into: &bytes)
        case .string(let text): writeString(text, into: &bytes)
        case .array(let elements): writeArray(elements, into: &bytes)
        case .object(let members): writeObject(members, into: &bytes)
        }
    }

    static func writeArray(_ elements: [JSONValue], into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "["))
        for index in elements.indices {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            write(elements[index], into: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    static func writeObject(_ members: [String: JSONValue], into bytes: inout [UInt8]) {
        writeObject(members, into: &bytes) { value, bytes in write(value, into: &bytes) }
    }

    /// An object whose members are written by `writeValue`, keys sorted.
    static func writeObject<Value>(
        _ members: [String: Value], into bytes: inout [UInt8], writeValue: (Value, inout [UInt8]) -> Void
    ) {
        bytes.append(UInt8(ascii: "{"))
        // The members' positions are sorted, not copies of the members: no key or value is retained to sort them.
        var order = Array(members.indices)
        if order.count > 1 { order.sort { members[$0].key < members[$1].key } }
        for (position, index) in order.enumerated() {
            if position > 0 { bytes.append(UInt8(ascii: ",")) }
            writeString(members[index].key, into: &bytes)
            bytes.append(UInt8(ascii: ":"))
            writeValue(members[index].value, &bytes)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    static func writeNumber(_ number: Double, into bytes: inout [UInt8]) {
        guard number.isFinite else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        // Below 2^53 every integral Double is an exact integer; print it without a fraction or exponent.
        guard number.magnitude < 9_007_199_254_740_992, number.rounded(.towardZero) == number else {
            bytes.append(contentsOf: number.description.utf8)
            return
        }
        if number.sign == .minus { bytes.append(UInt8(ascii: "-")) }
        var magnitude = UInt64(number.magnitude)
        let firstDigit = bytes.count
        repeat {
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        bytes[firstDigit...].reverse()
    }

    static func writeString(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                writeEscape(byte, into: &bytes)
                runStart = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    static func writeEscape(_ byte: UInt8, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        case 0x0A: bytes.append(UInt8(ascii: "n"))
        case 0x0D: bytes.append(UInt8(ascii: "r"))
        case 0x09: bytes.append(UInt8(ascii: "t"))
        default:
            bytes.append(contentsOf: "u00".utf8)
            bytes.append(hexDigit(byte >> 4))
            bytes.append(hexDigit(byte & 0xF))
        }
    }

    @inline(__always)
    static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ nibble &- 10
    }
}

/// Writes one JSON object a member at a time, in the order given, for a hot path whose keys are fixed: nothing is
/// collected into a dictionary and no key is sorted. Give the keys in `String` order (as ``JSONText/encodeBytes(_:)``
/// sorts them) and the bytes are the same as that value's.
public struct JSONObjectWriter: Sendable {
    private var bytes: [UInt8]
    private var empty = true

    /// An empty object, with room for about `capacity` bytes.
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    private mutating func key(_ key: String) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        JSONText.writeString(key, into: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// Appends `"key":value`.
    public mutating func member(_ key: String, _ value: JSONValue) {
        self.key(key)
        JSONText.write(value, into: &bytes)
    }

    /// Appends `"key":"text"`.
    public mutating func member(_ key: String, string text: String) {
        self.key(key)
        JSONText.writeString(text, into: &bytes)
    }

    /// Appends `"key":number`.
    public mutating func member(_ key: String, integer: Int) {
        self.key(key)
        JSONText.writeNumber(Double(integer), into: &bytes)
    }

    /// Appends `"key":{...}`, an object written by another writer.
    public mutating func member(_ key: String, object: consuming JSONObjectWriter) {
        self.key(key)
        bytes.append(contentsOf: object.finish())
    }

    /// The object's UTF-8 bytes.
    public consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
