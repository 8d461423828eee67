import Testing
import WaybillDefinition
import WaybillOperations

/// A duration option that does not parse keeps the parser's reason as the cause of its one-line hint.
@Suite("Duration arguments")
struct DurationArgumentTests {
    @Test("a bad duration is operations.bad_argument with the hint, and the duration parser's error as the cause")
    func causeIsKept() {
        #expect {
            try TimeText.parseDuration("15x", option: "--stuck-for")
        } throws: { error in
            let error = try #require(error as? OperationsError)
            let cause = try #require(error.cause as? DurationParser.SyntaxError)
            return error.code == .badArgument && cause.code == .badSyntax
                && error.message == "--stuck-for '15x': \(TimeText.durationHint)"
                && error.description == "operations.bad_argument: \(error.message) (\(cause))"
        }
    }
}
