import Foundation
import Testing
import WaybillDefinition

@testable import SagaEngine
@testable import SagaStore

@Suite struct StateCodecTests {
    @Test func fullInstanceRoundTripsExactly() throws {
        let instance = Fixtures.fullInstance()
        let bytes = StateCodec.encode(instance)
        let back = try StateCodec.decode(bytes)
        #expect(back == instance)
        // Hashable equality treats -0.0 as 0.0 and .some(.null) distinctly; check the sign bit and null too.
        #expect(back.steps[0].output?["neg"]?.numberValue?.sign == .minus)
        #expect(back.steps[0].branches[0].output == .some(.null))
        #expect(back.steps[0].output?["big"] == 9_007_199_254_740_993.0)
    }

    @Test func unansweredAttemptsAreWrittenOnlyWhenThereAreSome() throws {
        var instance = Fixtures.fullInstance()
        let withTwo = StateCodec.encode(instance)
        #expect(try StateCodec.decode(withTwo).steps[0].branches[0].unansweredAttempts == 2)
        instance.steps[0].branches[0].unansweredAttempts = 0
        let withNone = StateCodec.encode(instance)
        // Field 12 as a small int is three bytes (number, tag, value); without it the bytes are an older binary's.
        #expect(withTwo.count == withNone.count + 3)
        #expect(try StateCodec.decode(withNone).steps[0].branches[0].unansweredAttempts == 0)
    }

    @Test("every step status round-trips, bypassed (a step a choice jumped over) included")
    func everyStepStatusRoundTrips() throws {
        var instance = Fixtures.fullInstance()
        let statuses: [StepState.Status] = [.pending, .running, .failing, .succeeded, .failed, .skipped, .bypassed]
        for status in statuses {
            instance.steps[1].status = status
            #expect(try StateCodec.decode(StateCodec.encode(instance)).steps[1].status == status)
        }
    }

    @Test func minimalInstanceRoundTrips() throws {
        var instance = Fixtures.fullInstance()
        instance.steps = []
        instance.completions = []
        instance.compensation = CompensationPlan(purpose: .abort, queue: [])
        instance.failure = nil
        instance.input = .null
        #expect(try StateCodec.decode(StateCodec.encode(instance)) == instance)
    }

    @Test func everyCompensationPurposeRoundTrips() throws {
        var instance = Fixtures.fullInstance()
        for purpose in [
            CompensationPlan.Purpose.abort, .reallocate(splitStep: 2, excludedWarehouses: ["w1", "w3"]),
            .reset(step: 1),
        ] {
            instance.compensation = CompensationPlan(purpose: purpose, queue: [BranchRef(step: 3, branch: 1)])
            #expect(try StateCodec.decode(StateCodec.encode(instance)).compensation?.purpose == purpose)
        }
    }

    /// A field a later binary might add to the instance record, holding a record of its own.
    enum FutureInstanceField: UInt64, StateField {
        case shippingWindow = 99
    }

    enum FutureWindowField: UInt64, StateField {
        case slots = 1
        case carrier = 2
    }

    @Test func unknownFieldsAreSkipped() throws {
        var bytes = StateCodec.encode(Fixtures.fullInstance())
        // Insert field 99 (a nested message holding a JSON object) before the instance's end marker.
        var extra = StateWriter()
        extra.beginMessage(FutureInstanceField.shippingWindow)
        extra.json(FutureWindowField.slots, ["future": [1, "two", nil]])
        extra.string(FutureWindowField.carrier, "x")
        extra.endMessage()
        bytes.insert(contentsOf: extra.bytes, at: bytes.count - 1)
        #expect(try StateCodec.decode(bytes) == Fixtures.fullInstance())
    }

    @Test(arguments: [0, 1, 2, 3, 10, 50, 200])
    func damagedBytesThrowInsteadOfTrapping(cut: Int) throws {
        let bytes = StateCodec.encode(Fixtures.fullInstance())
        #expect(throws: StateCodecError.self) { try StateCodec.decode(Array(bytes.prefix(cut))) }
    }

    @Test func newerFormatIsRefusedWithAClearMessage() throws {
        var bytes = StateCodec.encode(Fixtures.fullInstance())
        bytes[2] = 9
        #expect {
            try SagaStateFormat.decode(bytes)
        } throws: { error in
            let storeError = try #require(error as? SagaStoreError)
            return storeError.code == .corruptState && storeError.message.contains("newer than this binary")
        }
    }
}

/// Fails when the engine grows a stored property that the state codec does not write (it would be lost on restart).
@Suite struct StateCodecCoverageTests {
    static func labels(of value: Any) -> Set<String> {
        Set(Mirror(reflecting: value).children.compactMap(\.label))
    }

    @Test func codecCoversEveryStoredProperty() throws {
        let instance = Fixtures.fullInstance()
        let branch = instance.steps[0].branches[0]
        let expected: [(String, Any, Set<String>)] = [
            (
                "SagaInstance", instance,
                [
                    "key", "version", "definitionHash", "status", "input", "steps", "cursor", "completions",
                    "compensation", "pivotPassed", "failure", "startedAt", "updatedAt", "sequence", "trace",
                ]
            ),
            ("SagaKey", instance.key, ["workflow", "id"]),
            (
                "StepState", instance.steps[0],
                [
                    "status", "branches", "output", "round", "reallocations", "excludedWarehouses", "startedAt",
                    "finishedAt", "retired",
                ]
            ),
            ("RetiredBranch", instance.steps[0].retired[0], ["index", "state"]),
            (
                "BranchState", branch,
                [
                    "item", "status", "round", "attempt", "compensationAttempt", "pending", "timer", "output",
                    "lastError", "startedAt", "finishedAt", "unansweredAttempts",
                ]
            ),
            ("PendingCommand", branch.pending!, ["messageId", "routingKey", "kind", "attempt", "sentAt"]),
            ("SagaTimer", branch.timer!, ["id", "kind", "dueAt"]),
            ("StepError", branch.lastError!, ["code", "message", "retryable"]),
            ("SagaFailure", instance.failure!, ["step", "branch", "error", "at"]),
            ("CompensationPlan", instance.compensation!, ["purpose", "queue"]),
            ("BranchRef", instance.completions[0], ["step", "branch"]),
            ("Timestamp", instance.startedAt, ["milliseconds"]),
            ("SagaTrace", instance.trace!, ["traceParent", "traceState"]),
        ]
        for (name, value, fields) in expected {
            #expect(Self.labels(of: value) == fields, "StateCodec does not store every field of \(name)")
        }
    }
}
