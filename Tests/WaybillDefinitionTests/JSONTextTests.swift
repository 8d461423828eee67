import SeededRandom
import Testing
import WaybillDefinition

@Suite("JSONText")
struct JSONTextTests {
    // MARK: Decoding valid documents

    @Test(
        "decodes valid documents",
        arguments: [
            ("null", nil),
            ("true", true),
            ("false", false),
            (" \t\r\n 7 \n\t", 7),
            ("0", 0),
            ("-0", JSONValue.number(-0.0)),
            ("1", 1),
            ("-1", -1),
            ("1234567890", 1_234_567_890),
            ("9007199254740991", 9_007_199_254_740_991),
            ("9007199254740993", 9_007_199_254_740_992),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            ("0.5", 0.5),
            ("-0.5", -0.5),
            ("12.99", 12.99),
            ("0.1", 0.1),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1e+3", 1000),
            ("1e-3", 0.001),
            ("1.5e2", 150),
            ("0e0", 0),
            ("1e22", 1e22),
            ("1e23", 1e23),
            ("1.7976931348623157e308", 1.7976931348623157e308),
            ("2.2250738585072014e-308", 2.2250738585072014e-308),
            ("4.9406564584124654e-324", JSONValue.number(.leastNonzeroMagnitude)),
            ("1e-400", 0),
            ("0e99999999999999999999", 0),
            ("1e-99999999999999999999", 0),
            (#""""#, ""),
            (#""abc""#, "abc"),
            (#""é 😀 €""#, "é 😀 €"),
            ("[]", []),
            ("[ ]", []),
            ("[1,[2,[3,[]]]]", [1, [2, [3, []]]]),
            ("[null,true,false,\"x\",1.5,{}]", [nil, true, false, "x", 1.5, [:]]),
            ("{}", [:]),
            (#"{ "a" : 1 }"#, ["a": 1]),
            (#"{"a":{"b":[{"c":null}]}}"#, ["a": ["b": [["c": nil]]]]),
            (#"{"a":1,"a":2}"#, ["a": 2]),
            (#"{"é":1,"e\u0301":2}"#, ["é": 2]),
            ("\n{\n  \"id\": \"o-1\",\n  \"lines\": [\n    1,\n    2\n  ]\n}\n", ["id": "o-1", "lines": [1, 2]]),
        ] as [(String, JSONValue)])
    func decodesValidDocument(text: String, expected: JSONValue) throws {
        #expect(try JSONText.decode(text) == expected)
        #expect(try JSONText.decode(Array(text.utf8)) == expected)
    }

    @Test("decodes numbers bit-exactly, keeping the sign of zero")
    func decodesNegativeZero() throws {
        for text in ["-0", "-0.0", "-0e5", "-0.000"] {
            let value = try #require(try JSONText.decode(text).numberValue)
            #expect(value.bitPattern == (-0.0).bitPattern, "\(text)")
        }
    }

    @Test(
        "decodes escapes",
        arguments: [
            (#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{8}\u{C}\n\r\t"),
            (#""\u0041""#, "A"),
            (#""\u00e9""#, "é"),
            (#""\u00E9""#, "é"),
            (#""\u20AC""#, "€"),
            (#""\uFFFF""#, "\u{FFFF}"),
            (#""\u0000""#, "\u{0}"),
            (#""\uD83D\uDE00""#, "😀"),
            (#""\ud83d\ude00""#, "😀"),
            (#""\uDBFF\uDFFF""#, "\u{10FFFF}"),
            (#""a\u0062c\nd😀e""#, "abc\nd😀e"),
            (#""é\té""#, "é\té"),
            (#""\\\\""#, "\\\\"),
        ])
    func decodesEscape(text: String, expected: String) throws {
        #expect(try JSONText.decode(text) == .string(expected))
    }

    @Test("decodes from any collection of bytes; offsets count from its first element")
    func decodesCollections() throws {
        let bytes = Array("xx[1,{\"a\":true}]yy".utf8)
        let slice = bytes[2..<(bytes.count - 2)]
        let expected: JSONValue = [1, ["a": true]]
        #expect(try JSONText.decode(slice) == expected)
        #expect(try JSONText.decode(slice.lazy.map { $0 }) == expected)
        #expect(try JSONText.decode("[1,{\"a\":true}]".utf8) == expected)

        let broken = Array("xx[1,]".utf8)[2...]
        let error = #expect(throws: JSONTextError.self) { try JSONText.decode(broken) }
        #expect(error?.offset == 3)
        let copied = #expect(throws: JSONTextError.self) { try JSONText.decode(broken.lazy.map { $0 }) }
        #expect(copied?.offset == 3)
    }

    @Test("decodes a realistic order document and reads its fields")
    func decodesOrderDocument() throws {
        let value = try JSONText.decode(Self.orderDocument)
        #expect(value["orderId"] == "ord-2024-000417")
        #expect(value["customer"]?["email"] == "ada@example.com")
        #expect(value["lines"]?.arrayValue?.count == 3)
        #expect(value["lines"]?.arrayValue?[1]["unitPrice"] == 4.05)
        #expect(value["totals"]?["grandTotal"] == 129.37)
        #expect(value["flags"]?["giftWrap"] == false)
        #expect(value["notes"] == "Leave at the \"back\" door\nRing twice")
        #expect(try JSONText.decode(JSONText.encodeBytes(value)) == value)
    }

    // MARK: Rejecting invalid documents

    @Test(
        "rejects invalid documents with a code and the offending byte offset",
        arguments: [
            ("", .unexpectedEnd, 0),
            ("   ", .unexpectedEnd, 3),
            ("nul", .unexpectedEnd, 3),
            ("nulx", .unexpectedCharacter, 3),
            ("True", .unexpectedCharacter, 0),
            ("NaN", .unexpectedCharacter, 0),
            ("Infinity", .unexpectedCharacter, 0),
            ("'a'", .unexpectedCharacter, 0),
            ("-Infinity", .invalidNumber, 1),
            ("+1", .invalidNumber, 0),
            (".5", .invalidNumber, 0),
            ("01", .invalidNumber, 1),
            ("-01", .invalidNumber, 2),
            ("00", .invalidNumber, 1),
            ("-", .unexpectedEnd, 1),
            ("- 1", .invalidNumber, 1),
            ("1.", .unexpectedEnd, 2),
            ("1.x", .invalidNumber, 2),
            ("1.e5", .invalidNumber, 2),
            ("1e", .unexpectedEnd, 2),
            ("1e+", .unexpectedEnd, 3),
            ("1ex", .invalidNumber, 2),
            ("1e+-1", .invalidNumber, 3),
            ("1e400", .invalidNumber, 0),
            ("-1e400", .invalidNumber, 0),
            ("[0, 1e309]", .invalidNumber, 4),
            ("1.7976931348623159e308", .invalidNumber, 0),
            ("0x10", .trailingData, 1),
            ("1 2", .trailingData, 2),
            ("{} x", .trailingData, 3),
            ("[]]", .trailingData, 2),
            ("\"é\" x", .trailingData, 5),
            ("[", .unexpectedEnd, 1),
            ("[1", .unexpectedEnd, 2),
            ("[1,", .unexpectedEnd, 3),
            ("[1,]", .unexpectedCharacter, 3),
            ("[1 2]", .unexpectedCharacter, 3),
            ("[}", .unexpectedCharacter, 1),
            ("[,1]", .unexpectedCharacter, 1),
            ("{", .unexpectedEnd, 1),
            (#"{"a""#, .unexpectedEnd, 4),
            (#"{"a":"#, .unexpectedEnd, 5),
            (#"{"a" 1}"#, .unexpectedCharacter, 5),
            (#"{"a":}"#, .unexpectedCharacter, 5),
            (#"{"a":1,}"#, .unexpectedCharacter, 7),
            (#"{"a":1 "b":2}"#, .unexpectedCharacter, 7),
            (#"{"a":1]"#, .unexpectedCharacter, 6),
            ("{a:1}", .unexpectedCharacter, 1),
            ("{1:1}", .unexpectedCharacter, 1),
            (#""abc"#, .unexpectedEnd, 4),
            (#""abc\"#, .unexpectedEnd, 5),
            ("\"a\tb\"", .unexpectedCharacter, 2),
            ("\"a\nb\"", .unexpectedCharacter, 2),
            ("\"\\n\u{1}\"", .unexpectedCharacter, 3),
            (#""\x""#, .invalidEscape, 2),
            (#""\'""#, .invalidEscape, 2),
            (#""\U0041""#, .invalidEscape, 2),
            (#""\u12G4""#, .invalidEscape, 5),
            (#""\u12""#, .invalidEscape, 5),
            (#""\u12"#, .unexpectedEnd, 5),
            (#""\uD800""#, .invalidUnicode, 1),
            (#""\uDC00""#, .invalidUnicode, 1),
            (#""ab\uDFFF""#, .invalidUnicode, 3),
            (#""\uD800\u0041""#, .invalidUnicode, 7),
            (#""\uD800\uD800""#, .invalidUnicode, 7),
            (#""\uD800\n""#, .invalidUnicode, 1),
            (#""\uD800x""#, .invalidUnicode, 1),
            (#""\uD800"#, .unexpectedEnd, 7),
            (#""\uD800\"#, .unexpectedEnd, 8),
            (#""x\uD800\uDC0"#, .unexpectedEnd, 13),
        ] as [(String, JSONTextError.Code, Int)])
    func rejectsInvalidDocument(text: String, code: JSONTextError.Code, offset: Int) {
        let error = #expect(throws: JSONTextError.self) { try JSONText.decode(text) }
        #expect(error?.code == code)
        #expect(error?.offset == offset)
    }

    @Test(
        "rejects invalid UTF-8 at the first byte of the bad sequence",
        arguments: [
            ([0x22, 0xFF, 0x22], .invalidUnicode, 1),
            ([0x22, 0x80, 0x22], .invalidUnicode, 1),
            ([0x22, 0xC3, 0x22], .invalidUnicode, 1),
            ([0x22, 0xC0, 0xAF, 0x22], .invalidUnicode, 1),
            ([0x22, 0xE0, 0x80, 0xAF, 0x22], .invalidUnicode, 1),
            ([0x22, 0xED, 0xA0, 0x80, 0x22], .invalidUnicode, 1),
            ([0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22], .invalidUnicode, 1),
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], .invalidUnicode, 1),
            ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], .invalidUnicode, 1),
            ([0x22, 0x61, 0xE2, 0x82], .invalidUnicode, 2),
            ([0x22, 0x5C, 0x6E, 0xE2, 0x82, 0x22], .invalidUnicode, 3),
            ([0xEF, 0xBB, 0xBF, 0x31], .unexpectedCharacter, 0),
            ([0x80], .unexpectedCharacter, 0),
            ([0x5B, 0x31, 0x00, 0x5D], .unexpectedCharacter, 2),
        ] as [([UInt8], JSONTextError.Code, Int)])
    func rejectsInvalidBytes(bytes: [UInt8], code: JSONTextError.Code, offset: Int) {
        let error = #expect(throws: JSONTextError.self) { try JSONText.decode(bytes) }
        #expect(error?.code == code)
        #expect(error?.offset == offset)
    }

    @Test("accepts valid multi-byte UTF-8 at the edges of each range")
    func acceptsValidUTF8() throws {
        let scalars: [Unicode.Scalar] = [
            "\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}",
        ]
        for scalar in scalars {
            let bytes = [0x22] + Array(String(scalar).utf8) + [0x22]
            #expect(try JSONText.decode(bytes) == .string(String(scalar)))
        }
    }

    @Test("error text says what was expected and where, without the document's content")
    func errorDescription() {
        let error = #expect(throws: JSONTextError.self) {
            try JSONText.decode(#"{"card":"4111111111111111" x}"#)
        }
        #expect(
            error?.description
                == "json.unexpected_character: expected ',' or '}' after object member, found 'x' at byte 27"
        )
        #expect(error?.description.contains("4111") == false)

        let end = #expect(throws: JSONTextError.self) { try JSONText.decode("[1") }
        #expect(
            end?.description
                == "json.unexpected_end: expected ',' or ']' after array element, found end of input at byte 2")

        let control = #expect(throws: JSONTextError.self) { try JSONText.decode("\"a\u{7}\"") }
        #expect(control?.message.contains("0x07") == true)
    }

    @Test("error codes have stable raw values")
    func stableCodes() {
        let codes: [JSONTextError.Code] = [
            .unexpectedEnd, .unexpectedCharacter, .invalidNumber, .invalidEscape, .invalidUnicode, .tooDeep,
            .trailingData,
        ]
        #expect(
            codes.map(\.rawValue) == [
                "json.unexpected_end", "json.unexpected_character", "json.invalid_number", "json.invalid_escape",
                "json.invalid_unicode", "json.too_deep", "json.trailing_data",
            ])
    }

    // MARK: Nesting limit

    @Test("accepts nesting up to the limit and rejects one level more")
    func nestingLimit() throws {
        let depth = JSONText.maximumDepth
        #expect(depth == 512)

        let deepest = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        var value = try JSONText.decode(deepest)
        var levels = 0
        while let elements = value.arrayValue {
            levels += 1
            value = elements.first ?? .null
        }
        #expect(levels == depth)

        let tooDeep = String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)
        let error = #expect(throws: JSONTextError.self) { try JSONText.decode(tooDeep) }
        #expect(error?.code == .tooDeep)
        #expect(error?.offset == depth)

        let objects = String(repeating: #"{"a":"#, count: depth + 1) + "1" + String(repeating: "}", count: depth + 1)
        let objectError = #expect(throws: JSONTextError.self) { try JSONText.decode(objects) }
        #expect(objectError?.code == .tooDeep)
        #expect(objectError?.offset == 5 * depth)

        var deepValue: JSONValue = 1
        for _ in 0...depth { deepValue = [deepValue] }
        let encodedError = #expect(throws: JSONTextError.self) { try JSONText.decode(JSONText.encodeBytes(deepValue)) }
        #expect(encodedError?.code == .tooDeep)
    }

    @Test("hostile nesting fails fast instead of overflowing the stack")
    func hostileNesting() {
        let error = #expect(throws: JSONTextError.self) {
            try JSONText.decode([UInt8](repeating: UInt8(ascii: "["), count: 1_000_000))
        }
        #expect(error?.code == .tooDeep)
        #expect(error?.offset == JSONText.maximumDepth)
    }

    @Test("siblings do not add to the depth")
    func siblingsDoNotNest() throws {
        let inner = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        let text = "[" + Array(repeating: inner, count: 20).joined(separator: ",") + "]"
        #expect(try JSONText.decode(text).arrayValue?.count == 20)
    }

    // MARK: Encoding

    @Test(
        "encodes compactly with sorted keys",
        arguments: [
            (nil, "null"),
            (true, "true"),
            (false, "false"),
            (0, "0"),
            (JSONValue.number(-0.0), "-0"),
            (1, "1"),
            (-42, "-42"),
            (1.5, "1.5"),
            (-1.25, "-1.25"),
            (0.1, "0.1"),
            (1e-7, "1e-07"),
            (1e300, "1e+300"),
            (9_007_199_254_740_991, "9007199254740991"),
            (-9_007_199_254_740_991, "-9007199254740991"),
            (9_007_199_254_740_992.0, "9007199254740992.0"),
            (1e22, "1e+22"),
            (JSONValue.number(.leastNonzeroMagnitude), "5e-324"),
            (JSONValue.number(.nan), "null"),
            (JSONValue.number(.infinity), "null"),
            (JSONValue.number(-.infinity), "null"),
            ("", #""""#),
            ("a\"b\\c/d", #""a\"b\\c/d""#),
            ("\n\r\t\u{8}\u{C}\u{0}\u{1F}\u{7F}", #""\n\r\t\b\f\u0000\u001f\#u{7F}""#),
            ("é😀\u{2028}", "\"é😀\u{2028}\""),
            ([], "[]"),
            ([:], "{}"),
            ([1, "two", nil, [true]], #"[1,"two",null,[true]]"#),
            (["b": 1, "a": [true, nil], "c": ["z": "", "y": [:]]], #"{"a":[true,null],"b":1,"c":{"y":{},"z":""}}"#),
            (["é": 1, "z": 2, "A": 3, "a": 4], #"{"A":3,"a":4,"z":2,"é":1}"#),
        ] as [(JSONValue, String)])
    func encodes(value: JSONValue, expected: String) {
        #expect(JSONText.encode(value) == expected)
        #expect(JSONText.encodeBytes(value) == Array(expected.utf8))
    }

    // MARK: Properties

    @Test("random values round-trip through the encoder and decoder, and re-encode to the same bytes")
    func randomRoundTrip() throws {
        var generator = SplitMix64(seed: 0x5741_5942_494C_4C01)
        for _ in 0..<3000 {
            let value = generator.nextValue(depth: 0)
            let bytes = JSONText.encodeBytes(value)
            let decoded = try JSONText.decode(bytes)
            #expect(decoded == value, "\(JSONText.encode(value))")
            #expect(JSONText.encodeBytes(decoded) == bytes)
        }
    }

    @Test("an object written member by member in key order has the bytes of the same value encoded")
    func objectWriterMatchesTheEncoder() throws {
        var generator = SplitMix64(seed: 0x5741_5942_494C_4C02)
        for _ in 0..<1000 {
            var members: [String: JSONValue] = [:]
            for _ in 0..<generator.below(8) { members[generator.nextString()] = generator.nextValue(depth: 1) }
            var nested = JSONObjectWriter()
            var nestedMembers: [String: JSONValue] = [:]
            if generator.below(2) == 0 {
                let number = Int(generator.next() >> 12) - (1 << 51)
                nestedMembers = ["n": .number(Double(number)), "s": .string(generator.nextString())]
                nested.member("n", integer: number)
                nested.member("s", string: nestedMembers["s"]!.stringValue!)
            }
            // One member, at a random place in the key order, is an object written by a writer of its own.
            let nestedKey = generator.nextString()
            members[nestedKey] = .object(nestedMembers)
            var writer = JSONObjectWriter(capacity: 8)
            for (name, value) in members.sorted(by: { $0.key < $1.key }) {
                if name == nestedKey { writer.member(name, object: nested) } else { writer.member(name, value) }
            }
            #expect(writer.finish() == JSONText.encodeBytes(.object(members)))
        }
    }

    @Test("numbers decode exactly as the standard library's correctly rounded conversion")
    func numbersMatchStandardLibrary() throws {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<5000 {
            let text = generator.nextNumberText()
            let reference = try #require(Double(text))
            if reference.isFinite {
                let value = try #require(try JSONText.decode(text).numberValue)
                #expect(value.bitPattern == reference.bitPattern, "\(text)")
            } else {
                let error = #expect(throws: JSONTextError.self) { try JSONText.decode(text) }
                #expect(error?.code == .invalidNumber, "\(text)")
            }
        }
    }

    @Test("truncating a valid document anywhere gives an error, never a crash or a wrong value")
    func truncatedDocuments() throws {
        let bytes = Array(Self.orderDocument.utf8)
        for length in 0..<bytes.count {
            #expect(throws: JSONTextError.self, "length \(length)") { try JSONText.decode(bytes[..<length]) }
        }
    }

    static let orderDocument = """
        {
          "orderId": "ord-2024-000417",
          "placedAt": "2024-11-05T14:32:07Z",
          "customer": {"id": "cus-88213", "name": "Ada Lovelace", "email": "ada@example.com", "tier": "gold"},
          "shipTo": {
            "line1": "12 Analytical Row", "line2": null, "city": "London", "postcode": "N1 9GU",
            "country": "GB", "phone": "+44 20 7946 0000"
          },
          "lines": [
            {"sku": "BRG-6204-2RS", "qty": 12, "unitPrice": 3.5, "warehouse": null, "tags": ["bearing", "metric"]},
            {"sku": "SCR-M4-16-A2", "qty": 200, "unitPrice": 4.05, "warehouse": "LHR-2", "tags": []},
            {"sku": "GRS-LITH-400", "qty": 1, "unitPrice": 9.87, "warehouse": "MAN-1", "tags": ["hazmat"]}
          ],
          "totals": {"net": 107.81, "tax": 21.56, "shipping": 0, "grandTotal": 129.37, "currency": "GBP"},
          "payment": {"method": "card", "last4": "4242", "authorized": true, "authCode": "A1B2C3"},
          "flags": {"giftWrap": false, "priority": true, "splitAllowed": true},
          "notes": "Leave at the \\"back\\" door\\nRing twice",
          "attempt": 1,
          "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"
        }
        """
}

/// Random JSON for the property tests, from the seeded generator so they see the same values on every run.
extension SplitMix64 {
    mutating func below(_ bound: Int) -> Int {
        Int(next(upperBound: UInt64(bound)))
    }

    /// A random JSON value; containers get rarer with depth and stop at depth 5.
    mutating func nextValue(depth: Int) -> JSONValue {
        switch below(depth >= 5 ? 4 : 7) {
        case 0: return .null
        case 1: return .bool(below(2) == 0)
        case 2: return .number(nextDouble())
        case 3: return .string(nextString())
        case 4: return .array((0..<below(6)).map { _ in nextValue(depth: depth + 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<below(6) { members[nextString()] = nextValue(depth: depth + 1) }
            return .object(members)
        }
    }

    mutating func nextDouble() -> Double {
        let specials: [Double] = [
            0, -0.0, 1, -1, 0.1, 1e22, 1e23, 9_007_199_254_740_991, 9_007_199_254_740_992, 9_007_199_254_740_994,
            .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
            -.greatestFiniteMagnitude, .ulpOfOne,
        ]
        switch below(5) {
        case 0: return specials[below(specials.count)]
        case 1: return Double(Int64(bitPattern: next()) >> Int64(below(64)))
        case 2: return Double(below(1_000_000)) / 100
        default:
            while true {
                let candidate = Double(bitPattern: next())
                if candidate.isFinite { return candidate }
            }
        }
    }

    mutating func nextString() -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<below(10) {
            let value: UInt32
            switch below(8) {
            case 0: value = UInt32(below(0x20))
            case 1: value = [0x22, 0x5C, 0x2F, 0x7F, 0x2028, 0xFEFF][below(6)]
            case 2: value = 0x80 + UInt32(below(0x780))
            case 3: value = 0xE000 + UInt32(below(0x2000))
            case 4: value = 0x10000 + UInt32(below(0x100000))
            default: value = 0x20 + UInt32(below(0x5F))
            }
            if let scalar = Unicode.Scalar(value) { scalars.append(scalar) }
        }
        return String(scalars)
    }

    /// Random text that follows the JSON number grammar, from short integers to long fractions and
    /// exponents far out of range.
    mutating func nextNumberText() -> String {
        var text = below(2) == 0 ? "" : "-"
        text += below(4) == 0 ? "0" : String(1 + below(9)) + digits(below(below(2) == 0 ? 6 : 25))
        if below(2) == 0 { text += "." + digits(1 + below(below(2) == 0 ? 4 : 25)) }
        if below(2) == 0 {
            text += ["e", "E", "e+", "e-", "E-"][below(5)] + digits(1 + below(3))
        }
        return text
    }

    mutating func digits(_ count: Int) -> String {
        String((0..<count).map { _ in Character(String(below(10))) })
    }
}
