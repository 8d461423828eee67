import Testing

@testable import WaybillDefinition

@Suite("Durations")
struct DurationParserTests {
    @Test(
        "valid durations",
        arguments: [
            ("500ms", Duration.milliseconds(500)),
            ("30s", .seconds(30)),
            ("5m", .seconds(300)),
            ("2h", .seconds(7200)),
            ("1d", .seconds(86_400)),
            ("1m30s", .seconds(90)),
            ("1h30m", .seconds(5400)),
            ("1s500ms", .milliseconds(1500)),
            ("1d2h3m4s5ms", .milliseconds(93_784_005)),
            ("90s", .seconds(90)),
            ("0m5s", .seconds(5)),
        ])
    func valid(text: String, expected: Duration) throws {
        #expect(try DurationParser.parse(text) == expected)
    }

    @Test(
        "invalid durations",
        arguments: [
            ("30", "bad duration '30'; add a unit, e.g. 30s (units: ms, s, m, h, d)"),
            ("30x", "bad duration '30x'; write a number and a unit: 500ms, 30s, 5m, 2h"),
            ("0s", "bad duration '0s'; a duration must be longer than zero"),
            ("0m0s", "bad duration '0m0s'; a duration must be longer than zero"),
            ("-5s", "bad duration '-5s'; a duration cannot be negative"),
            ("30s1m", "bad duration '30s1m'; write each unit once, largest first, e.g. 1m30s"),
            ("1s1s", "bad duration '1s1s'; write each unit once, largest first, e.g. 1m30s"),
            ("1.5s", "bad duration '1.5s'; write a number and a unit: 500ms, 30s, 5m, 2h"),
            ("s", "bad duration 's'; write a number and a unit: 500ms, 30s, 5m, 2h"),
            ("5 m", "bad duration '5 m'; write a number and a unit: 500ms, 30s, 5m, 2h"),
            ("", "empty duration; write a number and a unit: 500ms, 30s, 5m, 2h"),
            (
                "99999999999999999999d",
                "bad duration '99999999999999999999d'; write a number and a unit: 500ms, 30s, 5m, 2h"
            ),
            ("9999999999999999d", "bad duration '9999999999999999d'; it is too long"),
        ])
    func invalid(text: String, message: String) {
        #expect(throws: DurationParser.SyntaxError(.badSyntax, message: message)) {
            try DurationParser.parse(text)
        }
        #expect(DurationParser.SyntaxError.Code.badSyntax.rawValue == "duration.bad_syntax")
    }

    @Test(
        "format writes the largest units first",
        arguments: [
            (Duration.milliseconds(500), "500ms"),
            (.seconds(30), "30s"),
            (.seconds(60), "1m"),
            (.seconds(90), "1m30s"),
            (.seconds(86_400 + 3600), "1d1h"),
            (.milliseconds(1500), "1s500ms"),
            (.zero, "0s"),
        ])
    func format(duration: Duration, expected: String) throws {
        #expect(DurationParser.format(duration) == expected)
        if duration > .zero {
            #expect(try DurationParser.parse(expected) == duration)
        }
    }
}
